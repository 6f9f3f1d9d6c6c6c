"""CSANet (MAI 2021 team AIISP): structure, parameter count, serialisation, training, INT8 export and delegates.

The zoo-wide tests in test_models.py parametrise over their own PUBLISHED list; these cover CSANet the same way.
"""
import json

import numpy as np
import pytest
from conftest import fit_steps, run_module

from tflite_isp.core.tf import keras, tf
from tflite_isp.nets import architectures, recipes
from tflite_isp.nets.stats import count_macs, count_params

# reference-architectures.md §0/§3.2 [derived]: 592 + 2320 (extraction) + 2 x 8120 (DAMs) + 2320 (merge)
# + 4608 (transposed conv, no bias) + 2320 (refine) + 111 (head) = 28,511.
PARAMETERS = 28_511
DAM_PARAMETERS = 4640 + 1056 + 832 + 264 + 288 + 1040
SIZE = (32, 48)  # packed; the input multiple is 2


@pytest.fixture(scope="module")
def recipe():
    return recipes.load_recipe("csanet")


def test_full_hd_build_matches_the_derived_counts(recipe):
    model = architectures.build(recipe.model, height=544, width=960, batch=1)
    assert model.input_shape == (1, 544, 960, 4)
    assert model.output_shape == (1, 1088, 1920, 3)
    assert count_params(model) == PARAMETERS
    assert 4.6e9 < count_macs(model) < 4.7e9  # reference: about 4.65 GMAC at 544 x 960 x 4


def test_layers_are_the_published_ones(recipe):
    model = architectures.build(recipe.model, height=SIZE[0], width=SIZE[1], batch=1)
    dw = [layer for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)]
    assert [(d.kernel_size, d.dilation_rate, d.activation.__name__) for d in dw] == [((5, 5), (2, 2), "sigmoid")] * 2
    assert sum(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in model.layers) == 2
    (up,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert up.strides == (2, 2) and not up.use_bias
    assert model.layers[-1].activation.__name__ == "sigmoid"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)


def test_dynamic_height_and_width(recipe):
    model = architectures.build(recipe.model)
    assert model.input_shape == (None, None, None, 4)
    assert model(tf.zeros([1, *SIZE, 4])).shape == (1, 64, 96, 3)
    assert model(tf.zeros([2, 30, 46, 4])).shape == (2, 60, 92, 3)  # half-size 15 x 23: the tconv restores 30 x 46


def test_odd_size_is_refused(recipe):
    assert architectures.input_multiple(recipe.model) == 2
    with pytest.raises(ValueError, match="not divisible by 2"):
        architectures.build(recipe.model, height=33, width=48)


def test_settings_are_builder_arguments(recipe):
    one = architectures.build(recipe.with_model(dams=1).model, height=SIZE[0], width=SIZE[1], batch=1)
    assert count_params(one) == PARAMETERS - DAM_PARAMETERS
    wide = architectures.build(recipe.with_model(dilation=4).model, height=SIZE[0], width=SIZE[1], batch=1)
    assert wide.get_layer("dam1_spatial_dw").dilation_rate == (4, 4) and count_params(wide) == PARAMETERS
    with pytest.raises(ValueError, match="csanet has no setting 'width_multiplier'"):
        architectures.build(recipe.with_model(width_multiplier=0.5).model)


def test_saved_model_round_trip(recipe, tmp_path):
    model = architectures.build(recipe.model)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path, custom_objects=architectures.CUSTOM_OBJECTS)
    x = tf.random.uniform([1, 32, 32, 4], seed=1)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-6)


def test_learns_on_real_pairs(isp_data, recipe):
    """A few optimizer steps on one batch of the generated data lower the loss (as test_models does)."""
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.train.losses import make_loss, parse_loss

    split = layouts.open_split("mai21", isp_data, "train")
    x, y = next(iter(pipeline.training_dataset(split, recipe.input, patch=64, batch=4, seed=0)))
    keras.utils.set_random_seed(0)
    model = architectures.build(recipe.model)
    loss_fn = make_loss(parse_loss("l1"))
    losses = fit_steps(lambda: loss_fn(y, model(x, training=True)), model.trainable_variables, steps=25, lr=3e-3)
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.fixture(scope="module")
def trained(isp_data, tmp_path_factory):
    """A run directory from the train command: the recipe's loss and schedule, a handful of steps."""
    run = tmp_path_factory.mktemp("runs") / "csanet"
    proc = run_module("tflite_isp.train", "--model", "csanet", "--data", f"mai21:{isp_data}", "--out", run,
                      "--epochs", "1", "--steps_per_epoch", "3", "--batch", "2", "--patch", "64",
                      "--checkpoint_every", "3")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return run


