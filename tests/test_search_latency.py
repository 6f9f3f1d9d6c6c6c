"""tflite_isp.search latency tables: a tiny local profile (real LiteRT timings), the table's checks, the predictor's
per-op records, and the phone path's op-profiling flags and CSV parser (no phone here: arguments and parsing only)."""
import json

import numpy as np
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras
from tflite_isp.devices import bench_output
from tflite_isp.devices.android_bench import BenchSettings
from tflite_isp.export import convert
from tflite_isp.nets.layers import PixelShuffle
from tflite_isp.run import flatbuffer
from tflite_isp.search import latency, probes, profile

HW = (34, 60)
SUBSET = [probes.Probe("conv3x3", HW, 8, "int8", cout=16), probes.Probe("conv3x3", HW, 16, "int8", cout=32),
          probes.Probe("conv1x1", HW, 32, "int8", cout=8), probes.Probe("add", HW, 16, "int8"),
          probes.Probe("relu", HW, 16, "fp32"), probes.Probe("d2s", HW, 12, "int8", extra=(("b", 2),))]


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("latency") / "table.json"
    lines = []
    return profile.profile("local", out, log=lines.append, probes=SUBSET, threads=1)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    """A small network of probe ops, converted full-integer: conv, residual add, conv to 12, depth-to-space."""
    x = keras.Input(batch_size=1, shape=(*HW, 4))
    y = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = keras.layers.Add()([y, keras.layers.Conv2D(16, 3, padding="same")(y)])
    y = keras.layers.Conv2D(12, 1)(y)
    model = keras.Model(x, PixelShuffle(2)(y))
    path = tmp_path_factory.mktemp("cand") / "cand.tflite"
    path.write_bytes(_int8(model))
    return path


def _int8(model):
    data = [np.random.default_rng(0).random((1, *HW, 4), dtype=np.float32)]
    return convert.convert(model, (1, *HW, 4), convert.precisions()["int8"],
                           representative=convert.representative_from(data), io_type="int8")


def test_profile_writes_a_table_that_round_trips(table_path):
    table = latency.load_table(table_path)
    raw = json.loads(table_path.read_text())
    assert table["models"] == raw["models"] and table["device"] == raw["device"]
    assert table["description"]["kind"] == "local" and table["description"]["cpu_model"]
    assert "commit" in table and table["overhead_ms"] >= 0
    assert {p["name"] for p in table["probes"]} == {p.name for p in SUBSET}
    assert all(p["ms"] > 0 for p in table["probes"])
    assert {"CONV_2D_3x3/int8", "CONV_2D_1x1/int8", "ADD/int8", "RELU/fp32", "DEPTH_TO_SPACE/int8"} <= set(
        table["models"])
    assert all(c >= 0 for m in table["models"].values() for c in m["coef"])
    refit = latency.load_table(profile.refit(table_path, log=lambda _: None))  # the same timings, refitted
    assert refit["models"] == table["models"] and refit["probes"] == raw["probes"]


def test_predict_covers_every_op(table_path, candidate):
    table = latency.load_table(table_path)
    result = latency.predict(candidate, table)
    tfl = flatbuffer.read(candidate)
    assert [r["op_index"] for r in result["per_op"]] == [op.index for op in tfl.ops]
    assert [r["op"] for r in result["per_op"]] == [op.name for op in tfl.ops]
    assert all(r["outputs"] and r["ms"] >= 0 for r in result["per_op"])
    assert result["ms"] == pytest.approx(table["overhead_ms"] + sum(r["ms"] for r in result["per_op"]), abs=1e-2)
    assert latency.predict(tfl, table)["ms"] == result["ms"]  # a parsed model works too
    rows = latency.ms_per_gmac(table)
    conv = next(r for r in rows if r["key"] == "CONV_2D_3x3/int8")
    assert conv["ms_per_gmac"] > 0 and next(r for r in rows if r["key"] == "ADD/int8")["ms_per_gmac"] is None


def _relu_record(op, mbs, ms):
    ops = [{"key": "RELU/fp32", "features": {"mb_in": m, "mb_out": m, "mb_over": 0.0, "op": 1.0}} for m in mbs]
    return {"op": op, "ms": ms, "op_ms": ms, "ops": ops}


