"""SYENet-ISP (MAI 2022 winner): counts, re-parameterisation (training form -> one Conv2D per block), the
exporter's fusion and its refusal of unfused blocks, QAT, INT8 and ONNX."""
import json

import numpy as np
import pytest
from conftest import fit_steps, make_run, randomise

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras, tf
from tflite_isp.nets import architectures, recipes, reparam
from tflite_isp.nets.stats import count_macs, count_params

# Counted from sanechips-multimedia/syenet model/isp.py (SYEISPNetS, channels 12): head 1212 + 12 (PReLU) + 1308
# + 1212 + 12 (QCU bias); body 1308 + 156 + 12; attention 156 + 12 + 156; tail 84 -> 5,640.
DEPLOY_PARAMETERS = 5_640
# SYEISPNet (training form, rep_scale 4) per model/utils.py ConvRep5/ConvRep3/ConvRepPoint, without the
# warm-up-only tail_warm: 101,799 parameters; Keras also counts the 2,112 BatchNorm running statistics.
TRAIN_PARAMETERS, BN_STATISTICS = 101_799, 2_112
SIZE = (32, 32)
SHIPPED_OPS = {"CONV_2D", "PRELU", "MUL", "ADD", "MEAN", "LOGISTIC", "DEPTH_TO_SPACE"}


@pytest.fixture(scope="module")
def recipe():
    return recipes.load_recipe("syenet")


@pytest.fixture(scope="module")
def deploy(recipe):
    return architectures.deploy_form(recipe.model)


def test_full_hd_counts(recipe, deploy):
    trained = architectures.build(recipe.model, height=544, width=960, batch=1)
    fused = architectures.build(deploy, height=544, width=960, batch=1)
    assert fused.output_shape == (1, 1088, 1920, 3)
    assert count_params(fused) == DEPLOY_PARAMETERS
    assert sum(int(np.prod(w.shape)) for w in trained.trainable_weights) == TRAIN_PARAMETERS
    assert count_params(trained) == TRAIN_PARAMETERS + BN_STATISTICS
    # 544*960 * (1200 + 1296 + 1200 + 1296 + 144) + 1088*1920 * 81 + 288 (attention on 1 x 1) = 2.851 GMAC
    assert count_macs(fused) == 544 * 960 * 5136 + 1088 * 1920 * 81 + 288
    assert 50e9 < count_macs(trained) < 51e9


def test_deploy_form_is_plain_layers(recipe, deploy):
    fused = architectures.build(deploy, height=SIZE[0], width=SIZE[1], batch=1)
    kinds = {type(layer).__name__ for layer in fused.layers}
    assert kinds == {"InputLayer", "Conv2D", "PReLU", "Multiply", "ChannelBias", "GlobalAveragePooling2D",
                     "Activation", "PixelShuffle"}
    assert [tuple(layer.kernel_size) for layer in fused.layers if isinstance(layer, keras.layers.Conv2D)] == \
        [(5, 5), (3, 3), (5, 5), (3, 3), (1, 1), (1, 1), (1, 1), (3, 3)]
    assert all(layer.alpha.shape == (1, 1, 12) for layer in fused.layers if isinstance(layer, keras.layers.PReLU))
    trained = architectures.build(recipe.model)
    assert len(reparam.unfused_layers(trained)) == 8 and not reparam.unfused_layers(fused)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in trained.layers)


@pytest.mark.parametrize("form", ["trained", "deploy"])
def test_dynamic_height_and_width(recipe, deploy, form):
    model = architectures.build(recipe.model if form == "trained" else deploy)
    assert model.input_shape == (None, None, None, 4)
    assert model(tf.zeros([2, 30, 46, 4])).shape == (2, 60, 92, 3)


def test_fused_model_equals_the_training_form(recipe, deploy):
    trained = randomise(architectures.build(recipe.model))
    fused = architectures.fuse_weights(trained, architectures.build(deploy))
    x = np.random.default_rng(1).uniform(0, 1, (2, *SIZE, 4)).astype(np.float32)
    reference = trained(x, training=False).numpy()
    assert np.abs(reference).max() > 0.1  # not trivially small
    assert np.abs(fused(x).numpy() - reference).max() < 1e-5


@pytest.mark.parametrize("kernel,batch_norm,scale", [(5, True, 1.0), (3, False, 0.1), (1, True, 0.1)])
def test_one_block_fuses_into_one_conv(kernel, batch_norm, scale):
    block = reparam.RepConv2D(6, kernel, rep_scale=2, batch_norm=batch_norm, output_scale=scale)
    x = np.random.default_rng(2).normal(size=(1, 9, 11, 5)).astype(np.float32)
    block(x)
    randomise(block, seed=kernel)
    conv = keras.layers.Conv2D(6, kernel, padding="same")
    conv(x)
    conv.set_weights(block.fused_weights())
    assert np.abs(conv(x).numpy() - block(x, training=False).numpy()).max() < 1e-5
    assert reparam.branch_shapes(kernel) == {5: ((5, 5), (1, 1), (3, 3), (3, 1), (1, 3)),
                                             3: ((3, 3), (1, 1), (3, 1), (1, 3)), 1: ((1, 1),)}[kernel]


