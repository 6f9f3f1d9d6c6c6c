"""Compression flags on train: magnitude pruning, structured channel pruning, distillation, joint heads."""
import json

import numpy as np
import pytest
from conftest import run_module
from test_train import _error_line

SID_TINY = ["--model", "sid_unet", "--width_multiplier", "0.25", "--batch", "2", "--patch", "32"]


@pytest.fixture(scope="module")
def trained_sid(lowlight_data, tmp_path_factory):
    """A slim SID U-Net trained briefly on the low-light DNGs (the teacher / pruning source)."""
    run = tmp_path_factory.mktemp("runs") / "sid"
    run_module("tflite_isp.train", *SID_TINY, "--epochs", "1", "--steps_per_epoch", "40", "--lr", "1e-3",
               "--data", f"sid:{lowlight_data}", "--out", run, cwd=run.parent, check=True)
    return run


def _unet(channels=None, separable=False, widths=(8, 16, 32)):
    from tflite_isp.nets import architectures

    model = {"architecture": "unet", "widths": list(widths), "separable": separable}
    if channels:
        model["channels"] = channels
    return architectures.build(model, height=16, width=16, batch=1)


def _recipe(separable=False):
    from tflite_isp.nets import recipes

    return recipes.load_recipe("sid_unet").with_model(widths=[8, 16, 32], separable=separable)


# --- structured channel pruning: the parts --------------------------------------------------