def test_whole_network_probes_pull_the_op_models_to_in_graph_costs():
    """A ReLU costs 0.1 ms/MB alone and 1.5x that inside a network: fitted with the network probes, the table
    predicts an unseen network closer than fitted on single ops alone, and reports its leave-one-out error."""
    singles = [_relu_record("relu", [m], 0.2 * m) for m in (1.0, 2.0, 3.0, 4.0)]
    graphs = [_relu_record("graph", mbs, 1.5 * 0.2 * sum(mbs)) for mbs in ([1, 2, 3], [2, 2], [4, 1], [3, 3, 1])]
    unseen = _relu_record("graph", [2.0, 5.0], 1.5 * 0.2 * 7.0)

    def error(records):
        models, _, loo = profile.fit(records)
        return abs(profile._op_ms(unseen["ops"][0], models) + profile._op_ms(unseen["ops"][1], models)
                   - unseen["ms"]) / unseen["ms"], loo

    alone, loo_alone = error(singles)
    joint, loo_joint = error(singles + graphs)
    assert alone > 0.3 and joint < alone / 2
    assert loo_alone["graphs"] is None and loo_joint["graphs"] is not None and loo_joint["graphs"] < 35


def test_graph_probes_are_networks_of_the_search_space_at_full_hd():
    graphs = probes.probe_set(precisions=("int8",), ops=["graph"], graphs=2)
    assert [p.name for p in graphs] == ["graph-544x960-c4-draw0-int8", "graph-544x960-c4-draw1-int8"]
    assert probes.probe_set(precisions=("int8",), ops=["graph"], scale_limit=4) == []  # quick tests skip them
    model = probes.build(graphs[1])
    assert model.input_shape == (1, *probes.FULL, 4)
    assert probes.graph_sections(2)[1]["architecture"] == "searchnet"
    assert probes.graph_sections(2) != probes.graph_sections(2, seed=7)  # the benchmark's held-out draws differ


def test_another_devices_table_is_refused_in_one_line(table_path, tmp_path):
    raw = json.loads(table_path.read_text())
    raw["description"]["cpu_model"] = "Snapdragon 8 Gen 3"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(raw))
    with pytest.raises(UserError) as err:
        latency.load_table(other)
    text = str(err.value)
    assert "\n" not in text and "Snapdragon 8 Gen 3" in text and str(other) in text
    assert latency.local_device()["cpu_model"] in text
    assert latency.load_table(other, device=None)["description"]["cpu_model"] == "Snapdragon 8 Gen 3"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": 1, "description": {}}), "[]",
                                     json.dumps({"format": 1, "description": {}, "overhead_ms": 0.1,
                                                 "models": {"ADD/int8": {"features": ["op"], "coef": []}}})])
