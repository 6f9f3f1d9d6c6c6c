"""SID U-Net with the batch-norm and dropout switches (sid_unet recipe, [model] batch_norm / dropout).

Off by default (the paper's code has neither; test_models.py keeps the 7,760,268 count). On: each BatchNormalization
after a bias-free conv must fold into that conv at conversion (no standalone MUL/ADD), and Dropout must vanish.
"""
import numpy as np
import pytest

from tflite_isp.core.tf import keras, tf
from tflite_isp.export import convert
from tflite_isp.nets import architectures, recipes
from tflite_isp.run import flatbuffer
from tflite_isp.run import litert as runtime

SHAPE = (1, 32, 32, 4)
SLIM = {"width_multiplier": 0.25}


def _build(**settings):
    keras.utils.set_random_seed(0)
    recipe = recipes.load_recipe("sid_unet").with_model(**SLIM, **settings)
    return architectures.build(recipe.model, height=SHAPE[1], width=SHAPE[2], batch=1)


def _randomise_batch_norm(model, rng):
    """Non-trivial statistics and affine terms, so a BN that did not fold would change the output."""
    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        c = layer.gamma.shape[0]
        layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                           rng.uniform(0.5, 2.0, c)])
    return len(layers)


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(0)
    plain = _build()
    bn = _build(batch_norm=True, dropout=0.5)
    assert _randomise_batch_norm(bn, rng) == 18  # 10 encoder + 8 decoder convs
    inputs = [rng.uniform(0, 1, SHAPE).astype(np.float32) for _ in range(4)]
    return plain, bn, inputs


def test_defaults_leave_the_published_network_unchanged():
    recipe = recipes.load_recipe("sid_unet")
    assert recipe.model["batch_norm"] is False and recipe.model["dropout"] == 0.0
    model = _build()
    assert not any(isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Dropout)) for layer in model.layers)
    assert all(layer.use_bias for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
               and not isinstance(layer, keras.layers.Conv2DTranspose))


def test_switches_build_bias_free_convs_batch_norm_and_one_dropout(models):
    _, bn, _ = models
    convs = [layer for layer in bn.layers if type(layer) is keras.layers.Conv2D and layer.name != "head"]
    assert len(convs) == 18 and not any(c.use_bias for c in convs)
    for conv in convs:  # conv -> BN -> LeakyReLU
        assert bn.get_layer(f"{conv.name}_bn").input is conv.output
        assert bn.get_layer(f"{conv.name}_lrelu").input is bn.get_layer(f"{conv.name}_bn").output
    (drop,) = [layer for layer in bn.layers if isinstance(layer, keras.layers.Dropout)]
    assert drop.rate == 0.5 and drop.input is bn.get_layer("conv5b_lrelu").output
    # Full width: 2,944 biases fewer, 4 x 2,944 BN weights more (gamma, beta trainable; mean, variance not).
    full = architectures.build(recipes.load_recipe("sid_unet").with_model(batch_norm=True).model, height=32, width=32)
    assert full.count_params() == 7_760_268 - 2944 + 4 * 2944
    with pytest.raises(ValueError, match="dropout must be in"):
        _build(dropout=1.0)


def test_batch_norm_folds_and_dropout_vanishes_at_conversion(models):
    plain, bn, inputs = models
    precision = convert.precisions()["int8"]
    files = {name: flatbuffer.parse(convert.convert(m, SHAPE, precision,
                                                    representative=convert.representative_from(inputs)))
             for name, m in (("plain", plain), ("bn", bn))}
    counts = {name: f.op_counts() for name, f in files.items()}
    # Same ops as the network without BN or dropout: every BN's scale and shift went into its conv.
    assert counts["bn"] == counts["plain"], counts
    assert "MUL" not in counts["bn"] and "ADD" not in counts["bn"]
    assert {t.dtype for op in files["bn"].ops for t in op.outputs} == {"int8"}


def test_float_file_matches_keras_inference(models):
    _, bn, inputs = models
    data = convert.convert(bn, SHAPE, convert.precisions()["fp32"])
    # Only the U-Net's own ops: no MUL/ADD left by a BN, nothing from the dropout.
    assert set(flatbuffer.parse(data).op_counts()) == {"CONV_2D", "LEAKY_RELU", "MAX_POOL_2D", "TRANSPOSE_CONV",
                                                       "CONCATENATION", "DEPTH_TO_SPACE"}
    runner = runtime.Runner(data)
    for x in inputs:
        want = bn(tf.constant(x), training=False).numpy()
        np.testing.assert_allclose(runner(x), want, atol=2e-5 * max(1.0, float(np.abs(want).max())))
    # training=True would use the batch's statistics and drop units: the converted file must not.
    assert np.abs(bn(tf.constant(inputs[0]), training=True).numpy() - runner(inputs[0])).max() > 1e-3
