"""MicroISP (Ignatov et al., arXiv 2211.06770; aiff22/MicroISP model.py): structure, parameter count, sizes,
serialisation, QAT, INT8 in LiteRT, ONNX parity and learning.

Sizes here are at least 79 packed: below that the attention's four stride-3 VALID convs leave nothing to pool.
"""
import numpy as np
import pytest
from conftest import fit_steps

from tflite_isp.core.tf import keras, tf
from tflite_isp.nets import architectures, recipes
from tflite_isp.nets.stats import count_macs, count_params

# Counted from aiff22/MicroISP model.py (and equal to the 54,240-byte float32 checkpoint it ships,
# pretrained_weights/MicroISP.ckpt): per colour and stage, 7 convs 3x3x4x4 + bias + PReLU (7 x 152), the 4-channel
# head (148) and two attention blocks of 524 (1x1: 24, three 3x3: 3 x 152, hidden 1x1 + PReLU: 24, gate: 20);
# 2260 x 3 colours x 2 stages.
PARAMETERS = 13_560
SIZE = (80, 96)  # packed
L = keras.layers


@pytest.fixture(scope="module")
def recipe():
    return recipes.load_recipe("microisp")


@pytest.fixture(scope="module")
def full(recipe):
    return architectures.build(recipe.model, height=544, width=960, batch=1)


@pytest.fixture(scope="module")
def lite(recipe):
    """One attention block per stage (convs=3): every layer class of the full model at 40% of its graph, which
    keeps the conversions here within the time budget."""
    keras.utils.set_random_seed(0)
    return architectures.build(recipe.with_model(convs=3).model)


def test_full_hd_build_matches_the_reference_count(full):
    assert full.output_shape == (1, 1088, 1920, 3)
    assert count_params(full) == PARAMETERS
    # 6 branches x 544 x 960 x (8 convs x 144 + two attentions of ~3.8 MAC per pixel): about 3.63 GMAC
    assert 3.6e9 < count_macs(full) < 3.66e9


def test_layers_follow_the_reference(full):
    layers = full.layers
    convs = [layer for layer in layers if isinstance(layer, L.Conv2D)]
    assert len(convs) == 120 and all(c.use_bias for c in convs)
    strided = [c for c in convs if c.strides == (3, 3)]
    assert len(strided) == 48 and {c.padding for c in strided} == {"valid"}
    prelus = [layer for layer in layers if isinstance(layer, L.PReLU)]
    assert len(prelus) == 102 and {tuple(p.shared_axes) for p in prelus} == {(1, 2)}
    assert sum(isinstance(layer, L.GlobalAveragePooling2D) for layer in layers) == 12
    scales = [layer for layer in layers if isinstance(layer, L.Rescaling)]
    assert [(s.scale, s.offset) for s in scales] == [(0.58, 0.5)] * 3
    assert not any(isinstance(layer, L.Lambda) for layer in layers)
    # stage 2 reads stage 1's tanh output, not the RAW; the colours meet only at the final concatenation
    assert full.get_layer("g2_conv0").input is full.get_layer("g1_tanh").output
    assert full.get_layer("b1_conv0").input is full.input


def test_dynamic_sizes_and_the_minimum(recipe):
    model = architectures.build(recipe.model)
    assert model.input_shape == (None, None, None, 4)
    assert model(tf.zeros([1, *SIZE, 4])).shape == (1, 160, 192, 3)
    assert model(tf.zeros([2, 79, 101, 4])).shape == (2, 158, 202, 3)  # any size: input multiple 1
    assert architectures.input_multiple(recipe.model) == 1
    with pytest.raises(ValueError, match="at least 79"):
        architectures.build(recipe.model, height=78, width=96)


def test_attention_sees_the_whole_image(lite):
    """The global pool makes a crop's output differ from the same region of the full frame."""
    x = tf.random.uniform([1, 160, 192, 4], seed=2)
    full = lite(x).numpy()[:, 40:120, 40:120]
    crop = lite(x[:, 20:100, 20:100]).numpy()[:, 20:100, 20:100]  # far from the crop's borders
    assert np.abs(full - crop).max() > 1e-4


def test_settings(recipe, lite):
    assert count_params(lite) == 6 * (3 * 152 + 148 + 524)  # one attention per stage
    ref = architectures.build(recipe.with_model(convs=3, init="reference").model)
    assert abs(ref.get_layer("r1_conv1").kernel.numpy().std() / 1e-3 - 1) < 0.3
    with pytest.raises(ValueError, match="no init 'xavier'"):
        architectures.build(recipe.with_model(init="xavier").model)
    with pytest.raises(ValueError, match="microisp has no setting 'width_multiplier'"):
        architectures.build(recipe.with_model(width_multiplier=0.5).model)