def test_training_form_round_trip(recipe, tmp_path):
    model = randomise(architectures.build(recipe.model))
    path = tmp_path / "m.keras"
    model.save(path)
    again = architectures.load(path)
    x = tf.random.uniform([1, *SIZE, 4], seed=1)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-6)
    np.testing.assert_array_equal(again.get_layer("head_b").fused_weights()[0],
                                  model.get_layer("head_b").fused_weights()[0])


def test_qat_annotates_the_deploy_form_only(recipe, deploy):
    from tflite_isp.export import qat

    fused = architectures.build(deploy, height=SIZE[0], width=SIZE[1], batch=1)
    x = np.random.default_rng(0).uniform(0, 1, (1, *SIZE, 4)).astype(np.float32)
    q = qat.quantize(fused)
    qat.calibrate_ranges(q, fused, [x])
    assert np.isfinite(q(x, training=False).numpy()).all()
    with pytest.raises(UserError, match="'head_a1' \\(RepConv2D\\)"):
        qat.annotate(architectures.build(recipe.model), "syenet.keras")


def test_converter_refuses_an_unfused_model(recipe):
    from tflite_isp.export import convert

    trained = architectures.build(recipe.model, name="syenet_train")
    with pytest.raises(UserError, match="syenet_train: layer 'head_a1' is an unfused re-parameterisation block"):
        convert.convert(trained, (1, *SIZE, 4), convert.precisions()["fp32"])


def test_int8_export_ships_the_fused_model(isp_data, tmp_path):
    from tflite_isp.export import convert
    from tflite_isp.export import exporter as ex
    from tflite_isp.run import flatbuffer
    from tflite_isp.run import litert as runtime

    run = make_run(tmp_path / "run", "syenet", f"mai21:{isp_data}")
    cfg = ex.ExportConfig(source=str(run), out=str(tmp_path / "out"), precisions=("int8",), size=SIZE,
                          calibration_images=4, fidelity_images=2, model_none=False, log=False)
    exporter = ex.Exporter(cfg)
    assert not reparam.unfused_layers(exporter.model) and count_params(exporter.model) == DEPLOY_PARAMETERS
    x = exporter.calibration_inputs[0]
    trained = architectures.load(run / "model.keras")
    assert np.abs(exporter.model(x).numpy() - trained(x, training=False).numpy()).max() < 1e-5

    manifest, files = exporter.export(convert.precisions()["int8"])
    assert manifest["gates"]["passed"] and manifest["fidelity"]["psnr_drop"] < 1.0
    y = runtime.Runner(files["model.tflite"])(np.full((1, *SIZE, 4), 0.25, np.float32))
    assert y.shape == (1, 2 * SIZE[0], 2 * SIZE[1], 3) and np.isfinite(y).all()
    model = flatbuffer.parse(files["model.tflite"])
    # 8 fused convs; MUL: two QCUs and the attention; ADD: the two QCU biases only (no BatchNorm MUL/ADD)
    assert model.op_counts() == {"CONV_2D": 8, "PRELU": 2, "MUL": 3, "ADD": 2, "MEAN": 1, "LOGISTIC": 1,
                                 "DEPTH_TO_SPACE": 1}
    assert set(model.op_counts()) <= SHIPPED_OPS
    assert {t.dtype for op in model.ops for t in op.outputs} == {"int8"}


def test_export_refuses_a_bypassed_hook(isp_data, tmp_path):
    """A training-form model.keras whose recipe does not say reparam: one line naming the layer, no files."""
    from tflite_isp.export import exporter as ex

    run = make_run(tmp_path / "run", "syenet", f"mai21:{isp_data}")
    recipe = json.loads((run / "recipe.json").read_text())
    recipe["model"]["reparam"] = False
    (run / "recipe.json").write_text(json.dumps(recipe))
    cfg = ex.ExportConfig(source=str(run), out=str(tmp_path / "out"), precisions=("int8",), size=SIZE,
                          calibration_images=2, fidelity_images=0, model_none=False, log=False)
    with pytest.raises(UserError, match="layer 'head_a1' is an unfused re-parameterisation block") as err:
        ex.run(cfg)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_onnx_parity_of_the_deploy_form(deploy, tmp_path):
    from tflite_isp.export import onnx_export

    fused = randomise(architectures.build(deploy))
    info = onnx_export.to_onnx(fused, tmp_path / "m.onnx", height=SIZE[0], width=SIZE[1])
    assert "BatchNormalization" not in info["ops"]
    x = np.random.default_rng(0).uniform(0, 1, (1, *SIZE, 4)).astype(np.float32)
    assert onnx_export.parity(tmp_path / "m.onnx", fused, x)["max_abs_diff"] < 1e-4


def test_training_form_learns_on_real_pairs(isp_data, recipe):
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.train.losses import make_loss, parse_loss

    split = layouts.open_split("mai21", isp_data, "train")
    x, y = next(iter(pipeline.training_dataset(split, recipe.input, patch=32, batch=2, seed=0)))
    keras.utils.set_random_seed(0)
    model = architectures.build(recipe.model)
    loss_fn = make_loss(parse_loss("l1"))
    losses = fit_steps(lambda: loss_fn(y, model(x, training=True)), model.trainable_variables, steps=12, lr=1e-3)
    assert losses[-1] < 0.7 * losses[0], losses
