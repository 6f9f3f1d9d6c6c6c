"""Per-op overlays (latency, INT8 error) for a .tflite file, as node data that Google's Model Explorer loads.

Format (read, not imported: ``ai-edge-model-explorer`` pulls in flask, ipython, watchdog and a native adapter):
google-ai-edge/model-explorer ``src/server/package/src/model_explorer/node_data_builder.py`` - a ModelNodeData is
``{graph_id: GraphNodeData}``, a GraphNodeData ``{"results": {node_key: {"value": v}}, "gradient" | "thresholds"}``.
Node ids: ``src/builtin-adapter/direct_flatbuffer_to_json_graph_convert.cc`` and
``src/builtin-adapter/adapters/litert/direct_flatbuffer_to_json_graph_convert.cc`` (the built-in TFLite flatbuffer
adapter) reserve id ``str(i)`` for operator i of a subgraph before adding GraphInputs/const/GraphOutputs nodes, and
name the graph after the subgraph, else (newer adapter) its signature key, else "main" for subgraph 0 (checked on
a converted file against ``ai-edge-model-explorer-adapter`` 0.2.1's ConvertFlatbufferDirectlyToJson).
"""
from __future__ import annotations

import json
import math
import numbers
from pathlib import Path

from ai_edge_litert import schema_py_generated as schema

from tflite_isp.core import atomic
from tflite_isp.core.errors import fail
from tflite_isp.export.quant_debug import FLAG_RATIO
from tflite_isp.run import flatbuffer

# Low (good) -> high (bad); Model Explorer maps the results' min to stop 0 and max to stop 1.
GRADIENT = ({"stop": 0.0, "bgColor": "#4caf50"}, {"stop": 0.5, "bgColor": "#ffeb3b"},
            {"stop": 1.0, "bgColor": "#f44336"})
# rmse/scale: about 0.29 is pure rounding noise; quant_debug flags > FLAG_RATIO.
INT8_THRESHOLDS = ((0.35, "#4caf50"), (FLAG_RATIO, "#ffeb3b"))
INT8_ABOVE = "#f44336"


def graph_ids(data: bytes) -> list:
    """The id(s) Model Explorer's flatbuffer adapter gives subgraph 0: its name; unnamed, the signature key
    (newer adapter) and "main" (older one) - an id that names no graph is simply never looked up."""
    model = schema.Model.GetRootAs(data, 0)
    name = (model.Subgraphs(0).Name() or b"").decode("utf-8", "replace")
    if name:
        return [name]
    keys = [model.SignatureDefs(i).SignatureKey() for i in range(model.SignatureDefsLength())
            if model.SignatureDefs(i).SubgraphIndex() == 0]
    return list(dict.fromkeys([k.decode("utf-8", "replace") for k in keys[:1] if k] + ["main"]))


def _read(tflite_path):
    path = Path(tflite_path)
    if not path.is_file():
        raise fail(path, "file not found")
    data = path.read_bytes()
    return flatbuffer.parse(data, str(path)), graph_ids(data)


def _graph_data(model, values: dict, *, name: str, unit: str, thresholds=None) -> dict:
    results = {}
    for index, value in values.items():
        if not isinstance(index, numbers.Integral) or not 0 <= index < len(model.ops):
            raise fail(model.path, f"{name}: op index {index!r} is not one of the file's {len(model.ops)} ops")
        if not math.isfinite(float(value)):
            raise fail(model.path, f"{name}: op {index} ({model.ops[index].name}) has a non-finite value {value}")
        results[int(index)] = {"value": float(value)}
    graph = {"name": f"{name} ({unit})" if unit else name,
             "results": {str(index): result for index, result in sorted(results.items())}}
    if thresholds:
        graph["thresholds"] = [{"value": float(v), "bgColor": str(c)} for v, c in thresholds]
    else:
        graph["gradient"] = [dict(item) for item in GRADIENT]
    return graph


