"""train --mixed_precision: a float32 loss from bfloat16/float16 layers (loss-scaled for float16), float32 variables,
checkpoints and model.keras, the policy restored afterwards, resume under the same policy only, and the compression
flags that combine with it (pruning, distillation, joint heads, export's QAT) or refuse in one line."""
import json
import math

import numpy as np
import pytest
from conftest import make_run

TINY = {"epochs": 1, "steps_per_epoch": 4, "batch": 2, "patch": 64, "checkpoint_every": 2, "lr": 3e-3}


def _cfg(isp_data, out, **settings):
    from tflite_isp.train.config import TrainConfig

    values = {"model": "smallnet", "data": f"mai21:{isp_data}", "out": str(out), **TINY, **settings}
    return TrainConfig(**values, explicit=tuple(values))  # the recipe's schedule does not override these


def _train(cfg):
    from tflite_isp.train import loop

    return loop.run(cfg)


def _policy() -> str:
    from tflite_isp.core.tf import keras

    return keras.mixed_precision.global_policy().name


def _all_float32(model) -> bool:
    return all(layer.compute_dtype in (None, "float32") for layer in model.layers) and \
        all(v.dtype == "float32" for v in model.weights)


@pytest.mark.parametrize("name,compute", [("bfloat16", "bfloat16"), ("float16", "float16")])
def test_the_train_step_lowers_a_float32_loss_with_float32_variables(name, compute):
    from tflite_isp.core.tf import keras, tf
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.train import loop, objectives, precision
    from tflite_isp.train.losses import make_loss, parse_loss

    recipe = recipes.load_recipe("smallnet")
    keras.utils.set_random_seed(0)
    with precision.policy(name):
        model = precision.float32_outputs(architectures.build(recipe.model, name=recipe.name))
        optimizer = precision.wrap_optimizer(keras.optimizers.Adam(3e-3), name)
    assert _policy() == "float32"
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer) == (name == "float16")
    assert {layer.compute_dtype for layer in model.layers if layer.weights} == {compute}
    assert all(v.dtype == "float32" for v in model.weights)  # float32 master weights
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 16, 16, 4)).astype(np.float32)
    batches = iter(tf.data.Dataset.from_tensors((x, np.repeat(np.repeat(x[..., :3], 2, 1), 2, 2))).repeat())
    objective = objectives.Plain(model, make_loss(parse_loss("l1")))
    assert model(x).dtype == tf.float32
    step = loop._train_step(tf.distribute.get_strategy(), objective, optimizer)
    losses = [float(step(batches)) for _ in range(12)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.8 * losses[0], losses
    saved = precision.float32_model(model, recipe)
    assert _all_float32(saved) and len(saved.layers) == len(model.layers) - 1  # the output cast is dropped
    np.testing.assert_allclose(saved(x).numpy(), model(x).numpy(), atol=0.05)


@pytest.fixture(scope="module")
def mixed_run(isp_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("mixed") / "run"
    metrics = _train(_cfg(isp_data, run, mixed_precision="bfloat16"))
    return run, metrics


def test_a_mixed_run_records_its_policy_and_saves_a_float32_model(mixed_run):
    from tflite_isp.nets import architectures

    run, metrics = mixed_run
    assert _policy() == "float32"
    assert metrics["finished"] and metrics["mixed_precision"] == "bfloat16"
    assert all(math.isfinite(e["loss"]) and e["val_psnr"] > 5 for e in metrics["epochs"])
    assert json.loads((run / "recipe.json").read_text())["train"]["mixed_precision"] == "bfloat16"
    assert json.loads((run / "run.json").read_text())["config"]["mixed_precision"] == "bfloat16"
    assert _all_float32(architectures.load(run / "model.keras"))


def test_a_mixed_run_exports_and_fine_tunes_for_qat_like_a_float32_one(mixed_run, isp_data, tmp_path):
    from tflite_isp.export import exporter as ex

    def files(source, out):
        cfg = ex.ExportConfig(source=str(source), out=str(out), precisions=("int8_qat",), size=(32, 32),
                              calibration_images=4, fidelity_images=0, qat_steps=3, model_none=False, log=False)
        ex.run(cfg)
        return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())

    plain = make_run(tmp_path / "plain", "smallnet", f"mai21:{isp_data}")
    assert files(mixed_run[0], tmp_path / "mixed_out") == files(plain, tmp_path / "plain_out")


def test_resume_continues_under_the_same_policy_and_refuses_another(mixed_run, isp_data):
    from tflite_isp.core.errors import UserError
    from tflite_isp.train.config import TrainConfig

    run = mixed_run[0]
    with pytest.raises(UserError, match=r"cannot resume: this run trains in bfloat16, not float16") as err:
        _train(TrainConfig(resume=True, out=str(run), mixed_precision="float16", explicit=("mixed_precision",)))
    assert "\n" not in str(err.value)
    metrics = _train(TrainConfig(resume=True, out=str(run), epochs=2, explicit=("epochs",)))
    assert metrics["resumed_from"] == [4] and [e["step"] for e in metrics["epochs"]] == [4, 8]
    assert metrics["mixed_precision"] == "bfloat16" and _policy() == "float32"


def test_float16_trains_with_magnitude_pruning(isp_data, tmp_path):
    from tflite_isp.nets import architectures
    from tflite_isp.train import sparsity

    metrics = _train(_cfg(isp_data, tmp_path / "r", mixed_precision="float16", prune_sparsity=0.5, epochs=2))
    model = architectures.load(tmp_path / "r" / "model.keras")
    assert metrics["finished"] and _all_float32(model) and sparsity.kernel_sparsity(model) > 0.3


def test_distillation_with_features_and_joint_heads_train_under_bfloat16(mixed_run, isp_data, tmp_path):
    from tflite_isp.nets import architectures

    distilled = _train(_cfg(isp_data, tmp_path / "d", mixed_precision="bfloat16", teacher=str(mixed_run[0]),
                            distill_features=0.1))
    joint = _train(_cfg(isp_data, tmp_path / "j", model="sid_unet", width_multiplier=0.125, joint_large_head=2.0,
                        mixed_precision="float16"))
    for run, metrics in ((tmp_path / "d", distilled), (tmp_path / "j", joint)):
        assert metrics["finished"] and math.isfinite(metrics["epochs"][-1]["loss"])
        assert _all_float32(architectures.load(run / "model.keras"))
    assert _policy() == "float32"


@pytest.mark.parametrize("settings,expected", [
    ({"channel_prune": "RUN"}, "--channel_prune does not combine with --mixed_precision"),
    ({"mixed_precision": "int8"}, "--mixed_precision must be one of bfloat16, float16, not 'int8'"),
])
def test_refusals_are_one_line(settings, expected, mixed_run, isp_data, tmp_path):
    from tflite_isp.core.errors import UserError

    settings = {"mixed_precision": "bfloat16", **settings}
    if settings.get("channel_prune"):
        settings["channel_prune"] = str(mixed_run[0])
    with pytest.raises(UserError) as err:
        _train(_cfg(isp_data, tmp_path / "r", **settings))
    assert str(err.value) == expected or expected in str(err.value)
    assert "\n" not in str(err.value) and _policy() == "float32"


def test_recipe_json_records_the_policy_but_a_run_started_from_it_does_not_inherit_it():
    from dataclasses import replace

    from tflite_isp.nets import recipes
    from tflite_isp.train.config import TrainConfig, resolve

    recipe = replace(recipes.load_recipe("smallnet"), train={"mixed_precision": "bfloat16", "batch": 3})
    cfg = resolve(TrainConfig(), recipe)
    assert cfg.mixed_precision is None and cfg.batch == 3
