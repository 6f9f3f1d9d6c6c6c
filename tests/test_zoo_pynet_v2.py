"""PyNET-V2 Mobile (gmalivenko/PyNET-v2 model.py): structure, exact parameter count, dynamic size, serialisation,
QAT, INT8 in LiteRT, ONNX parity, and training with the level heads (objectives.Levels).

The zoo-wide tests in test_models.py cover seeding and serialisation through PUBLISHED.
"""
import numpy as np
import pytest
from conftest import fit_steps

from tflite_isp.core.tf import keras, tf
from tflite_isp.nets import architectures, pynet_v2, recipes
from tflite_isp.nets.norm import ChannelSlice, InstanceNorm, ReflectPad
from tflite_isp.nets.stats import count_macs, count_params

# Counted from gmalivenko/PyNET-v2 model.py (the level-1 model train_model_keras.py builds; PReLU one slope per
# channel, tfa InstanceNormalization affine): level 3 = 1,216 + 8,320 + 33,024 (input, two 2x2 stride-2 convs)
# + 91,008 (residual groups 4 x 2) + 151,040 (spatial att.) + 345,216 (channel att.); level 2 = 73,856 (up)
# + 36,992 + 4,224 + 60,032 (groups 2 x 3) + 86,592 (channel att.); level 1 = 18,496 (up) + 9,280 + 1,088
# + 3,456 + 5,760 (groups) + 655 (head) = 930,255. The level-2/3 heads (1,548 and 780) are not in it.
PARAMETERS = 930_255
SIZE = 32  # packed; the input multiple is 4, the smallest size 28


@pytest.fixture(scope="module")
def recipe():
    return recipes.load_recipe("pynet_v2_mobile")


@pytest.fixture(scope="module")
def fixed(recipe):
    """One 32 x 32 build with variance-preserving random weights, shared (each build takes seconds)."""
    keras.utils.set_random_seed(0)
    return _randomize(architectures.build(recipe.model, height=SIZE, width=SIZE, batch=1))


