"""A search worker killed mid-trial whose trial runs again, and bad input refused in one line without touching
the study."""
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
from test_search_engine import FAST, _search, _space, _study

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


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
    cases.append((["--space", tmp_path / "missing.toml"], "cannot read the search space"))
    for i, (args, words) in enumerate(cases):
        proc = _search(tmp_path, f"bad{i}", *args)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and words in lines[0], proc.stderr[-2000:]
        assert "secret" not in proc.stderr
    assert not (tmp_path / "bad4").exists()  # a space file that cannot be read leaves no study behind
    for i in (2, 3):
        assert _study(tmp_path, f"bad{i}").trials == []  # refused before any trial; the study opens cleanly
    proc = _search(tmp_path, "bad2", "--trial_steps", "40", "--space", prelu, "--target", "adb:FAKE:hexagon")
    assert proc.returncode == 2 and "was created with --trial_steps 20, not 40" in proc.stderr
