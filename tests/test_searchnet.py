"""SearchNet, the architecture search's one configurable network: every value of every setting builds (fixed and
dynamic sizes, no Lambda, counted MACs), the re-parameterised form fuses, representative candidates convert to
all-int8 files that run in LiteRT, QAT annotates, and bad values are refused naming the setting."""
import numpy as np
import pytest
from conftest import randomise

from tflite_isp.core.tf import keras, tf
from tflite_isp.nets import architectures, reparam
from tflite_isp.nets.searchnet import level_widths
from tflite_isp.nets.stats import count_macs, count_params

SIZE = 32
# together these cover every value of every setting at least once
SWEEP = [
    {},
    {"tanh_first": True, "width": 12, "align": 4, "head": "shuffle1x1"},
    {"stem": "s2d", "conv": "separable", "activation": "relu6", "attention": "channel"},
    {"reparam": True, "activation": "prelu", "attention": "spatial"},
    {"levels": 1, "upsample": "d2s", "merge": "add", "activation": "leaky"},
    {"levels": 2, "upsample": "bilinear", "attention": "channel", "align": 16, "growth": 1.5},
    {"levels": 2, "attention": "channel", "upsample": "d2s", "merge": "add"},
    {"levels": 3, "conv": "separable", "merge": "add", "attention": "spatial", "depth": 1},
    {"levels": 4, "width": 8, "depth": 1, "activation": "relu6", "head": "shuffle1x1"},
    {"levels": 1, "stem": "s2d", "reparam": True, "upsample": "bilinear", "tanh_first": True},
    {"levels": 2, "activation": "prelu", "upsample": "bilinear", "conv": "separable"},
    {"levels": 3, "stem": "s2d", "width": 8, "depth": 3, "upsample": "d2s", "head": "shuffle1x1"},
]
INT8 = {
    "flat": {"tanh_first": True},
    "s2d": {"stem": "s2d", "conv": "separable", "activation": "relu6", "attention": "channel"},
    "unet2": {"levels": 2, "attention": "channel", "upsample": "d2s", "merge": "add"},
    "prelu_bilinear": {"levels": 1, "activation": "prelu", "upsample": "bilinear", "attention": "spatial"},
}


def _section(**settings):
    return {"architecture": "searchnet", **settings}


@pytest.mark.parametrize("settings", SWEEP, ids=[",".join(f"{k}={v}" for k, v in s.items()) or "defaults"
                                                  for s in SWEEP])
def test_every_setting_builds(settings):
    fixed = architectures.build(_section(**settings), height=SIZE, width=SIZE, batch=1)
    assert fixed.output_shape == (1, 2 * SIZE, 2 * SIZE, 3)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in fixed.layers)
    assert count_params(fixed) > 0 and count_macs(fixed) > 0
    dynamic = architectures.build(_section(**settings))
    assert dynamic.input_shape == (None, None, None, 4)
    assert dynamic(tf.zeros([1, 32, 48, 4])).shape == (1, 64, 96, 3)


def test_defaults_are_smallnet_sized_and_widths_round_up():
    # flat, 2 convs of 16, 3x3 head to 12: Smallnet's 4,652 parameters
    assert count_params(architectures.build(_section(), height=SIZE, width=SIZE, batch=1)) == 4_652
    assert level_widths(2, 12, 1.5, 8) == [16, 24, 32]
    assert level_widths(4, 16, 2.0, 16) == [16, 32, 64, 128, 256]
    assert architectures.input_multiple(_section(levels=3, stem="s2d")) == 16
    assert architectures.input_multiple(_section()) == 1


def test_s2d_stem_and_quad_bayer_input(tmp_path):
    section = _section(levels=1, stem="s2d", attention="channel")
    model = architectures.build(section, height=SIZE, width=SIZE, batch=1)
    assert model.get_layer("stem_s2d").output_shape == (1, 16, 16, 16)
    assert model.get_layer("head").filters == 48 and model.get_layer("shuffle").block_size == 4
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(0).uniform(0, 1, (1, SIZE, SIZE, 4)).astype(np.float32)
    np.testing.assert_allclose(architectures.load(tmp_path / "m.keras")(x).numpy(), model(x).numpy(), atol=1e-6)
    quad = architectures.build(section, height=SIZE, width=SIZE, batch=1, cfa="quad")
    assert quad.input_shape == (1, SIZE, SIZE, 16) and quad.output_shape == (1, 4 * SIZE, 4 * SIZE, 3)