def test_garbled_table_is_refused_in_one_line(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    with pytest.raises(UserError, match="not a latency table") as err:
        latency.load_table(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_missing_table_and_unknown_runtime_are_one_line(tmp_path):
    with pytest.raises(UserError, match="latency table not found"):
        latency.load_table(tmp_path / "nope.json")
    with pytest.raises(UserError, match="not found"):
        latency.load_table("no-such-device")
    assert latency.default_table_path("cpu-x-2t").parts[-2:] == ("latency", "cpu-x-2t.json")
    for bad in ("gpu", "adb", "adb:", "jetson:", "jetson:a:b", "adb:S:gpu:x", "adb:S:tpu"):
        with pytest.raises(UserError, match=r"^unknown --runtime .*(use local, adb:SERIAL|DELEGATE must be)") as err:
            profile.timer_for(bad)
        assert "\n" not in str(err.value)


def test_adb_probe_arguments_ask_for_csv_op_profiling():
    args = profile.adb_probe_args(BenchSettings(delegate="gpu"), "/data/local/tmp/tflite_isp/p.tflite")
    assert "--enable_op_profiling=true" in args and "--op_profiling_output_mode=csv" in args
    assert "--graph=/data/local/tmp/tflite_isp/p.tflite" in args and "--use_gpu=true" in args


# benchmark_model's op profile with --op_profiling_output_mode=csv, printed through TFLITE_LOG (formats:
# LiteRT tflite/profiling/profile_summary_formatter.cc and tsl stats_calculator.cc; numbers made up). Names have
# their commas turned into tabs by the formatter.
CSV_SAMPLE = """\
INFO: Inference timings in us: Init: 81234, First inference: 14021, Warmup (avg): 13502.3, Inference (avg): 12950.1
INFO: Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
node type, first, avg_ms, %, cdf%, mem KB, times called, name
ModifyGraphWithDelegate, 61.214, 61.214, 97.871%, 97.871%, 2048, 1, ModifyGraphWithDelegate/0
AllocateTensors, 1.331, 0.666, 2.129%, 100%, 0, 2, AllocateTensors/0

Timings (microseconds): count=1 curr=62545
Memory (bytes): count=0
2 nodes observed

INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
node type, first, avg_ms, %, cdf%, mem KB, times called, name
CONV_2D, 9.812, 9.701, 75.1%, 75.1%, 0, 1, [model/conv2d/Relu;model/conv2d/BiasAdd\tmodel/conv2d/Conv2D]:0
TANH, 0.402, 0.391, 3.03%, 78.1%, 0, 1, [model/activation/Tanh]:1
DEPTH_TO_SPACE, 2.9, 2.83, 21.9%, 100%, 0, 1, [Identity]:2

============================== Top by Computation Time ==============================
node type, first, avg_ms, %, cdf%, mem KB, times called, name
CONV_2D, 9.812, 9.701, 75.1%, 75.1%, 0, 1, [model/conv2d/Relu;model/conv2d/BiasAdd\tmodel/conv2d/Conv2D]:0
DEPTH_TO_SPACE, 2.9, 2.83, 21.9%, 96.9%, 0, 1, [Identity]:2
TANH, 0.402, 0.391, 3.03%, 100%, 0, 1, [model/activation/Tanh]:1

Number of nodes executed: 3
============================== Summary by node type ==============================
node type, count, avg_ms, avg %, cdf %, mem KB, times called
CONV_2D, 1, 9.701, 75.1%, 75.1%, 0, 1
DEPTH_TO_SPACE, 1, 2.83, 21.9%, 97%, 0, 1
TANH, 1, 0.391, 3.03%, 100%, 0, 1

Timings (microseconds): count=50 first=13114 curr=12890 min=12811 max=13540 avg=12922.4 std=141
Memory (bytes): count=0
3 nodes observed

Delegate internal:
============================== Run Order ==============================
node type, first, avg_ms, %, cdf%, mem KB, times called, name
Convolution (NHWC\tQC8) IGEMM, 9.5, 9.4, 100%, 100%, 0, 1, Delegate/Convolution (NHWC\tQC8) IGEMM:0

Timings (microseconds): count=50 first=9500 curr=9400 min=9380 max=9600 avg=9400 std=20
"""


def test_op_profile_csv_parser_reads_the_run_order_rows():
    rows = bench_output.parse_op_profile(CSV_SAMPLE)
    primary = [r for r in rows if not r["delegate"]]
    assert [r["node_type"] for r in primary] == ["CONV_2D", "TANH", "DEPTH_TO_SPACE"]
    assert [r["op_index"] for r in primary] == [0, 1, 2]
    assert primary[0]["avg_ms"] == pytest.approx(9.701) and primary[0]["first_ms"] == pytest.approx(9.812)
    assert primary[0]["pct"] == pytest.approx(75.1) and primary[0]["times_called"] == 1
    assert primary[0]["name"].startswith("[model/conv2d/Relu;model/conv2d/BiasAdd,model/conv2d/Conv2D]")
    delegate = [r for r in rows if r["delegate"]]
    assert [r["node_type"] for r in delegate] == ["Convolution (NHWC,QC8) IGEMM"]
    assert bench_output.parse(CSV_SAMPLE).ms == pytest.approx(12.9501)  # the timings parser still reads the run
    assert bench_output.parse_op_profile("Inference timings in us: Init: 1, Inference (avg): 2") == []
    # an older build's "start" column, and logcat framing
    old = ("11-22 10:00:00.123  1234  5678 I tflite  : Operator-wise Profiling Info for Regular Benchmark Runs:\n"
           "11-22 10:00:00.123  1234  5678 I tflite  : ============================== Run Order ====\n"
           "11-22 10:00:00.123  1234  5678 I tflite  : node type, start, first, avg_ms, %, cdf%, mem KB, times "
           "called, name\n"
           "11-22 10:00:00.123  1234  5678 I tflite  : ADD, 0.010, 1.5, 1.25, 100%, 100%, 0, 1, [add]:4\n")
    (row,) = bench_output.parse_op_profile(old)
    assert row["node_type"] == "ADD" and row["avg_ms"] == pytest.approx(1.25) and row["op_index"] == 4
