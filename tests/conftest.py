"""Shared fixtures: tiny real datasets made by the project's own generator, an isolated cache."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Tests never read or write the user's cache (embedded data, SID ground-truth cache)."""
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("TFLITE_ISP_CACHE")
    os.environ["TFLITE_ISP_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("TFLITE_ISP_CACHE", None)
    else:
        os.environ["TFLITE_ISP_CACHE"] = old


@pytest.fixture(scope="session")
def isp_data(tmp_path_factory):
    """A small MAI 2021-layout set (the embedded generator, fewer and smaller crops)."""
    from tflite_isp.data import synth

    return synth.make_isp(tmp_path_factory.mktemp("data") / "isp", crops_per_photo=6, eval_crops_per_photo=3,
                          size=96, seed=1)


@pytest.fixture(scope="session")
def lowlight_data(tmp_path_factory):
    """A small SID-layout set of real DNG files."""
    from tflite_isp.data import synth

    return synth.make_lowlight(tmp_path_factory.mktemp("data") / "lowlight", small=True, seed=1)


@pytest.fixture
def isp_copy(isp_data, tmp_path):
    """A private copy of the ISP set that a test may damage."""
    dst = tmp_path / "isp"
    shutil.copytree(isp_data, dst)
    return dst


def run_module(module, *args, env=None, cwd=REPO, timeout=600, check=False):
    """Run ``python -m MODULE ARGS`` in a fresh interpreter; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def randomise(model, seed=0, spread=0.5):
    """Every weight random, BN statistics and affine terms (normal, ``spread``) away from their initial 0/1: what a
    re-parameterisation or fusing test needs so that a wrong fold cannot hide behind identity weights."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for w in model.weights:
        name = w.name.split("/")[-1]
        if name.startswith("moving_variance"):
            w.assign(rng.uniform(0.3, 3.0, w.shape))
        elif name.startswith("gamma"):
            w.assign(rng.uniform(0.5, 2.0, w.shape))
        elif name.startswith(("moving_mean", "beta", "bias", "alpha")):
            w.assign(rng.normal(0.0, spread, w.shape))
        else:
            w.assign(rng.normal(0.0, 1.0 / np.sqrt(np.prod(w.shape[:-1])), w.shape))
    return model


def make_run(path, name, data, **model):
    """A run directory as train writes one (recipe.json, run.json, model.keras), small weights."""
    from tflite_isp.core.tf import keras
    from tflite_isp.data import layouts
    from tflite_isp.nets import architectures, recipes

    recipe = recipes.load_recipe(name).with_model(**model)
    keras.utils.set_random_seed(0)
    net = architectures.build(recipe.model, name=recipe.name, cfa=recipe.input.cfa)
    path.mkdir(parents=True)
    layout, root = layouts.parse_data_flag(data)
    (path / "recipe.json").write_text(json.dumps(recipe.to_dict()))
    (path / "run.json").write_text(json.dumps({"config": {}, "data": {"layout": layout, "root": str(root)}}))
    net.save(str(path / "model.keras"))
    return path


def fit_steps(loss_of, variables, *, steps: int, lr: float, graph: bool = False) -> list:
    """``steps`` Adam steps minimising ``loss_of()`` over ``variables``; the loss at each (the zoo tests' "a few
    steps on one batch lower the loss"). ``graph`` runs the step as a tf.function, as train does."""
    from tflite_isp.core.tf import keras, tf

    optimizer = keras.optimizers.Adam(lr)

    def step():
        with tf.GradientTape() as tape:
            loss = loss_of()
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    step = tf.function(step) if graph else step
    return [float(step()) for _ in range(steps)]


from sshd_board import sshd  # noqa: E402,F401  (the board fixture, shared by test_jetson and test_stream)