@pytest.mark.parametrize("settings", [{"activation": "prelu", "attention": "channel"},
                                      {"levels": 1, "stem": "s2d", "upsample": "bilinear", "tanh_first": True}])
def test_reparam_fuses_into_the_deploy_form(settings):
    section = _section(reparam=True, **settings)
    trained = randomise(architectures.build(section), spread=0.2)
    assert reparam.unfused_layers(trained)
    fused = architectures.fuse_weights(trained, architectures.build(architectures.deploy_form(section)))
    assert not reparam.unfused_layers(fused)
    x = np.random.default_rng(1).uniform(0, 1, (1, SIZE, SIZE, 4)).astype(np.float32)
    want = trained(x, training=False).numpy()
    assert np.abs(want).max() > 0.05
    assert np.abs(fused(x).numpy() - want).max() < 1e-4 * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("name", sorted(INT8))
def test_int8_candidates_run_in_litert_with_every_op_integer(name):
    from tflite_isp.export import convert
    from tflite_isp.run import flatbuffer, litert

    model = randomise(architectures.build(_section(**INT8[name]), height=SIZE, width=SIZE, batch=1), seed=3,
                      spread=0.2)
    x = np.random.default_rng(0).uniform(0, 1, (3, SIZE, SIZE, 4)).astype(np.float32)
    data = convert.convert(model, (1, SIZE, SIZE, 4), convert.precisions()["int8"],
                           representative=convert.representative_from([x[i:i + 1] for i in range(3)]))
    tfl = flatbuffer.parse(data)
    counts = tfl.op_counts()
    assert {t.dtype for op in tfl.ops for t in op.outputs} == {"int8"}
    assert not {"RELU", "RELU6"} & set(counts)  # fused into the convs
    if name == "s2d":
        assert counts["SPACE_TO_DEPTH"] == 1 and counts["DEPTHWISE_CONV_2D"] == 2
    y = litert.Runner(data)(x[:1])
    want = model(x[:1]).numpy()
    assert y.shape == want.shape == (1, 2 * SIZE, 2 * SIZE, 3)
    assert np.abs(y - want).mean() < 0.02 * max(1.0, np.abs(want).max())


def test_qat_annotates_a_unet_candidate():
    from tflite_isp.export import qat

    model = architectures.build(_section(levels=2, stem="s2d", attention="channel", upsample="d2s", merge="add",
                                         activation="leaky"), height=SIZE, width=SIZE, batch=1)
    x = np.random.default_rng(0).uniform(0, 1, (1, SIZE, SIZE, 4)).astype(np.float32)
    q = qat.quantize(model)
    names = {type(layer.layer).__name__ for layer in q.layers if hasattr(layer, "layer")}
    assert {"SpaceToDepth", "PixelShuffle", "Multiply", "Add", "LeakyReLU", "GlobalAveragePooling2D"} <= names
    qat.calibrate_ranges(q, model, [x])
    assert np.isfinite(q(x, training=False).numpy()).all()


@pytest.mark.parametrize("setting,value", [
    ("levels", 5), ("stem", "pixel"), ("width", 0), ("growth", 0), ("align", 6), ("depth", 0), ("conv", "dw"),
    ("reparam", "yes"), ("activation", "gelu"), ("tanh_first", 1), ("upsample", "nearest"), ("merge", "mul"),
    ("attention", "cbam"), ("head", "conv")])
def test_bad_values_name_the_setting(setting, value):
    with pytest.raises(ValueError, match=f"searchnet {setting} must be"):
        architectures.build(_section(**{setting: value}), height=SIZE, width=SIZE, batch=1)


def test_reparam_needs_full_convs():
    with pytest.raises(ValueError, match="searchnet reparam needs conv 'full'"):
        architectures.build(_section(reparam=True, conv="separable"))