def test_initial_weights_follow_the_seed(recipe):
    """test_models.py's PUBLISHED checks, for MicroISP here: its PReLU slopes start at 0 (Keras' default and the
    reference's), which those checks take for constant kernels; and its 32-pixel inputs are below MIN_SIZE."""
    section = recipe.with_model(convs=3).model

    def kernels(seed):
        keras.utils.set_random_seed(seed)
        return {w.name: w.numpy() for w in architectures.build(section).weights}

    first, again, other = kernels(3), kernels(3), kernels(4)
    convs = [k for k in first if k.endswith("kernel:0")]
    assert len(convs) == 60 and all(np.array_equal(first[k], again[k]) for k in first)
    assert all(not np.array_equal(first[k], other[k]) for k in convs)
    assert all(not np.any(v) for k, v in first.items() if "alpha" in k)


def test_saved_model_round_trip(lite, tmp_path):
    lite.save(tmp_path / "m.keras")
    again = architectures.load(tmp_path / "m.keras")
    x = tf.random.uniform([1, *SIZE, 4], seed=1)
    np.testing.assert_allclose(again(x).numpy(), lite(x).numpy(), atol=1e-6)


def test_qat_annotates_and_quantises(lite):
    from tflite_isp.export import qat

    q = qat.quantize(lite)
    wrapped = {type(layer.layer).__name__ for layer in q.layers if hasattr(layer, "layer")}
    assert {"Conv2D", "PReLU", "GlobalAveragePooling2D", "Multiply", "Rescaling", "PixelShuffle"} <= wrapped
    y = q(np.full((1, *SIZE, 4), 0.25, np.float32), training=False).numpy()
    assert y.shape == (1, 2 * SIZE[0], 2 * SIZE[1], 3) and np.isfinite(y).all()


def test_int8_converts_and_runs_in_litert(lite, tmp_path):
    from tflite_isp.export import convert
    from tflite_isp.run import flatbuffer
    from tflite_isp.run import litert as runtime

    size = (160, 160)  # the attention pools 2 x 2 here; at 79..159 it pools one pixel and MEAN folds away
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 0.5, (1, *size, 4)).astype(np.float32) for _ in range(2)]
    data = convert.convert(lite, (1, *size, 4), convert.precisions()["int8"],
                           representative=convert.representative_from(images))
    path = tmp_path / "int8.tflite"
    path.write_bytes(data)
    y = runtime.Runner(path)(images[0])
    assert y.shape == (1, 2 * size[0], 2 * size[1], 3) and np.isfinite(y).all()
    assert np.abs(y - lite(images[0]).numpy()).mean() < 0.05
    model = flatbuffer.read(path)
    # The released FP32 file (full model) has these ops x (120, 102, 12, 12, 15, 15, 6, 3, 1), plus a RESHAPE
    # after each MEAN that keep_dims makes unneeded here.
    assert model.op_counts() == {"CONV_2D": 60, "PRELU": 48, "MEAN": 6, "LOGISTIC": 6, "MUL": 9, "ADD": 9,
                                 "TANH": 6, "DEPTH_TO_SPACE": 3, "CONCATENATION": 1}
    assert {t.dtype for op in model.ops for t in op.outputs} == {"int8"}


def test_onnx_parity(lite, tmp_path):
    from tflite_isp.export.onnx_export import parity, to_onnx

    info = to_onnx(lite, tmp_path / "m.onnx", height=SIZE[0], width=SIZE[1])
    ops = info["ops"]
    assert (ops["Conv"], ops["GlobalAveragePool"], ops["DepthToSpace"]) == (60, 6, 3)
    assert ops["Neg"] == 48 and "PRelu" not in ops  # tf2onnx writes PReLU as relu(x) - alpha * relu(-x)
    x = np.random.default_rng(1).uniform(0, 1, (1, *SIZE, 4)).astype(np.float32)
    assert parity(tmp_path / "m.onnx", lite, x)["max_abs_diff"] < 1e-4


def test_learns_on_real_pairs(isp_data, recipe):
    """A few optimizer steps on one batch of the generated data lower the loss (as test_models does)."""
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.train.losses import make_loss, parse_loss

    split = layouts.open_split("mai21", isp_data, "train")
    x, y = next(iter(pipeline.training_dataset(split, recipe.input, patch=64, batch=2, seed=0)))
    # the generated crops are small: enlarge the pair x 3 (nearest) past the 79-pixel packed minimum
    x = tf.image.resize(x, [96, 96], method="nearest")
    y = tf.image.resize(y, [192, 192], method="nearest")
    keras.utils.set_random_seed(0)
    model = architectures.build(recipe.with_model(convs=3).model)
    loss_fn = make_loss(parse_loss("l1"))
    # In a tf.function, as train runs it: eager oneDNN gradients of the attention's 1x1 stride-3 conv corrupt the
    # heap (TF 2.20 on x86; "corrupted size vs. prev_size" within three steps), graph mode does not.
    losses = fit_steps(lambda: loss_fn(y, model(x, training=True)), model.trainable_variables, steps=12, lr=1e-2,
                       graph=True)
    assert losses[-1] < 0.7 * losses[0], losses
