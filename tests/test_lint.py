"""Lint rules (converters/lint_rules.toml): each rule fires on a known-bad tiny model and not on its good twin."""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras
from tflite_isp.export import check, compat, convert, lint
from tflite_isp.nets.layers import PixelShuffle
from tflite_isp.run import flatbuffer
from tflite_isp.run.flatbuffer import OpInfo, TensorInfo, TFLiteModel

L = keras.layers
SHAPE = (16, 16, 4)
ROOT = Path(__file__).resolve().parents[1]


def _net(*layers):
    inp = keras.Input(SHAPE)
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x)


DEAD = keras.initializers.Constant(-100.0)


def _clip():
    return L.ReLU(max_value=1.0)  # converts to MINIMUM + RELU: the output clamp


# name: (layers, precision). The INT8 nets end with a clip so that only the rule under test fires.
NETS = {
    "tconv_int8": (lambda: [L.Conv2D(8, 3, padding="same", activation="relu"),
                            L.Conv2DTranspose(4, 2, strides=2, padding="same"), _clip()], "int8"),
    "shuffle_int8": (lambda: [L.Conv2D(16, 3, padding="same", activation="relu"), PixelShuffle(2), _clip()], "int8"),
    "bilinear_fp32": (lambda: [L.Conv2D(4, 3, padding="same"), L.UpSampling2D(2, interpolation="bilinear")], "fp32"),
    "shuffle_fp32": (lambda: [L.Conv2D(16, 3, padding="same"), PixelShuffle(2)], "fp32"),
    "dw7_int8": (lambda: [L.DepthwiseConv2D(7, padding="same"), _clip()], "int8"),
    "dw3s2_int8": (lambda: [L.DepthwiseConv2D(3, strides=2, padding="same"), _clip()], "int8"),
    "dw3_int8": (lambda: [L.DepthwiseConv2D(3, padding="same"), _clip()], "int8"),
    "gap_fp16": (lambda: [L.Conv2D(4, 3, padding="same"), L.GlobalAveragePooling2D(keepdims=True)], "fp16"),
    "gap_fp32": (lambda: [L.Conv2D(4, 3, padding="same"), L.GlobalAveragePooling2D(keepdims=True)], "fp32"),
    "unclipped_int8": (lambda: [L.Conv2D(4, 3, padding="same")], "int8"),
    "clipped_int8": (lambda: [L.Conv2D(4, 3, padding="same"), _clip()], "int8"),
    "nearest_16x8": (lambda: [L.Conv2D(4, 3, padding="same"), L.UpSampling2D(2)], "int16x8"),
    "nearest_int8": (lambda: [L.Conv2D(4, 3, padding="same"), L.UpSampling2D(2), _clip()], "int8"),
    # a dead ReLU (bias -100 on [0, 1] inputs): zeros on every calibration image, its range collapses
    "dead_int8": (lambda: [L.Conv2D(8, 3, padding="same", activation="relu", bias_initializer=DEAD),
                           L.Conv2D(4, 3, padding="same"), _clip()], "int8"),
    "live_int8": (lambda: [L.Conv2D(8, 3, padding="same", activation="relu"),
                           L.Conv2D(4, 3, padding="same"), _clip()], "int8"),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every net above converted once with the project's converter: {name: (path, TFLiteModel)}."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    representative = convert.representative_from([rng.random((1, *SHAPE), dtype=np.float32) for _ in range(4)])
    recipes, folder, out = convert.precisions(), tmp_path_factory.mktemp("lint"), {}
    for name, (layers, precision) in NETS.items():
        recipe = recipes[precision]
        data = convert.convert(_net(*layers()), (1, *SHAPE), recipe,
                               representative=representative if recipe.representative else None)
        path = folder / f"{name}.tflite"
        path.write_bytes(data)
        out[name] = (path, flatbuffer.parse(data, name))
    return out


def _rules(files, name, targets):
    return {f.rule for f in lint.lint(files[name][1], targets)}


# (rule, known-bad file, good twin, targets): the bad file triggers exactly that rule, the twin none.
PAIRS = [
    ("nnapi-int8-transpose-conv", "tconv_int8", "shuffle_int8", ["nnapi@2.4"]),
    ("npu-resize-slow", "bilinear_fp32", "shuffle_fp32", ["nnapi", "hexagon", "mediatek"]),
    ("qualcomm-int8-depthwise", "dw7_int8", "dw3_int8", ["hexagon", "nnapi"]),
    ("qualcomm-int8-depthwise", "dw3s2_int8", "dw3_int8", ["hexagon"]),
    ("gpu-fp16-reduction-overflow", "gap_fp16", "gap_fp32", ["gpu"]),
    ("int8-output-unclipped", "unclipped_int8", "clipped_int8", ["xnnpack"]),
    ("int16-resize-nearest", "nearest_16x8", "nearest_int8", ["xnnpack@2.3"]),
    ("xnnpack-requantization-range", "dead_int8", "live_int8", ["xnnpack"]),
]


@pytest.mark.parametrize("rule, bad, twin, targets", PAIRS, ids=[f"{p[0]}:{p[1]}" for p in PAIRS])
def test_bad_file_triggers_exactly_its_rule_and_the_twin_none(files, rule, bad, twin, targets):
    assert _rules(files, bad, targets) == {rule}
    assert _rules(files, twin, targets) == set()


def test_runtime_ranges_follow_the_target_version(files):
    tconv, nearest = files["tconv_int8"][1], files["nearest_16x8"][1]
    assert _rules(files, "tconv_int8", ["nnapi@2.5"]) == set()      # fixed by PR #46183
    assert _rules(files, "tconv_int8", ["nnapi"]) == set()          # the pinned 2.21
    assert _rules(files, "tconv_int8", ["nnapi:28@2.4"]) == set()   # below SDK 29 the op table refuses it anyway
    assert _rules(files, "nearest_16x8", ["xnnpack@2.4"]) == set()  # int16 resize kernel since 2.4
    (hit,) = lint.lint(tconv, ["nnapi:30@2.4.1"])
    assert (hit.target, hit.runtime, hit.op, hit.severity) == ("nnapi:30@2.4.1", "2.4.1", "TRANSPOSE_CONV", "error")
    assert hit.source.endswith("/46098") and hit.basis.startswith("pinned:")
    assert {f.target for f in lint.lint(nearest, ["xnnpack@2.3", "gpu@2.3"])} == {"any@2.3"}  # once per version


def test_file_precision(files):
    got = {name: lint.file_precision(model) for name, (_, model) in files.items()}
    assert got["tconv_int8"] == "int8" and got["gap_fp16"] == "fp16" and got["gap_fp32"] == "fp32"
    assert got["nearest_16x8"] == "int16x8"


def _t(i, dtype, const=False, shape=(1, 8, 8, 4)):
    return TensorInfo(i, f"t{i}", shape, shape, dtype, const)


def test_int16_ops_without_kernels_are_errors_at_check_time():
    """DEPTH_TO_SPACE / RSQRT with int16 inputs (the converter refuses the first in strict 16x8; a hand-made or
    other-tool file can hold it): no int16 kernel in LiteRT, so the lint says so before a run does."""
    ops = [OpInfo(0, "DEPTH_TO_SPACE", 1, (_t(0, "int16"),), (_t(1, "int16"),)),
           OpInfo(1, "RSQRT", 3, (_t(1, "int16"),), (_t(2, "int16"),))]
    model = TFLiteModel("synthetic", 0, ops, [ops[0].inputs[0]], [ops[1].outputs[0]], 1)
    assert {(f.rule, f.op, f.severity) for f in lint.lint(model, ["xnnpack@2.14"])} == {
        ("int16-missing-kernel", "DEPTH_TO_SPACE", "error"), ("int16-rsqrt", "RSQRT", "error")}
    assert {f.rule for f in lint.lint(model, ["xnnpack"])} == {"int16-missing-kernel"}


def test_clamp_detection_looks_through_min_max_and_the_final_dequantize():
    conv = OpInfo(0, "CONV_2D", 3, (_t(0, "int8"),), (_t(1, "int8"),), {"fused_activation_function": "NONE"})
    lo = OpInfo(1, "MAXIMUM", 2, (_t(1, "int8"), _t(9, "int8", const=True)), (_t(2, "int8"),))
    hi = OpInfo(2, "MINIMUM", 2, (_t(2, "int8"), _t(8, "int8", const=True)), (_t(3, "int8"),))
    deq = OpInfo(3, "DEQUANTIZE", 2, (_t(3, "int8"),), (_t(4, "float32"),))
    clipped = TFLiteModel("c", 0, [conv, lo, hi, deq], [conv.inputs[0]], [deq.outputs[0]], 1)
    assert lint.unclipped_int8_output(clipped) == []
    deq_conv = OpInfo(1, "DEQUANTIZE", 2, (_t(1, "int8"),), (_t(4, "float32"),))
    bare = TFLiteModel("b", 0, [conv, deq_conv], [conv.inputs[0]], [deq_conv.outputs[0]], 1)
    assert [op.name for op in lint.unclipped_int8_output(bare)] == ["CONV_2D"]


def test_rules_file_is_complete_and_cited():
    raw = tomllib.loads((ROOT / "converters" / "lint_rules.toml").read_text())
    rules = lint.load_rules()["rules"]
    assert len(rules) == len(raw["rule"]) >= 6
    for rule in rules:
        assert rule["source"].startswith("https://github.com/"), rule["id"]
        assert rule["runtime"]["basis"].startswith(lint.BASES), rule["id"]
        bounded = {"from", "until"} & set(rule["runtime"])
        assert not bounded or rule["runtime"]["basis"].startswith("pinned:"), rule["id"]  # a bound says how
    pins = (ROOT / "constraints.txt").read_text()
    assert re.search(rf"^tensorflow=={re.escape(lint.load_rules()['default'])}\.", pins, re.M), \
        "the lint default runtime must be the pinned tensorflow"
    assert lint._rule_problem({**rules[0], "severity": "fatal"}, set()).startswith("rule nnapi-int8-transpose-conv")
    assert "unknown keys" in lint._rule_problem({**rules[0], "when": 1}, set())


def test_target_syntax():
    assert compat.parse_target("nnapi:29@2.4") == ("nnapi", 29)
    assert compat.split_runtime("gpu@2.21") == ("gpu", "2.21") and compat.split_runtime("gpu") == ("gpu", None)
    with pytest.raises(UserError, match="runtime version"):
        compat.parse_target("gpu@latest")
    assert lint.version_key("2.4") < lint.version_key("2.15") < lint.version_key("2.21.0")


def test_check_command_shows_findings_and_strict_fails_on_warnings(files, capsys):
    path = files["unclipped_int8"][0]
    assert check.check_command([path], ["xnnpack"]) == 0
    out = capsys.readouterr()
    assert "warning  any@2.21  int8-output-unclipped  CONV_2D #0" in out.out and "hint:" in out.out
    assert check.check_command([path], ["xnnpack"], strict=True) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("FAILED lint --strict: 0 error(s), 1 warning(s)")
    assert check.check_command([files["tconv_int8"][0]], ["nnapi@2.4"]) == 1
    assert "nnapi-int8-transpose-conv" in capsys.readouterr().err


def test_manifest_records_findings_per_file(files):
    from tflite_isp.export.manifest import file_record  # lazy: only this test needs it

    data = files["gap_fp16"][0].read_bytes()
    record, _ = file_record(data, "model.tflite", ["gpu@2.21"])
    found = json.loads(json.dumps(record))["lint"]
    assert found["warnings"] == 1 and found["errors"] == 0 and found["precision"] == "fp16"
    assert found["findings"][0]["rule"] == "gpu-fp16-reduction-overflow"


def test_a_file_xnnpack_cannot_requantise_is_a_one_line_error_not_an_abort(files):
    """LiteRT 2.3 aborts the whole process loading such a file (checked in a child: if that ever stops, bound the
    rule's runtime); Runner (the exporter's fidelity step, score, enhance) refuses it first in one line naming the
    op."""
    from tflite_isp.run.litert import Runner

    dead, live = files["dead_int8"][0], files["live_int8"][0]
    load = "import sys; from ai_edge_litert.interpreter import Interpreter; Interpreter(sys.argv[1]).allocate_tensors()"
    child = subprocess.run([sys.executable, "-c", load, str(dead)], capture_output=True, text=True, timeout=120)
    assert child.returncode != 0, "LiteRT now loads it: pin rule xnnpack-requantization-range's runtime"
    assert subprocess.run([sys.executable, "-c", load, str(live)], capture_output=True, timeout=120).returncode == 0
    with pytest.raises(UserError) as err:
        Runner(dead)
    message = str(err.value)
    assert "\n" not in message and str(dead) in message and "CONV_2D #" in message and ">= 256" in message
    with pytest.raises(UserError, match=r"^int8/model.tflite: LiteRT cannot load it \(it aborts"):
        Runner(dead.read_bytes(), name="int8/model.tflite")
    assert Runner(live)(np.zeros((1, *SHAPE), np.float32)).shape == (1, 16, 16, 4)