def _randomize(model, seed=0):
    """Variance-preserving weights: the reference init (stddev 0.01) makes the output almost constant."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, np.sqrt(1 / np.prod(w.shape[:-1])), w.shape).astype(np.float32) if w.ndim > 1
                       else (rng.normal(0, 0.05, w.shape) + (w == 1)).astype(np.float32) for w in model.get_weights()])
    return model


def test_full_hd_build_has_the_reference_count(recipe):
    model = architectures.build(recipe.model, height=544, width=960, batch=1)
    assert model.output_shape == (1, 1088, 1920, 3)
    assert count_params(model) == PARAMETERS
    assert 63.0e9 < count_macs(model) < 63.6e9  # convolutions only: 63.34 GMAC
    types = {type(layer) for layer in model.layers}
    assert keras.layers.Lambda not in types and {InstanceNorm, ReflectPad, ChannelSlice} <= types
    assert sum(isinstance(layer, InstanceNorm) for layer in model.layers) == 10
    resize = [layer for layer in model.layers if isinstance(layer, keras.layers.UpSampling2D)]
    assert [r.interpolation for r in resize] == ["bilinear"] * 2


def test_level_heads_are_extra_outputs():
    inputs = keras.Input((SIZE, SIZE, 4), batch_size=1)
    outs = pynet_v2.pynet_v2_levels(inputs)
    assert [tuple(o.shape) for o in outs] == [(1, 64, 64, 3), (1, 32, 32, 3), (1, 16, 16, 3)]
    assert count_params(keras.Model(inputs, list(outs))) == PARAMETERS + 1_548 + 780


def test_dynamic_build_and_size_rules(recipe):
    model = architectures.build(recipe.model)
    assert model.input_shape == (None, None, None, 4)
    assert model(tf.zeros([2, 28, 44, 4])).shape == (2, 56, 88, 3)
    assert architectures.input_multiple(recipe.model) == 4
    with pytest.raises(ValueError, match="not divisible by 4"):
        architectures.build(recipe.model, height=30, width=32)
    with pytest.raises(ValueError, match="at least 28"):
        architectures.build(recipe.model, height=24, width=32)


def test_saved_model_round_trip(fixed, tmp_path):
    model = fixed
    model.save(tmp_path / "m.keras")
    again = architectures.load(tmp_path / "m.keras")
    x = tf.random.uniform([1, SIZE, SIZE, 4], seed=1)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-5)


def test_qat_annotates_every_layer(fixed):
    from tflite_isp.export import qat

    q = qat.quantize(fixed)
    names = {type(layer.layer).__name__ for layer in q.layers if hasattr(layer, "layer")}
    assert {"InstanceNorm", "ReflectPad", "ChannelSlice", "PReLU", "Multiply", "UpSampling2D", "Rescaling"} <= names
    assert q(np.full((1, SIZE, SIZE, 4), 0.3, np.float32)).shape == (1, 64, 64, 3)


def test_int8_runs_in_litert_with_every_op_integer(fixed):
    from tflite_isp.export import convert
    from tflite_isp.run import flatbuffer, litert

    model = fixed
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 4), dtype=np.float32)
    data = convert.convert(model, (1, SIZE, SIZE, 4), convert.precisions()["int8"],
                           representative=convert.representative_from([x[i:i + 1] for i in range(2)]))
    tfl = flatbuffer.parse(data)
    counts = tfl.op_counts()
    # instance norm: MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL, MUL, SUB, MUL, ADD - all int8 kernels
    assert counts["MIRROR_PAD"] == 30 and counts["RSQRT"] == counts["SQUARED_DIFFERENCE"] == 10
    assert counts["RESIZE_BILINEAR"] == 2 and counts["PRELU"] == 39 and counts["STRIDED_SLICE"] == 12
    assert {t.dtype for op in tfl.ops for t in op.outputs} == {"int8"}
    for op in tfl.ops:
        if op.name == "RESIZE_BILINEAR":  # Keras' bilinear: half-pixel centres, as the reference's own Keras layer
            assert op.options["half_pixel_centers"] and not op.options["align_corners"]
    y = litert.Runner(data)(x[:1])
    want = model(x[:1]).numpy()
    assert y.shape == want.shape and np.abs(y - want).mean() < 0.05


def test_onnx_parity(fixed, tmp_path):
    from tflite_isp.export.onnx_export import parity, to_onnx

    model = fixed
    to_onnx(model, tmp_path / "m.onnx", height=SIZE, width=SIZE)
    result = parity(tmp_path / "m.onnx", model, np.random.default_rng(1).random((1, SIZE, SIZE, 4), np.float32))
    assert result["max_abs_diff"] < 1e-4, result


def test_levels_objective_trains_and_deploys_the_single_output(isp_data, recipe):
    """A few steps of the recipe's objective (output + level heads on pooled targets) lower the loss; the
    deployable model is the plain single-output network with the trained weights."""
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.train import objectives
    from tflite_isp.train.losses import make_loss, parse_loss

    split = layouts.open_split("mai21", isp_data, "train")
    x, y = next(iter(pipeline.training_dataset(split, recipe.input, patch=64, batch=2, seed=0)))
    keras.utils.set_random_seed(0)
    objective = objectives.Levels(recipe.model, make_loss(parse_loss("l1")), weights=recipe.train["aux_weights"],
                                  name=recipe.name)
    losses = fit_steps(lambda: objective.loss(x, y), objective.variables, steps=8, lr=3e-3)
    assert losses[-1] < 0.8 * losses[0], losses
    deployed = objective.deployable(objective.model)
    assert len(deployed.outputs) == 1 and count_params(deployed) == PARAMETERS
    np.testing.assert_allclose(deployed(x).numpy(), objective.predict(x).numpy(), atol=1e-5)
    with pytest.raises(Exception, match="needs a pynet_v2 recipe"):
        objectives.Levels({"architecture": "csanet"}, None, weights=[1, 1], name="x")


def test_a_dynamic_file_with_reflect_padding_runs_at_any_size_it_fits():
    """LiteRT prepares a dynamic file at a 1 x 1 placeholder, where MIRROR_PAD refuses to prepare; the Runner
    allocates it at its first input's size instead (PyNET-V2's and MicroISP's model_none.tflite failed to load)."""
    from tflite_isp.export import convert
    from tflite_isp.run import litert

    inputs = keras.Input((None, None, 4), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3)(ReflectPad(1)(inputs)))
    runner = litert.Runner(convert.convert(model, (1, None, None, 4), convert.precisions()["fp32"]))
    assert runner.input_shape == (1, -1, -1, 4)
    for size in (8, 5):
        x = np.random.default_rng(size).random((1, size, size, 4), dtype=np.float32)
        np.testing.assert_allclose(runner(x), model(x).numpy(), atol=1e-5)
