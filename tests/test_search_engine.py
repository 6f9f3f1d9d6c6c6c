"""The search engine for real: two worker processes on one SQLite study, its report, and the pick trained, exported
and scored (the resume and bad-input tests are in test_search_resume.py, so the two files run in parallel)."""
import json
import os
import warnings

import optuna
import pytest
from conftest import run_module

from tflite_isp.nets import recipes

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# a tiny space and proxy schedule: each trial trains 20 steps of 2 x 64 x 64 and is timed twice. Every point in it
# completes on the local target: INT8 PRELU is not delegated by XNNPACK, so a "prelu" draw (a joining worker draws
# from its pid) would be pruned at the delegate check
TINY_SPACE = ('levels = [0]\nwidth = [8, 12]\ndepth = [1]\nconv = ["full"]\nattention = ["none"]\n'
              'activation = ["relu", "leaky"]\n')
FAST = ["--trial_steps", "20", "--eval_steps", "10", "--batch", "2", "--patch", "64", "--runs", "2", "--warmup", "1",
        "--calibration_images", "4", "--fidelity_images", "2", "--heartbeat", "2",
        "--prune_margin", "100"]  # no pruning by the curve here (test_search_space checks the rule)


def _space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(TINY_SPACE)
    return path


def _study(root, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / name / 'study.db'}")


def _search(root, name, *args):
    return run_module("tflite_isp.search", "run", "--name", name, "--root", root, *FAST, *args, timeout=900)


def test_two_local_workers_share_one_sqlite_study(tmp_path):
    proc = _search(tmp_path, "two", "--workers", "2", "--n_trials", "2", "--space", _space(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _study(tmp_path, "two")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 2
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both worker processes ran trials
    for t in done:
        psnr, ms = t.values
        assert 5 < psnr < 60 and ms > 0
        recipe = recipes.load_recipe(t.user_attrs["recipe"])  # every candidate is an ordinary recipe file
        assert recipe.model["architecture"] == "searchnet"
        assert os.path.isfile(t.user_attrs["tflite"]) and t.user_attrs["curve"][-1][0] == 20
    pareto = json.loads((tmp_path / "two" / "pareto.json").read_text())
    assert pareto["pick"]["trial"] in {t.number for t in study.best_trials}
    assert (tmp_path / "two" / "report.html").read_text().count("<svg") == 1

    # the pick: an ordinary recipe on the base's whole schedule, trained (a sliver of it here), exported, scored
    proc = run_module("tflite_isp.search", "pick", "--name", "two", "--root", tmp_path, "--fraction", "0.002",
                      "--compare", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pick = tmp_path / "two" / "pick"
    recipe = recipes.load_recipe(pick / "recipe.toml")
    assert recipe.train == recipes.load_recipe("smallnet").train and recipe.model["architecture"] == "searchnet"
    assert "two-pick int8" in (pick / "score" / "leaderboard.md").read_text()
    overlays = sorted(p.name for p in (pick / "run" / "export" / "int8" / "overlays").iterdir())
    assert "model_int8_error.json" in overlays
