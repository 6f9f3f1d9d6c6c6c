"""MAI 2021 entries rebuilt from the challenge report's prose (arXiv:2105.07809 §4; no code published): ENERZAi
Research's sub-network, isp_forever, NOAHTCV. Counts are this project's inferred widths (see each recipe header),
chosen so the FP32 .tflite lands at the published Table 1 size; test_models.py's PUBLISHED covers seeding, dynamic
builds and serialisation.
"""
import numpy as np
import pytest
from conftest import fit_steps

from tflite_isp.core.tf import keras, tf
from tflite_isp.export import convert, onnx_export, qat
from tflite_isp.nets import architectures, recipes
from tflite_isp.nets.stats import count_macs, count_params
from tflite_isp.run import flatbuffer
from tflite_isp.run import litert as runtime

# A ReLU after a transposed conv stays its own RELU op (the converter fuses activations into CONV_2D only).
# name: (parameters, GMAC range at 544 x 960 packed, published size in KB (Table 1), input multiple, INT8 ops)
FIELD = {
    "enerzai": (1567, (0.97, 0.99), 9, 1, {"CONV_2D", "CONCATENATION", "TRANSPOSE_CONV", "RELU", "LOGISTIC"}),
    "isp_forever": (43_001, (5.0, 5.1), 175, 4,
                    {"CONV_2D", "LEAKY_RELU", "MAX_POOL_2D", "MEAN", "LOGISTIC", "MUL", "TRANSPOSE_CONV",
                     "CONCATENATION", "DEPTH_TO_SPACE"}),
    "noahtcv": (60_104, (19.1, 19.3), 244, 4,
                {"AVERAGE_POOL_2D", "RESIZE_BILINEAR", "SUB", "CONV_2D", "MAX_POOL_2D", "TRANSPOSE_CONV", "RELU",
                 "CONCATENATION", "ADD", "DEPTH_TO_SPACE"}),
}
SHAPE = (1, 32, 32, 4)


@pytest.fixture(scope="module", params=sorted(FIELD))
def field(request):
    name = request.param
    keras.utils.set_random_seed(0)
    recipe = recipes.load_recipe(name)
    return name, recipe, architectures.build(recipe.model, height=SHAPE[1], width=SHAPE[2], batch=1)


def test_full_hd_build_counts_and_published_size(field):
    name, recipe, small = field
    params, (lo, hi), kb, multiple, _ = FIELD[name]
    model = architectures.build(recipe.model, height=544, width=960, batch=1)
    assert model.output_shape == (1, 1088, 1920, 3)
    assert count_params(model) == params
    assert lo * 1e9 < count_macs(model) < hi * 1e9
    assert architectures.input_multiple(recipe.model) == multiple
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    # Table 1's sizes are FP32 files (Smallnet's 4,652 parameters: 20.0 KiB here, 21 KB published).
    size = len(convert.convert(small, SHAPE, convert.precisions()["fp32"])) / 1024
    assert abs(size - kb) < 0.05 * kb, size


def test_qat_annotate_and_quantize(field):
    _, _, model = field
    quantized = qat.quantize(model)
    x = tf.random.uniform(SHAPE, seed=2)
    assert quantized(x, training=False).shape == (1, 64, 64, 3)


def test_int8_runs_in_litert(field):
    name, _, model = field
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 1, SHAPE).astype(np.float32) for _ in range(4)]
    data = convert.convert(model, SHAPE, convert.precisions()["int8"],
                           representative=convert.representative_from(inputs))
    parsed = flatbuffer.parse(data)
    assert set(parsed.op_counts()) - {"QUANTIZE", "DEQUANTIZE"} == FIELD[name][4]
    assert {t.dtype for op in parsed.ops if op.name not in ("QUANTIZE", "DEQUANTIZE") for t in op.outputs} == {"int8"}
    y = runtime.Runner(data)(inputs[0])
    want = model(inputs[0], training=False).numpy()
    assert y.shape == (1, 64, 64, 3) and np.isfinite(y).all()
    assert np.abs(y - want).mean() < 0.05 * max(1e-3, float(np.abs(want).max())) + 0.01


def test_onnx_parity(field, tmp_path):
    _, _, model = field
    path = tmp_path / "m.onnx"
    onnx_export.to_onnx(model, path, height=SHAPE[1], width=SHAPE[2])
    x = np.random.default_rng(1).uniform(0, 1, (2, *SHAPE[1:])).astype(np.float32)
    assert onnx_export.parity(path, model, x)["max_abs_diff"] < 1e-4


def test_learns_on_real_pairs(isp_data, field):
    """A few optimizer steps on one batch of the generated data lower the recipe's loss."""
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.train.losses import make_loss, parse_loss

    name, recipe, _ = field
    split = layouts.open_split("mai21", isp_data, "train")
    x, y = next(iter(pipeline.training_dataset(split, recipe.input, patch=64, batch=2, seed=0)))
    keras.utils.set_random_seed(0)
    model = architectures.build(recipe.model)
    loss_fn = make_loss(parse_loss(recipe.train["loss"]))
    losses = fit_steps(lambda: loss_fn(y, model(x, training=True)), model.trainable_variables, steps=10, lr=5e-3)
    assert losses[-1] < 0.9 * losses[0], (name, losses)