def test_train_command_writes_a_run(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["finished"] and metrics["parameters"] == PARAMETERS
    recipe = json.loads((trained / "recipe.json").read_text())
    assert recipe["model"]["architecture"] == "csanet" and recipe["train"]["loss"] == "charbonnier:1,ssim:0.1"
    assert recipe["input"]["order"] == ["B", "Gr", "R", "Gb"] and recipe["input"]["white"] == 1020


def test_int8_export_runs_and_is_fully_delegable(trained, tmp_path):
    from tflite_isp.export import compat
    from tflite_isp.export import exporter as ex
    from tflite_isp.run import flatbuffer
    from tflite_isp.run import litert as runtime

    cfg = ex.ExportConfig(source=str(trained), out=str(tmp_path / "out"), precisions=("int8",), size=SIZE,
                          calibration_images=6, fidelity_images=4, model_none=True, log=False)
    results = ex.run(cfg)
    assert cfg.gate_failures == []
    path = tmp_path / "out" / "int8" / "model.tflite"
    y = runtime.Runner(path)(np.full((1, *SIZE, 4), 0.25, np.float32))
    assert y.shape == (1, 2 * SIZE[0], 2 * SIZE[1], 3) and np.isfinite(y).all()

    model = flatbuffer.read(path)
    assert model.op_counts() == {"CONV_2D": 15, "DEPTHWISE_CONV_2D": 2, "LOGISTIC": 5, "MUL": 4, "MEAN": 2,
                                 "CONCATENATION": 3, "ADD": 2, "TRANSPOSE_CONV": 1, "DEPTH_TO_SPACE": 1}
    assert {t.dtype for op in model.ops for t in op.outputs} == {"int8"}
    for op in model.ops:
        if op.name == "DEPTHWISE_CONV_2D":  # the dilation survives: no SPACE_TO_BATCH_ND at a fixed size
            assert (op.options["dilation_h_factor"], op.options["dilation_w_factor"]) == (2, 2)
        if op.name == "MEAN":  # the squeeze: constant axes, keep_dims
            assert op.options["keep_dims"] and op.inputs[1].is_constant
        if op.name == "TRANSPOSE_CONV":  # output_shape is a constant tensor at batch 1 and a fixed size
            assert op.inputs[0].is_constant
    # At a fixed size every op of the INT8 file delegates to NNAPI (SDK 30) and the MediaTek MDLA (and the rest).
    for target in ("nnapi:30", "mediatek"):
        report = compat.check(model, target)
        assert report.fully_delegable, report.summary()
        assert results["int8"]["compatibility"][target]["fully_delegable"]

    # The dynamic-size model_none is not: its shape arithmetic (SHAPE, STRIDED_SLICE, PACK, FLOOR_MOD) stays on
    # the CPU, each dilated depthwise conv is split into SPACE_TO_BATCH_ND/DEPTHWISE_CONV_2D/BATCH_TO_SPACE_ND,
    # and TRANSPOSE_CONV gets a run-time output shape, which NNAPI rejects.
    none = flatbuffer.read(tmp_path / "out" / "int8" / "model_none.tflite")
    assert none.op_counts()["SPACE_TO_BATCH_ND"] == 2
    nnapi = compat.check(none, "nnapi:30")
    assert set(nnapi.fallback_counts()) == {"SHAPE", "STRIDED_SLICE", "PACK", "FLOOR_MOD", "TRANSPOSE_CONV"}
    (tconv,) = [v for v in nnapi.cpu_fallback if v.op == "TRANSPOSE_CONV"]
    assert "non-constant" in tconv.reasons[0]