def test_transfer_computes_what_the_surviving_channels_computed():
    """Zeroing the removed filters of the big net must give exactly the small net's output."""
    from tflite_isp.core.tf import keras
    from tflite_isp.train import channel_prune

    keras.utils.set_random_seed(3)
    recipe = _recipe()
    big = _unet()
    for w in big.weights:  # non-zero biases, so a dropped bias would show
        w.assign(np.random.default_rng(len(w.name)).normal(0, 0.3, w.shape).astype(np.float32))
    layers = channel_prune.prunable_layers(big, recipe.model)
    rng = np.random.default_rng(0)
    kept = {lay.name: np.sort(rng.choice(big.get_layer(lay.producer).filters,
                                         max(1, big.get_layer(lay.producer).filters // 2), replace=False))
            for lay in layers}
    smaller, small = channel_prune.shrink(big, recipe, layers, kept)
    assert smaller.model["channels"]["conv1a"] == 4 and small.get_layer("conv3b").filters == 16
    for lay in layers:
        layer = big.get_layer(lay.producer)
        drop = np.setdiff1d(np.arange(layer.filters), kept[lay.name])
        kernel, *bias = layer.get_weights()
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kernel[:, :, drop] = 0
        else:
            kernel[..., drop] = 0
        layer.set_weights([kernel] + [b * np.isin(np.arange(b.size), drop, invert=True) for b in bias])
    x = np.random.default_rng(1).uniform(0, 1, (1, 16, 16, 4)).astype(np.float32)
    want = big(x).numpy()
    # float sums in another order (fewer channels, other oneDNN kernels): equal to float32 precision of the scale
    np.testing.assert_allclose(small(x).numpy(), want, atol=1e-6 * max(1.0, float(np.abs(want).max())))


def test_separable_unet_prunes_to_fewer_macs():
    from tflite_isp.nets import architectures
    from tflite_isp.nets.stats import count_macs
    from tflite_isp.train import channel_prune

    recipe = _recipe(separable=True)
    big = _unet(separable=True)
    layers = channel_prune.prunable_layers(big, recipe.model)
    assert {lay.producer for lay in layers} >= {"conv2a_pw", "up4", "conv1a"}  # conv1a sees 4 channels: plain conv
    scores = {lay.name: np.random.default_rng(0).random(big.get_layer(lay.producer).filters) for lay in layers}
    smaller, small = channel_prune.shrink(big, recipe, layers, channel_prune.plan(scores, 0.3))
    assert count_macs(architectures.build(smaller.model, height=16, width=16, batch=1)) < 0.8 * count_macs(big)
    assert small(np.zeros((1, 16, 16, 4), np.float32)).shape == (1, 32, 32, 3)


def test_plan_removes_the_lowest_scores_across_layers_but_never_a_whole_layer():
    from tflite_isp.core.errors import UserError
    from tflite_isp.train import channel_prune

    scores = {"a": np.array([0.9, 0.1, 0.8, 0.05]), "b": np.array([0.01, 0.02]), "c": np.array([0.5, 0.6, 0.7, 0.4])}
    kept = channel_prune.plan(scores, 0.4)  # 4 of 10 channels
    assert [list(kept[k]) for k in "abc"] == [[0, 2], [1], [0, 1, 2]]  # b keeps its best channel
    assert sum(map(len, kept.values())) == 6
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(UserError, match="prune_step"):
            channel_prune.plan(scores, bad)
    with pytest.raises(UserError, match="every filter of b"):
        channel_prune.check_channels({"a": np.arange(2), "b": np.array([], int)})


def test_a_recipe_that_removes_every_filter_of_a_layer_is_refused(lowlight_data, tmp_path):
    from tflite_isp.nets import recipes

    recipe = recipes.load_recipe("sid_unet").to_dict()
    recipe["model"]["channels"] = {"conv3a": 0}
    path = tmp_path / "pruned.json"
    path.write_text(json.dumps(recipe))
    proc = run_module("tflite_isp.train", "--model", path, "--data", f"sid:{lowlight_data}", "--out", tmp_path / "r",
                      cwd=tmp_path)
    line = _error_line(proc)
    assert "pruned.json" in line and "conv3a" in line and "every filter" in line
    assert not (tmp_path / "r").exists()


# --- the command line ------------------------------------------------------------------------

def test_channel_pruning_gives_a_smaller_dense_model_that_exports_and_runs(trained_sid, lowlight_data, tmp_path):
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.nets.stats import count_macs
    from tflite_isp.run import flatbuffer
    from tflite_isp.run import litert as runtime

    out = tmp_path / "pruned"
    proc = run_module("tflite_isp.train", "--channel_prune", trained_sid, "--prune_step", "0.25", "--prune_rounds",
                      "2", "--prune_psnr_drop", "50", "--steps_per_epoch", "5", "--batch", "2", "--patch", "32",
                      "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "round 2:" in proc.stderr and "of MACs" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    rows = metrics["pruning"]
    assert [r["round"] for r in rows] == [0, 1, 2] and all(r["accepted"] for r in rows)
    assert rows[2]["macs_full_hd"] < rows[1]["macs_full_hd"] < rows[0]["macs_full_hd"]
    assert metrics["summary"]["macs_removed"] > 0.25 and metrics["finished"]
    channels = json.loads((out / "recipe.json").read_text())["model"]["channels"]
    assert channels == rows[2]["channels"]

    proc = run_module("tflite_isp.export", out, "--int8", "--size", "32x32", "--fidelity_images", "2",
                      "--nomodel_none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    path = out / "export" / "int8" / "model.tflite"
    base = architectures.build(recipes.load_recipe(trained_sid).model, height=32, width=32, batch=1)
    assert flatbuffer.count_macs(flatbuffer.read(path)) < 0.6 * count_macs(base)
    y = runtime.Runner(path)(np.full((1, 32, 32, 4), 0.1, np.float32))
    assert y.shape == (1, 64, 64, 3) and np.isfinite(y).all()


def test_channel_pruning_stops_before_the_psnr_threshold(trained_sid, tmp_path):
    out = tmp_path / "pruned"
    proc = run_module("tflite_isp.train", "--channel_prune", trained_sid, "--prune_step", "0.9", "--prune_rounds",
                      "3", "--prune_psnr_drop", "0", "--steps_per_epoch", "1", "--batch", "2", "--patch", "32",
                      "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["accepted"] for r in metrics["pruning"]] == [True, False]
    assert metrics["summary"]["rounds_kept"] == 0 and metrics["summary"]["macs_removed"] == 0
    assert "channels" not in json.loads((out / "recipe.json").read_text())["model"]
    assert "keeping round 0" in proc.stderr


def test_magnitude_pruning_strips_to_a_sparse_plain_model(trained_sid, tmp_path):
    from tflite_isp.nets import architectures
    from tflite_isp.train import sparsity

    out = tmp_path / "sparse"
    proc = run_module("tflite_isp.train", "--init_from", trained_sid, "--prune_sparsity", "0.6", "--epochs", "1",
                      "--steps_per_epoch", "10", "--batch", "2", "--patch", "32", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["compression"]["prune_sparsity"] == 0.6 and metrics["compression"]["init_from"] == str(trained_sid)
    model = architectures.load(out / "model.keras")
    assert not any("prune" in layer.name for layer in model.layers)
    assert 0.59 < sparsity.kernel_sparsity(model) == pytest.approx(metrics["prune_sparsity_achieved"])
    proc = run_module("tflite_isp.export", out, "--int8", "--size", "32x32", "--fidelity_images", "2",
                      "--nomodel_none", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_distillation_moves_the_student_toward_the_teacher():
    """Training on the teacher term alone shrinks the student-teacher gap on held-out inputs."""
    from tflite_isp.core.tf import keras, tf
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.train import objectives
    from tflite_isp.train.losses import make_loss

    keras.utils.set_random_seed(0)
    teacher = architectures.build(recipes.load_recipe("sid_unet").with_model(widths=[8, 16, 32]).model)
    student = architectures.build(recipes.load_recipe("smallnet").model)
    objective = objectives.Distill(student, make_loss([("l1", 1.0)]), teacher, alpha=1.0, features=0.1)
    rng = np.random.default_rng(0)
    train = rng.uniform(0, 1, (8, 16, 16, 4)).astype(np.float32)
    held_out = rng.uniform(0, 1, (4, 16, 16, 4)).astype(np.float32)
    gap = lambda: float(np.mean(np.abs(student(held_out).numpy() - teacher(held_out).numpy())))  # noqa: E731
    before = gap()
    optimizer = keras.optimizers.Adam(1e-2)
    teacher_weights = [w.numpy().copy() for w in teacher.weights]
    for _ in range(60):
        with tf.GradientTape() as tape:
            loss = objective.loss(train, np.zeros((8, 32, 32, 3), np.float32))  # targets unused at alpha 1
        optimizer.apply_gradients(zip(tape.gradient(loss, objective.variables), objective.variables))
    assert gap() < 0.5 * before
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(teacher_weights, teacher.weights))  # teacher frozen
    assert len(objective.variables) == len(student.trainable_variables) + 2  # + the 1x1 adapter's kernel and bias


def test_distilled_student_adopts_the_teachers_input_convention(trained_sid, tmp_path):
    out = tmp_path / "student"
    proc = run_module("tflite_isp.train", "--model", "smallnet", "--teacher", trained_sid, "--distill_features", "0.1",
                      "--epochs", "1", "--steps_per_epoch", "5", "--batch", "2", "--patch", "32", "--out", out,
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    recipe, teacher = (json.loads((p / "recipe.json").read_text()) for p in (out, trained_sid))
    assert recipe["model"]["architecture"] == "smallnet"
    assert recipe["input"] == teacher["input"] and recipe["task"] == "lowlight"
    assert json.loads((out / "metrics.json").read_text())["compression"]["teacher"] == str(trained_sid)


def test_joint_heads_train_together_and_only_the_small_one_is_saved(lowlight_data, tmp_path):
    from tflite_isp.nets import architectures, recipes

    out = tmp_path / "joint"
    proc = run_module("tflite_isp.train", *SID_TINY, "--joint_large_head", "2", "--epochs", "1",
                      "--steps_per_epoch", "5", "--data", f"sid:{lowlight_data}", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(metrics["joint"]["large_head_val_psnr"])
    model = architectures.load(out / "model.keras")
    assert not any(layer.name.startswith("large_") for layer in model.layers)
    plain = architectures.build(recipes.load_recipe(out / "recipe.json").model)
    assert model.count_params() == plain.count_params() == metrics["parameters"]


@pytest.mark.parametrize("args,expected", [
    (["--prune_sparsity", "1.5"], "--prune_sparsity must be between 0 and 1"),
    (["--model", "smallnet", "--joint_large_head", "2"], "needs a U-Net recipe"),
    (["--joint_large_head", "0.5"], "must be > 1"),
    (["--distill_features", "0.1"], "needs --teacher"),
    (["--distill_alpha", "2", "--teacher", "TEACHER"], "--distill_alpha must be in [0, 1]"),
    (["--joint_large_head", "2", "--teacher", "TEACHER"], "does not take --teacher"),
    (["--channel_prune", "TEACHER", "--prune_step", "1"], "would remove every filter"),
    (["--channel_prune", "SMALLNET"], "supports U-Net recipes"),
    (["--channel_prune", "NOWHERE"], "not a finished run directory"),
    (["--init_from", "SMALLNET", "--model", "sid_unet"], "cannot start from this run"),
])
def test_bad_compression_settings_are_one_line_errors(args, expected, trained_sid, lowlight_data, tmp_path):
    from conftest import make_run

    smallnet = make_run(tmp_path / "smallnet", "smallnet", f"sid:{lowlight_data}")
    names = {"TEACHER": trained_sid, "SMALLNET": smallnet, "NOWHERE": tmp_path / "nowhere"}
    args = [str(names.get(a, a)) for a in args]
    if "--model" not in args and "--channel_prune" not in args:
        args = [*SID_TINY, *args]
    proc = run_module("tflite_isp.train", *args, "--epochs", "1", "--steps_per_epoch", "2",
                      "--data", f"sid:{lowlight_data}", "--out", tmp_path / "out", cwd=tmp_path)
    assert expected in _error_line(proc)
    assert not (tmp_path / "out" / "model.keras").exists()