def node_data(tflite_path, values: dict, *, name: str, unit: str, thresholds=None) -> dict:
    """Model Explorer node data ({graph id: GraphNodeData}) for per-op ``values`` keyed by op index (the order of
    ``flatbuffer.read(path).ops``). ``thresholds``: (upper value, CSS colour) pairs, ascending - a value above the
    last is left white; None colours by a green-yellow-red gradient between the smallest and largest value."""
    model, ids = _read(tflite_path)
    graph = _graph_data(model, values, name=name, unit=unit, thresholds=thresholds)
    return {graph_id: graph for graph_id in ids}


def latency_values(model, records) -> dict:
    """{op index: ms} from a predictor's records ``{op_index, op, outputs, ms}``; each must name the file's op."""
    values = {}
    for record in records:
        index = record.get("op_index")
        if not isinstance(index, numbers.Integral) or not 0 <= index < len(model.ops) or "ms" not in record:
            raise fail(model.path, f"latency record {record!r}: needs an op_index among the file's {len(model.ops)} "
                                   "ops and ms")
        index = int(index)
        op = record.get("op")
        if op and str(op).upper() != model.ops[index].name.upper():
            raise fail(model.path, f"latency record for op {index} says {op}, the file has {model.ops[index].name} "
                                   "(records of another file?)")
        if index in values:
            raise fail(model.path, f"two latency records for op {index}")
        values[index] = float(record["ms"])
    return values


def int8_error_values(model, rows) -> dict:
    """{op index: worst rmse/scale of its outputs} from quant_debug.layer_table rows (or the manifest's
    ``debug_quant`` section, which holds them under "layers"): a row names the op's output tensor."""
    if isinstance(rows, dict):
        rows = rows.get("layers", [])
    producer = {t.name: op.index for op in model.ops for t in op.outputs}
    values, unmatched = {}, 0
    for row in rows:
        index, error = producer.get(row.get("tensor")), float(row["rmse_over_scale"])
        if index is None:
            unmatched += 1
        elif math.isfinite(error):  # inf: a tensor with scale 0
            values[index] = max(error, values.get(index, error))
    if rows and not values and unmatched:
        raise fail(model.path, f"none of the {unmatched} INT8 error rows names an output tensor of this file "
                               "(a table of another conversion?)")
    return values


def int8_thresholds(values: dict) -> tuple:
    """INT8_THRESHOLDS closed by a red band up to the largest value (thresholds leave values above the last white)."""
    return (*INT8_THRESHOLDS, (max([*values.values(), INT8_THRESHOLDS[-1][0]]), INT8_ABOVE))


def write_overlays(tflite_path, folder, *, latency_per_op=None, int8_error_per_layer=None) -> list:
    """One node-data JSON per metric given, ``<stem>_latency.json`` / ``<stem>_int8_error.json`` in ``folder``;
    every file is built before any is written, and each is written atomically."""
    model, ids = _read(tflite_path)
    stem, payloads = Path(tflite_path).stem, []
    if latency_per_op is not None:
        graph = _graph_data(model, latency_values(model, latency_per_op), name="latency", unit="ms")
        payloads.append((f"{stem}_latency.json", graph))
    if int8_error_per_layer is not None:
        values = int8_error_values(model, int8_error_per_layer)
        graph = _graph_data(model, values, name="INT8 error", unit="rmse/scale", thresholds=int8_thresholds(values))
        payloads.append((f"{stem}_int8_error.json", graph))
    texts = [(name, json.dumps({graph_id: graph for graph_id in ids}, indent=1, allow_nan=False) + "\n")
             for name, graph in payloads]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in texts:
        atomic.write_text(folder / name, text)
        written.append(folder / name)
    return written


__all__ = ["GRADIENT", "INT8_THRESHOLDS", "graph_ids", "int8_error_values", "int8_thresholds", "latency_values",
           "node_data", "write_overlays"]
