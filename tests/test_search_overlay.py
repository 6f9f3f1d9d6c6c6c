"""Model Explorer node-data overlays on a small INT8 .tflite converted here, with its real per-layer error table."""
import json
import math
import pathlib

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras
from tflite_isp.export import convert, quant_debug
from tflite_isp.run import flatbuffer
from tflite_isp.search import overlay

SHAPE = (1, 16, 16, 4)
# Field names of google-ai-edge/model-explorer src/server/package/src/model_explorer/node_data_builder.py (0.1.34)
GRAPH_FIELDS = {"results", "name", "thresholds", "gradient", "hideInAggregatedStatsTable", "hideInChildrenStatsTable",
                "hideAggregatedStats", "showExpandedSummaryOnGroupNode", "showLabelCountColumnsInChildrenStatsTable"}
RESULT_FIELDS, THRESHOLD_FIELDS, GRADIENT_FIELDS = {"value", "bgColor", "textColor"}, \
    {"value", "bgColor", "textColor"}, {"stop", "bgColor", "textColor"}


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    """(path, layer_table rows) of a few convolutions with a residual add, converted like the exporter does."""
    inputs = keras.Input(SHAPE[1:])
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.Add()([x, keras.layers.Conv2D(8, 1)(inputs)])
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(x))
    data = [np.random.default_rng(i).random(SHAPE, np.float32) for i in range(4)]
    precision = convert.precisions()["int8"]
    path = tmp_path_factory.mktemp("overlay") / "tiny_int8.tflite"
    path.write_bytes(convert.convert(model, SHAPE, precision, representative=convert.representative_from(data)))
    rows = quant_debug.layer_table(lambda: convert.converter_for(
        model, SHAPE, precision, representative=convert.representative_from(data), allow_float_ops=True), data[:2])
    return path, rows


def _check_format(doc: dict) -> dict:
    """A ModelNodeData as the UI reads it (graph id -> GraphNodeData; no top-level "results", which would make it a
    single GraphNodeData); returns the one GraphNodeData all graph ids share."""
    assert "results" not in doc and doc
    graphs = list(doc.values())
    assert all(g == graphs[0] for g in graphs)
    graph = graphs[0]
    assert set(graph) <= GRAPH_FIELDS and isinstance(graph["name"], str)
    for key, result in graph["results"].items():
        assert key.isdigit() and set(result) <= RESULT_FIELDS and math.isfinite(result["value"])
    if "gradient" in graph:
        assert all(set(g) <= GRADIENT_FIELDS for g in graph["gradient"])
        assert {g["stop"] for g in graph["gradient"]} >= {0, 1}
    else:
        values = [t["value"] for t in graph["thresholds"]]
        assert all(set(t) <= THRESHOLD_FIELDS and "bgColor" in t for t in graph["thresholds"])
        assert values == sorted(values)
    return graph


def test_latency_overlay_keys_every_op_once_by_its_index(int8_file, tmp_path):
    path, _ = int8_file
    ops = flatbuffer.read(path).ops
    records = [{"op_index": op.index, "op": op.name.lower(), "outputs": [t.name for t in op.outputs],
                "ms": 0.5 + op.index} for op in reversed(ops)]
    written = overlay.write_overlays(path, tmp_path / "out", latency_per_op=records)
    assert [p.name for p in written] == ["tiny_int8_latency.json"]
    doc = json.loads(written[0].read_text())
    assert list(doc) == ["main"]  # the converter names subgraph 0 "main"
    graph = _check_format(doc)
    assert sorted(graph["results"], key=int) == [str(op.index) for op in ops] == [str(i) for i in range(len(ops))]
    assert all(graph["results"][str(op.index)]["value"] == 0.5 + op.index for op in ops)
    assert graph["name"] == "latency (ms)" and "thresholds" not in graph


def test_node_data_with_thresholds_and_refusals(int8_file):
    path, _ = int8_file
    doc = overlay.node_data(path, {0: 1.0, 2: 3.0}, name="macs", unit="M", thresholds=[(1, "green"), (5, "red")])
    graph = _check_format(doc)
    assert set(graph["results"]) == {"0", "2"} and graph["thresholds"][1] == {"value": 5.0, "bgColor": "red"}
    with pytest.raises(UserError, match="op index 99 is not one of"):
        overlay.node_data(path, {99: 1.0}, name="macs", unit="M")
    with pytest.raises(UserError, match="non-finite"):
        overlay.node_data(path, {0: float("nan")}, name="macs", unit="M")
    with pytest.raises(UserError, match="says MEAN, the file has CONV_2D"):
        overlay.write_overlays(path, path.parent, latency_per_op=[{"op_index": 0, "op": "MEAN", "ms": 1.0}])


def test_int8_error_rows_map_onto_the_ops_that_produce_their_tensors(int8_file, tmp_path):
    path, rows = int8_file
    model = flatbuffer.read(path)
    values = overlay.int8_error_values(model, rows)
    assert rows and len(values) == len([op for op in model.ops if op.name not in ("QUANTIZE", "DEQUANTIZE")])
    for row in rows:
        (op,) = [op for op in model.ops if row["tensor"] in {t.name for t in op.outputs}]
        assert values[op.index] >= row["rmse_over_scale"]
    assert overlay.int8_error_values(model, {"layers": rows, "flagged": 0}) == values  # the manifest's section
    (written,) = overlay.write_overlays(path, tmp_path, int8_error_per_layer=rows)
    graph = _check_format(json.loads(written.read_text()))
    assert {int(k): v["value"] for k, v in graph["results"].items()} == values
    assert graph["thresholds"][-1]["value"] >= max(values.values())  # no value left white above the last band
    with pytest.raises(UserError, match="names an output tensor of this file"):
        overlay.int8_error_values(model, [dict(r, tensor="other/" + r["tensor"]) for r in rows])


def test_unnamed_subgraph_gets_the_signature_key_and_main(int8_file, tmp_path):
    path, _ = int8_file
    unpacked = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    unpacked.subgraphs[0].name = None
    builder = flatbuffers.Builder(0)
    builder.Finish(unpacked.Pack(builder), file_identifier=b"TFL3")
    assert overlay.graph_ids(bytes(builder.Output())) == ["serving_default", "main"]


def test_writing_is_atomic(int8_file, tmp_path, monkeypatch):
    path, rows = int8_file
    good = [{"op_index": 0, "op": "CONV_2D", "ms": 1.0}]
    with pytest.raises(UserError):  # the second overlay fails: nothing is written, not even the first
        overlay.write_overlays(path, tmp_path, latency_per_op=good,
                               int8_error_per_layer=[dict(r, tensor="x" + r["tensor"]) for r in rows])
    assert list(tmp_path.iterdir()) == []

    def half_then_fail(self, text, *args, **kwargs):
        original(self, text[:10])
        raise OSError("disk full")

    original = pathlib.Path.write_text
    monkeypatch.setattr(pathlib.Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        overlay.write_overlays(path, tmp_path, latency_per_op=good)
    assert list(tmp_path.iterdir()) == []


def test_the_predictor_s_records_become_the_latency_overlay(int8_file, tmp_path):
    from tflite_isp.search import latency

    path, _ = int8_file
    table = latency.load_table(latency.table_dir() / "cpu-amd-epyc-2t.json", device=None)
    per_op = latency.predict(path, table)["per_op"]
    [path] = overlay.write_overlays(path, tmp_path, latency_per_op=per_op)
    assert path.name.endswith("_latency.json") and path.stat().st_size > 0
