"""Two workers, as two machines would, joining one study on a real PostgreSQL server (started by the test)."""
import os
import subprocess
import sys
import time
import warnings

import optuna
import postgres
import pytest
from conftest import REPO
from test_search_engine import FAST, TINY_SPACE

from tflite_isp.search.study import open_storage

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def test_two_workers_join_one_study_on_postgresql(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(TINY_SPACE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with postgres.server() as url:
        first = [sys.executable, "-m", "tflite_isp.search", "run", "--name", "shared", "--storage", url,
                 "--root", str(tmp_path / "a"), *FAST, "--n_trials", "2", "--space", str(space)]
        # the second machine gives only the study and the database: it takes the stored settings
        second = [sys.executable, "-m", "tflite_isp.search", "run", "--name", "shared", "--storage", url,
                  "--root", str(tmp_path / "b"), "--heartbeat", "2", "--runs", "2", "--warmup", "1"]
        a = subprocess.Popen(first, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert _wait_for_study(url), "the first worker made no study in 120 s"
        b = subprocess.Popen(second, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        errs = [p.communicate(timeout=900)[1] for p in (a, b)]
        assert a.returncode == 0 and b.returncode == 0, "\n".join(e[-2000:] for e in errs)
        study = optuna.load_study(study_name="shared", storage=url)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        states = [(t.number, t.state.name, t.user_attrs.get("pruned_at"), t.user_attrs.get("reason"))
                  for t in study.trials]
        assert len(done) >= 2, states
        workers = {t.user_attrs["worker"] for t in study.trials}
        assert len(workers) == 2, workers  # each process ran a trial of the one study
        roots = {str(tmp_path / "a"), str(tmp_path / "b")}
        assert {next(r for r in roots if t.user_attrs["recipe"].startswith(r)) for t in done} == roots
        assert study.user_attrs["settings"]["trial_steps"] == 20


def test_machines_starting_at_once_on_a_fresh_database_make_one_study(tmp_path):
    """Four workers open one new database in the same instant: the tables are made once (not a duplicate-key
    failure in all but one) and the study once, with the settings of whichever came first."""
    go = tmp_path / "go"
    worker = ("import sys, time, pathlib\n"
              "from tflite_isp.search.config import SearchConfig\n"
              "from tflite_isp.search.study import open_study\n"
              "go = pathlib.Path(sys.argv[2])\n"
              "pathlib.Path(sys.argv[4]).touch()\n"
              "while not go.exists(): time.sleep(0.005)\n"
              "study, cfg = open_study(SearchConfig(name='race', storage=sys.argv[1], trial_steps=int(sys.argv[3])),"
              " ('trial_steps',))\n"
              "print(cfg.trial_steps)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with postgres.server() as url:
        ready = [tmp_path / f"ready{i}" for i in range(4)]
        procs = [subprocess.Popen([sys.executable, "-c", worker, url, str(go), "600", str(r)], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in ready]
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready) and time.monotonic() < deadline:
            time.sleep(0.05)  # every process past its imports, waiting for the start
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), "\n".join(err[-1500:] for _, err in outs)
        assert [out.strip() for out, _ in outs] == ["600"] * 4
        summaries = optuna.get_all_study_summaries(url)
        assert [s.study_name for s in summaries] == ["race"]
        assert optuna.load_study(study_name="race", storage=url).user_attrs["settings"]["trial_steps"] == 600


def _wait_for_study(url: str, seconds: float = 120) -> bool:
    """True once the first worker has created the study (so the second one joins it rather than creating it
    with its own default settings)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(s.study_name == "shared" for s in optuna.get_all_study_summaries(open_storage(url))):
            return True
        time.sleep(0.5)
    return False
