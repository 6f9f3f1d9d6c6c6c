"""The .tflite reader and the per-delegate op checker, on tiny graphs converted here (1x16x16x4)."""
import json
import tomllib

import numpy as np
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras, tf
from tflite_isp.export import compat
from tflite_isp.run import flatbuffer
from tflite_isp.run.flatbuffer import OpInfo, TensorInfo, TFLiteModel

SHAPE = (16, 16, 4)


# ---- helpers ----------------------------------------------------------------------------------------------------

def _convert(model, batch_shape, int8=None):
    """Convert a tf_keras model at a given input signature; int8='int8-io' / 'float-io' for full-integer."""
    fn = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec(batch_shape, tf.float32)])
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], model)
    if int8:
        def representative():
            rng = np.random.default_rng(0)
            for _ in range(8):
                yield [rng.random((1, *SHAPE), dtype=np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8 == "int8-io":
            conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def _write(tmp_path_factory, name, data):
    path = tmp_path_factory.mktemp("tflite") / f"{name}.tflite"
    path.write_bytes(data)
    return path


def _net(*layers, dynamic=False):
    inp = keras.Input((None, None, SHAPE[2]) if dynamic else SHAPE)
    x = inp
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x)


def _verdict(report, op):
    (v,) = [v for v in report.verdicts if v.op == op]
    return v


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny real models, converted once: {name: path}."""
    keras.utils.set_random_seed(0)
    tconv = _net(keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same"), dynamic=True)
    prelu = _net(keras.layers.Conv2D(4, 3, padding="same"), keras.layers.PReLU(shared_axes=[1, 2]))
    bilinear = _net(keras.layers.UpSampling2D(interpolation="bilinear"))
    nearest = _net(keras.layers.UpSampling2D())
    convs = _net(keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                 keras.layers.Conv2D(4, 3, padding="same"))
    fixed = (1, *SHAPE)
    models = {
        "tconv_dynamic": _convert(tconv, (None, None, None, 4)),
        "tconv_dynamic_batch": _convert(tconv, (None, *SHAPE)),
        "tconv_fixed": _convert(tconv, fixed),
        "prelu": _convert(prelu, fixed),
        "bilinear": _convert(bilinear, fixed),
        "nearest": _convert(nearest, fixed),
        "float": _convert(convs, fixed),
        "int8": _convert(convs, fixed, int8="int8-io"),
        "int8_float_io": _convert(convs, fixed, int8="float-io"),
    }
    return {name: _write(tmp_path_factory, name, data) for name, data in models.items()}


def _model(files, name):
    return flatbuffer.read(files[name])


# ---- NNAPI / GPU on transposed convolutions ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tconv_dynamic", "tconv_dynamic_batch"])
def test_dynamic_transpose_conv_is_flagged_for_nnapi_and_gpu(files, name):
    model = _model(files, name)
    assert model.has_dynamic_shape
    assert {"SHAPE", "PACK", "TRANSPOSE_CONV"} <= set(model.op_counts())  # the shape arithmetic of a dynamic export
    nnapi = compat.check(model, "nnapi:29")
    tconv = _verdict(nnapi, "TRANSPOSE_CONV")
    assert not tconv.delegable
    assert any("output shape non-constant" in r for r in tconv.reasons)
    assert any("batch 1 and fixed size" in h for h in tconv.hints)
    assert any("nnapi_delegate.cc" in s for s in tconv.sources)
    assert not _verdict(nnapi, "SHAPE").delegable

    gpu = compat.check(model, "gpu")
    assert not gpu.fully_delegable
    assert all(any(r.startswith("dynamic input shape") for r in v.reasons) for v in gpu.verdicts)
    assert gpu.summary().startswith("gpu: 0/")
    # a verdict from the op tables says so wherever it is shown (manifest, CLI): predicted, not measured
    assert "(predicted from converters/delegate_gpu.toml)" in gpu.summary()
    assert gpu.to_dict()["basis"] == "predicted" and gpu.to_dict()["table"] == "converters/delegate_gpu.toml"


def test_fixed_transpose_conv_passes_nnapi_29_but_not_28(files):
    model = _model(files, "tconv_fixed")
    assert not model.has_dynamic_shape
    assert model.op_counts() == {"TRANSPOSE_CONV": 1}  # float: nothing but the op itself
    (op,) = model.ops
    assert op.inputs[0].is_constant and op.inputs[1].is_constant and op.inputs[2].dtype == "float32"
    assert compat.check(model, "nnapi:29").fully_delegable
    assert compat.check(model, "gpu").fully_delegable
    old = compat.check(model, "nnapi:28")
    assert not old.fully_delegable
    assert any("SDK 29" in r for r in old.verdicts[0].reasons)
    assert old.summary() == ("nnapi:28: 0/1 ops delegable (predicted from converters/delegate_nnapi.toml); "
                             "falls back: TRANSPOSE_CONV (1)")


# ---- PRELU, resize ----------------------------------------------------------------------------------------------

def test_prelu_needs_nnapi_29(files):
    model = _model(files, "prelu")
    assert model.op_counts() == {"CONV_2D": 1, "PRELU": 1}
    old = compat.check(model, "nnapi:28")
    prelu = _verdict(old, "PRELU")
    assert not prelu.delegable and _verdict(old, "CONV_2D").delegable
    assert prelu.hints == ["PRELU needs NNAPI SDK >= 29 (Android 10): target a newer device or use ReLU/LeakyReLU"]
    assert old.summary() == ("nnapi:28: 1/2 ops delegable (predicted from converters/delegate_nnapi.toml); "
                             "falls back: PRELU (1)")
    assert compat.check(model, "nnapi:29").fully_delegable
    assert not _verdict(compat.check(model, "hexagon"), "PRELU").delegable  # not in Hexagon's list at all


def test_half_pixel_resize_needs_nnapi_30(files):
    model = _model(files, "bilinear")
    (op,) = model.ops
    assert (op.name, op.version) == ("RESIZE_BILINEAR", 3)  # half_pixel_centers makes it version 3
    assert op.options == {"align_corners": False, "half_pixel_centers": True}
    r29 = compat.check(model, "nnapi:29")
    assert not r29.fully_delegable
    assert any("half_pixel_centers=True" in r and "SDK 30" in r for r in r29.verdicts[0].reasons)
    assert compat.check(model, "nnapi:30").fully_delegable
    assert compat.check(model, "nnapi").sdk == 30  # the table's default level
    # The GPU delegate only rejects align_corners AND half_pixel_centers together (gpu_compatibility.cc).
    assert compat.check(model, "gpu").fully_delegable
    both = _synthetic("RESIZE_BILINEAR", options={"align_corners": True, "half_pixel_centers": True})
    assert "align_corners and half_pixel_centers both set" in compat.check(both, "gpu").verdicts[0].reasons


def test_nearest_resize_is_not_taken_by_xnnpack_and_needs_nnapi_30(files):
    model = _model(files, "nearest")
    assert model.op_counts() == {"RESIZE_NEAREST_NEIGHBOR": 1}
    assert not compat.check(model, "nnapi:29").fully_delegable
    assert compat.check(model, "nnapi:30").fully_delegable
    xnn = compat.check(model, "xnnpack").verdicts[0]
    assert not xnn.delegable and "built-in TFLite CPU kernels" in xnn.reasons[0]


# ---- quantised vs float -----------------------------------------------------------------------------------------

def test_int8_model_passes_hexagon_and_its_float_twin_does_not(files):
    int8, flt = _model(files, "int8"), _model(files, "float")
    assert int8.op_counts() == flt.op_counts() == {"CONV_2D": 2}
    assert compat.check(int8, "hexagon").fully_delegable
    hexagon = compat.check(flt, "hexagon")
    assert not hexagon.fully_delegable
    assert all(any("quantized only" in r for r in v.reasons) for v in hexagon.verdicts)
    mdla_float = compat.check(flt, "mediatek")
    assert all("FP32 needs relax-to-FP16" in v.reasons for v in mdla_float.verdicts)
    assert compat.check(int8, "mediatek").fully_delegable


def test_int8_quantize_output_needs_nnapi_30(files):
    model = _model(files, "int8_float_io")
    assert [op.name for op in model.ops] == ["QUANTIZE", "CONV_2D", "CONV_2D", "DEQUANTIZE"]
    r29 = compat.check(model, "nnapi:29")
    quantize = _verdict(r29, "QUANTIZE")
    assert not quantize.delegable and any("int8 output" in r for r in quantize.reasons)
    assert any("uint8" in h for h in quantize.hints)
    assert compat.check(model, "nnapi:30").fully_delegable
    assert compat.check(_model(files, "int8"), "nnapi:29").fully_delegable  # int8 I/O: no QUANTIZE at all


# ---- the reader against the converter and the interpreter -------------------------------------------------------

def test_reader_matches_the_interpreter(files):
    from ai_edge_litert.interpreter import Interpreter

    for name in ("int8", "int8_float_io", "prelu", "tconv_dynamic"):
        model = _model(files, name)
        it = Interpreter(model_path=str(files[name]))
        assert [op.name for op in model.ops] == [d["op_name"] for d in it._get_ops_details()]
        details = {d["index"]: d for d in it.get_tensor_details()}
        for op in model.ops:
            for t in [*op.inputs, *op.outputs]:
                d = details[t.index]
                assert (t.name, t.dtype, t.shape) == (d["name"], np.dtype(d["dtype"]).name, tuple(d["shape"]))
                assert t.shape_signature == tuple(d["shape_signature"])
                q = d["quantization_parameters"]
                assert t.scales == pytest.approx(tuple(q["scales"]))
                assert t.zero_points == tuple(int(z) for z in q["zero_points"])
                assert t.quantized_dimension == q["quantized_dimension"]
        (inp,), (out,) = model.inputs, model.outputs
        assert inp.index == it.get_input_details()[0]["index"] and out.index == it.get_output_details()[0]["index"]

    int8 = _model(files, "int8")
    assert int8.inputs[0].dtype == int8.outputs[0].dtype == "int8"
    assert int8.inputs[0].zero_points == (-128,)
    conv = int8.ops[0]
    assert conv.version == 3 and conv.options["fused_activation_function"] == "RELU"
    assert conv.options["dilation_w_factor"] == 1 and conv.options["padding"] == "SAME"
    assert conv.inputs[1].per_channel and len(conv.inputs[1].scales) == 8  # per-channel weights by default
    assert not conv.inputs[0].per_channel and conv.inputs[2].dtype == "int32"
    assert _model(files, "int8_float_io").inputs[0].dtype == "float32"
    assert int8.op_versions() == {"CONV_2D": [3]}
    summary = json.loads(json.dumps(int8.to_dict()))
    assert summary["ops"] == [{"name": "CONV_2D", "versions": [3], "count": 2}]
    assert summary["inputs"][0]["scale"] == pytest.approx(int8.inputs[0].scales[0])
    assert summary["inputs"][0]["shape_signature"] == [1, 16, 16, 4]


def test_xnnpack_table_agrees_with_the_runtime(files):
    """The default XNNPACK delegate of ai-edge-litert takes exactly the models the table says it takes."""
    from ai_edge_litert.interpreter import Interpreter

    for name in ("tconv_fixed", "tconv_dynamic", "nearest", "bilinear", "prelu", "int8"):
        it = Interpreter(model_path=str(files[name]))
        it.allocate_tensors()
        delegated = any(d["op_name"] == "DELEGATE" for d in it._get_ops_details())
        report = compat.check(_model(files, name), "xnnpack")
        assert report.fully_delegable == delegated, (name, report.summary())


# ---- errors -----------------------------------------------------------------------------------------------------

def test_bad_files_give_one_line_errors(files, tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all" * 4)
    data = files["prelu"].read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 3])
    for path in (junk, cut, tmp_path / "missing.tflite"):
        with pytest.raises(UserError) as err:
            flatbuffer.read(path)
        message = str(err.value)
        assert message.startswith(str(path)) and "\n" not in message
    with pytest.raises(UserError, match="not a TFLite flatbuffer"):
        flatbuffer.read(junk)
    with pytest.raises(UserError, match="not a TFLite flatbuffer"):
        flatbuffer.read(cut)
    with pytest.raises(UserError, match="<bytes>: not a TFLite flatbuffer"):
        flatbuffer.parse(b"")


def test_target_parsing():
    assert compat.parse_target("nnapi:29") == ("nnapi", 29)
    assert compat.parse_target("GPU") == ("gpu", None)
    assert compat.parse_target("nnapi:fl7") == ("nnapi", 1_000_007)
    with pytest.raises(UserError) as err:
        compat.parse_target("foo")
    assert str(err.value) == "unknown target 'foo'; known: gpu, hexagon, mediatek, nnapi, xnnpack"
    for bad in ("gpu:29", "nnapi:q", "nnapi:20"):
        with pytest.raises(UserError):
            compat.parse_target(bad)


# ---- the tables -------------------------------------------------------------------------------------------------

def _raw_tables():
    return {name: tomllib.loads((compat._table_dir() / f"delegate_{name}.toml").read_text())
            for name in compat.known_targets()}


def test_every_table_key_is_known_and_every_rule_cites_a_source():
    tables = _raw_tables()
    assert set(tables) == set(compat.DEFAULT_TARGETS)
    used = set()
    for name, raw in tables.items():
        assert set(raw) <= compat.TABLE_KEYS, name
        assert set(raw["target"]) <= compat.TARGET_KEYS and raw["target"]["name"] == name
        assert raw["target"]["sources"], name
        rules = list(raw.get("all_ops", [])) + [r for rules in raw["ops"].values() for r in rules]
        for rule in rules:
            assert set(rule) <= compat.RULE_KEYS, (name, rule)
            assert isinstance(rule["source"], str) and rule["source"].strip(), (name, rule)
            used |= set(rule)
        compat.load_table(name)  # the checker's own validation agrees
    assert set(compat.CHECKS) <= used  # no constraint is implemented but never used
    nnapi = tables["nnapi"]["target"]
    assert nnapi["default_sdk"] == 30 and "Android 15" in nnapi["deprecated"]
    assert "deprecated" in tables["hexagon"]["target"]["deprecated"]


def test_image_to_image_ops_are_covered():
    """The ops ISP nets convert to are in NNAPI's and GPU's tables (as supported or as a documented gap)."""
    needed = {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
              "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "PRELU", "LEAKY_RELU", "TANH", "LOGISTIC", "RELU", "RELU6", "MEAN",
              "CONCATENATION", "ADD", "MUL", "SUB", "PAD", "MIRROR_PAD", "QUANTIZE", "DEQUANTIZE", "MAX_POOL_2D",
              "AVERAGE_POOL_2D", "RESHAPE", "SHAPE", "STRIDED_SLICE", "PACK", "SPACE_TO_BATCH_ND",
              "BATCH_TO_SPACE_ND", "FULLY_CONNECTED", "HARD_SWISH", "SOFTMAX"}
    for name in ("nnapi", "gpu"):
        assert needed <= set(compat.load_table(name)["ops"]), needed - set(compat.load_table(name)["ops"])


# ---- rule semantics on hand-made ops ----------------------------------------------------------------------------

def _tensor(i, shape, dtype="float32", const=False, scales=()):
    return TensorInfo(i, f"t{i}", tuple(shape), tuple(shape), dtype, const, tuple(scales), (0,) * len(scales), 0)


def _synthetic(name, options=None, inputs=None, outputs=None, version=1):
    inputs = inputs or (_tensor(0, (1, 16, 16, 4)), _tensor(1, (2,), "int32", const=True))
    outputs = outputs or (_tensor(9, (1, 32, 32, 4)),)
    op = OpInfo(0, name, version, tuple(inputs), tuple(outputs), options or {})
    return TFLiteModel("<synthetic>", 0, [op], [inputs[0]], list(outputs), 1)


def test_rule_semantics():
    q = "int8"

    def conv_inputs(k, dtype="float32"):
        return (_tensor(0, (1, 64, 64, 4), dtype), _tensor(1, (8, k, k, 4), dtype, const=True, scales=(0.1,) * 8),
                _tensor(2, (8,), "int32", const=True))

    strided = _synthetic("CONV_2D", {"stride_h": 5, "stride_w": 1, "dilation_h_factor": 1, "dilation_w_factor": 1,
                                     "fused_activation_function": "NONE"}, conv_inputs(17, q),
                         (_tensor(9, (1, 13, 64, 8), q),))
    mdla = compat.check(strided, "mediatek").verdicts[0]
    assert "stride_h=5 not supported (takes 1, 2, 3, 4, 8)" in mdla.reasons
    assert "filter h=17 outside [1, 16]" in mdla.reasons and "filter w=17 outside [1, 16]" in mdla.reasons
    hexagon = compat.check(strided, "hexagon").verdicts[0]
    assert hexagon.reasons == ["stride_h=5 > 3"]
    # per-channel weights: NNAPI before 29 refuses them, 29 takes them
    old = compat.check(strided, "nnapi:28").verdicts[0]
    assert any(r.startswith("per-channel quantized t1 (8 scales)") for r in old.reasons)
    assert compat.check(strided, "nnapi:29").fully_delegable
    # no bias: NNAPI refuses CONV_2D
    no_bias = _synthetic("CONV_2D", {}, (*conv_inputs(3)[:2], None))
    assert "optional input 2 is omitted" in compat.check(no_bias, "nnapi:30").verdicts[0].reasons
    # Hexagon resize output limit and MDLA dimension limit
    big = _synthetic("RESIZE_BILINEAR", {"align_corners": False, "half_pixel_centers": False},
                     (_tensor(0, (1, 40, 40, 4), q), _tensor(1, (2,), "int32", const=True)),
                     (_tensor(9, (1, 80, 80, 4), q),))
    assert compat.check(big, "hexagon").verdicts[0].reasons == ["output 80x80 larger than 65x65"]
    huge = _synthetic("ADD", {"fused_activation_function": "NONE"},
                      (_tensor(0, (1, 70000, 8, 4), q), _tensor(1, (1, 70000, 8, 4), q)),
                      (_tensor(9, (1, 70000, 8, 4), q),))
    assert compat.check(huge, "mediatek").verdicts[0].reasons == ["dimension 70000 > 65535"]
    # MIRROR_PAD: GPU takes REFLECT only; NNAPI needs feature level 7
    paddings = _tensor(1, (4, 2), "int32", const=True)
    mirror = _synthetic("MIRROR_PAD", {"mode": "SYMMETRIC"}, (_tensor(0, (1, 16, 16, 4)), paddings))
    assert compat.check(mirror, "gpu").verdicts[0].reasons == ["mode=SYMMETRIC not supported (takes REFLECT)"]
    assert not compat.check(mirror, "nnapi:30").fully_delegable
    assert compat.check(mirror, "nnapi:fl7").fully_delegable
    # unknown ops are reported per target; custom ops by their custom code
    custom = _synthetic("MyCustomOp")
    assert compat.check(custom, "nnapi").verdicts[0].reasons == ["not in nnapi's supported op list"]


def test_reports_serialise_and_format(files):
    model = _model(files, "prelu")
    reports = compat.check_all(model)
    assert list(reports) == ["xnnpack", "gpu", "nnapi:30", "hexagon", "mediatek"]
    json.dumps({k: r.to_dict() for k, r in reports.items()})
    text = compat.format_table(compat.check_all(model, ["gpu", "nnapi:28", "hexagon"]))
    header, conv_row, prelu_row = text.splitlines()[:3]
    assert header.split() == ["#", "op", "v", "gpu", "nnapi:28", "hexagon"]
    assert conv_row.split() == ["0", "CONV_2D", "1", "✓", "✓", "✗"]
    assert prelu_row.split() == ["1", "PRELU", "1", "✓", "✗", "✗"]
    assert "PRELU needs NNAPI SDK >= 29" in text and "nnapi:28: 1/2 ops delegable (predicted" in text
    assert "deprecated" in text
