"""ONNX export through tf2onnx: the built-in architectures (CSANet too) at a small size, parity with Keras,
and failures that leave no file behind."""
import numpy as np
import onnx
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras, tf
from tflite_isp.export.onnx_export import parity, to_onnx
from tflite_isp.nets import architectures, recipes

H = W = 32  # packed size; divisible by 16 (the U-Nets' input multiple)
SLIM = {"smallnet": {}, "sid_unet": {"width_multiplier": 0.125}, "punet": {"base": 4}, "csanet": {}}


def _randomize(model, seed):
    """Variance-preserving random weights: PUNET's own init (stddev 0.01) gives a near-constant
    output, which would make parity trivially small."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim >= 2:
            fan_in = int(np.prod(w.shape[:-1]))
            weights.append(rng.normal(0.0, np.sqrt(1.0 / fan_in), w.shape).astype(np.float32))
        else:
            weights.append(rng.normal(0.0, 0.05, w.shape).astype(np.float32))
    model.set_weights(weights)


def _build(name):
    recipe = recipes.load_recipe(name)
    if SLIM[name]:
        recipe = recipe.with_model(**SLIM[name])
    assert H % architectures.input_multiple(recipe.model) == 0
    model = architectures.build(recipe.model, height=H, width=W, batch=1)
    _randomize(model, seed=len(name))
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (model, path, info, inputs), each model converted once for the module."""
    folder = tmp_path_factory.mktemp("onnx")
    inputs = np.random.default_rng(0).random((2, H, W, 4), dtype=np.float32)
    out = {}
    for name in SLIM:
        model = _build(name)
        path = folder / f"{name}.onnx"
        info = to_onnx(model, path, height=H, width=W)
        out[name] = (model, path, info, inputs)
    return out


@pytest.mark.parametrize("name", list(SLIM))
def test_export_is_valid_and_matches_keras(exported, name):
    model, path, info, inputs = exported[name]
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert info["opset"] == 17
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in proto.opset_import)
    assert info["size_bytes"] == path.stat().st_size
    assert info["input"] == {"name": "raw", "shape": [1, H, W, 4]}
    assert info["output"]["shape"] == [1, 2 * H, 2 * W, 3]
    assert [i.name for i in proto.graph.input] == [info["input"]["name"]]
    assert [o.name for o in proto.graph.output] == [info["output"]["name"]]
    assert list(info["ops"]) == sorted(info["ops"]) and all(n > 0 for n in info["ops"].values())
    assert sum(info["ops"].values()) == len(proto.graph.node)

    # The model must produce a non-trivial picture, or parity proves nothing.
    assert float(np.std(model(inputs[:1], training=False))) > 1e-2
    result = parity(path, model, inputs)
    assert result["images"] == 2
    assert result["max_abs_diff"] < 1e-4, result
    assert 0.0 <= result["mean_abs_diff"] <= result["max_abs_diff"]


def test_op_lists(exported):
    smallnet_ops = exported["smallnet"][2]["ops"]
    assert smallnet_ops["DepthToSpace"] == 1 and smallnet_ops["Conv"] == 3
    unet_ops = exported["sid_unet"][2]["ops"]
    for op in ("DepthToSpace", "ConvTranspose", "MaxPool", "Concat", "LeakyRelu"):
        assert op in unet_ops, unet_ops
    assert "ConvTranspose" in exported["punet"][2]["ops"]


def test_depth_to_space_mode_is_checked_by_parity(exported, tmp_path):
    """TF's NHWC depth_to_space is ONNX DCR; the same graph with CRD must fail parity clearly."""
    model, path, _, inputs = exported["smallnet"]
    proto = onnx.load(str(path))
    (d2s,) = [n for n in proto.graph.node if n.op_type == "DepthToSpace"]
    mode = {a.name: a.s for a in d2s.attribute}.get("mode", b"DCR")
    assert mode == b"DCR"
    for a in list(d2s.attribute):
        if a.name == "mode":
            d2s.attribute.remove(a)
    d2s.attribute.append(onnx.helper.make_attribute("mode", "CRD"))
    wrong = tmp_path / "crd.onnx"
    onnx.save(proto, str(wrong))
    assert parity(wrong, model, inputs[:1])["max_abs_diff"] > 1e-2


def test_missing_folder_is_a_user_error(tmp_path):
    model = _build("smallnet")
    target = tmp_path / "no" / "such" / "dir" / "m.onnx"
    with pytest.raises(UserError, match="does not exist"):
        to_onnx(model, target, height=H, width=W)
    assert not target.parent.exists()
    assert list(tmp_path.iterdir()) == []


def test_wrong_input_channels_is_a_user_error(tmp_path):
    inp = keras.Input((H, W, 3), batch_size=1)
    out = architectures.PixelShuffle(2)(keras.layers.Conv2D(12, 3, padding="same")(inp))
    model = keras.Model(inp, out)
    target = tmp_path / "m.onnx"
    with pytest.raises(UserError) as err:
        to_onnx(model, target, height=H, width=W)
    assert "does not accept" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_unsupported_op_is_named_and_no_file_left(tmp_path):
    inp = keras.Input((H, W, 4), batch_size=1)
    x = architectures.PixelShuffle(2)(keras.layers.Conv2D(12, 1)(inp))
    x = keras.layers.Lambda(lambda t: tf.raw_ops.Betainc(a=t, b=t, x=t))(x)  # no ONNX equivalent
    model = keras.Model(inp, x)
    target = tmp_path / "m.onnx"
    with pytest.raises(UserError, match="Betainc") as err:
        to_onnx(model, target, height=H, width=W)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_opset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="opset 99"):
        to_onnx(_build("smallnet"), tmp_path / "m.onnx", height=H, width=W, opset=99)
    assert list(tmp_path.iterdir()) == []
