"""The search engine for real: worker processes on one SQLite study, a worker killed mid-trial whose trial runs
again, and bad input refused in one line without touching the study."""
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from conftest import REPO, run_module

from tflite_isp.nets import recipes

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

# a tiny space and proxy schedule: each trial trains 20 steps of 2 x 64 x 64 and is timed twice
TINY_SPACE = 'levels = [0]\nwidth = [8, 12]\ndepth = [1]\nconv = ["full"]\nattention = ["none"]\n'
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
    proc = _search(tmp_path, "two", "--workers", "2", "--n_trials", "3", "--space", _space(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = _study(tmp_path, "two")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 3
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


def test_a_killed_worker_s_trial_is_run_again(tmp_path):
    space = _space(tmp_path)
    args = [sys.executable, "-m", "tflite_isp.search", "run", "--name", "kill", "--root", str(tmp_path), *FAST,
            "--n_trials", "1", "--space", str(space)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen(args, env=env, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    log = tmp_path / "kill" / "trials" / "0000" / "train.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and log.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert log.is_file(), "the first trial never reached training"
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its training child die mid-trial
    worker.wait()
    killed = _study(tmp_path, "kill").trials[0]
    assert killed.state == optuna.trial.TrialState.RUNNING
    time.sleep(3 * 2 + 1)  # three missed heartbeats
    proc = run_module("tflite_isp.search", "run", "--name", "kill", "--root", tmp_path, "--heartbeat", "2",
                      timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = _study(tmp_path, "kill").trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    rerun = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert rerun and rerun[0].state == optuna.trial.TrialState.COMPLETE and rerun[0].params == killed.params


def test_bad_input_is_one_line_and_leaves_the_study_intact(tmp_path):
    cases = [
        (["--target", "phone"], "unknown target 'phone'"),
        (["--storage", "postgresql://u:secret@127.0.0.1:9/none"], "cannot open the study storage postgresql://u:***@"),
    ]
    prelu = tmp_path / "prelu.toml"
    prelu.write_text('levels = [0]\nactivation = ["prelu"]\nwidth = [8]\n')
    # PRELU is not in the Hexagon delegate's op table: nothing this space makes runs fully on it
    cases.append((["--space", prelu, "--target", "adb:FAKE:hexagon"], "no candidate of the search space is fully "
                                                                        "delegable on adb:FAKE:hexagon"))
    table = json.loads((REPO / "converters" / "latency" / "cpu-amd-epyc-2t.json").read_text())
    table["description"]["cpu_model"] = "Some Other CPU"
    (tmp_path / "other.json").write_text(json.dumps(table))
    cases.append((["--latency", "predict", "--table", tmp_path / "other.json"], "latency table is for Some Other CPU"))
    for i, (args, words) in enumerate(cases):
        proc = _search(tmp_path, f"bad{i}", *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and words in lines[0], proc.stderr[-2000:]
        assert "secret" not in proc.stderr
    for i in (2, 3):
        assert _study(tmp_path, f"bad{i}").trials == []  # refused before any trial; the study opens cleanly
    proc = _search(tmp_path, "bad2", "--trial_steps", "40", "--space", prelu, "--target", "adb:FAKE:hexagon")
    assert proc.returncode == 2 and "was created with --trial_steps 20, not 40" in proc.stderr
