"""The Optuna study behind a search: its storage, its sampler, workers, and resuming a killed search.

Two objectives, maximise the INT8 file's validation PSNR and minimise latency on the target, sampled by
multi-objective TPE rather than NSGA-II: a search here runs tens of trials, not the hundreds NSGA-II's
generations need, and TPE's constant liar lets parallel workers avoid sampling the same point. Optuna's
pruners are single-objective, so a trial's intermediate curve is judged by ``trial.Trial._check_dominated``.

Storage is SQLAlchemy's: an SQLite file in the search folder, or ``--storage URL`` (PostgreSQL for many
machines). Running trials send heartbeats; one whose worker died (killed, machine lost) goes stale after three
missed beats, is marked failed and is queued again with the same parameters (``RetryHeartbeatStaleTrialCallback``).
"""
from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
import warnings
import zlib
from dataclasses import replace

import optuna
import sqlalchemy

from tflite_isp.core.errors import UserError
from tflite_isp.search import space
from tflite_isp.search.config import STUDY_KEYS, SearchConfig

DIRECTIONS = ("maximize", "minimize")  # INT8 validation PSNR (dB), latency on the target (ms)
DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
MAX_RETRY = 2
N_STARTUP = 8  # random trials before TPE models the space
optuna.logging.set_verbosity(optuna.logging.WARNING)
# heartbeats and their retry callback are marked experimental in Optuna 5, and have been since 2.8
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage(cfg: SearchConfig) -> optuna.storages.RDBStorage:
    """The study's database, reached now: an unreachable URL is one line (its password hidden)."""
    if not cfg.storage:
        cfg.folder.mkdir(parents=True, exist_ok=True)
    return open_storage(cfg.storage_url, cfg.heartbeat)


def open_storage(url: str, heartbeat: int = 20) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url``, its tables made if the database is new. Machines that start on one fresh
    PostgreSQL database at the same moment would each create the tables and all but one fail on a duplicate
    key, so there the creation is serialised by an advisory lock."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with exclusive(url, "schema"):
            return optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
    except Exception as err:  # SQLAlchemy raises per driver: OperationalError, ArgumentError, ModuleNotFoundError
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot open the study storage {hide_password(url)}: {detail[:200]}") from None


@contextlib.contextmanager
def exclusive(url: str, what: str):
    """Hold PostgreSQL's session advisory lock named ``what`` on ``url`` for the block: one machine at a time
    creates the tables, or creates (or joins) a study. SQLite locks its file itself."""
    if not url.startswith("postgresql"):
        yield
        return
    key = zlib.crc32(f"tflite_isp.search:{what}".encode())
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def hide_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest or ":" not in rest.split("@")[0]:
        return url
    user = rest.split("@")[0].split(":")[0]
    return f"{scheme}{sep}{user}:***@{rest.split('@', 1)[1]}"


def open_study(cfg: SearchConfig, explicit: tuple = ()) -> tuple:
    """(study, cfg): the study ``cfg.name`` created with ``cfg``'s settings, or joined. A joining worker takes the
    stored settings; one it was explicitly given that differ is refused in one line. ``--n_trials`` is the
    study's too, but a worker may raise it (to extend a finished search). ``--start_from`` queues a point to
    be trained before any sampled one."""
    store = storage(cfg)
    with exclusive(cfg.storage_url, f"study:{cfg.name}"):  # two creators at once: the second joins the first
        study, cfg = _create_or_join(cfg, store, explicit)
        if cfg.start_from:  # queued once: not again by a worker that joins or resumes with the same point
            point = space.load_point(cfg.start_from, space.load_space(cfg.space))
            study.enqueue_trial(point, user_attrs={"start_from": cfg.start_from}, skip_if_exists=True)
    return study, cfg


def _create_or_join(cfg: SearchConfig, store, explicit: tuple) -> tuple:
    joined = cfg.name in {s.study_name for s in optuna.get_all_study_summaries(store)}
    sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True,
                                         seed=_worker_seed(cfg, joined), n_startup_trials=N_STARTUP)
    study = optuna.create_study(study_name=cfg.name, storage=store, directions=list(DIRECTIONS), sampler=sampler,
                                load_if_exists=True)
    if "n_trials" in explicit or "n_trials" not in study.user_attrs:  # the budget may grow on a resume
        study.set_user_attr("n_trials", cfg.n_trials)
    cfg = replace(cfg, n_trials=study.user_attrs["n_trials"])
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", cfg.study_settings())
        return study, cfg
    clash = [k for k in explicit if k in STUDY_KEYS and stored.get(k) != getattr(cfg, k)]
    if clash:
        k = clash[0]
        raise UserError(f"study {cfg.name!r} in {hide_password(cfg.storage_url)} was created with --{k} "
                        f"{stored.get(k)!r}, not {getattr(cfg, k)!r}: use another --name, or leave --{k} out")
    return study, replace(cfg, **{k: stored[k] for k in STUDY_KEYS if k in stored})


def load_study(cfg: SearchConfig):
    """An existing study (report, pick); a name the storage does not hold is one line."""
    if not cfg.storage and not (cfg.folder / "study.db").is_file():
        raise UserError(f"no search {cfg.name!r}: {cfg.folder / 'study.db'} not found (start it with search run)")
    store = storage(cfg)
    names = [s.study_name for s in optuna.get_all_study_summaries(store)]
    if cfg.name not in names:
        raise UserError(f"no search {cfg.name!r} in {hide_password(cfg.storage_url)} (searches: "
                        f"{', '.join(names) or 'none'})")
    return optuna.load_study(study_name=cfg.name, storage=store)


def _worker_seed(cfg: SearchConfig, joined: bool) -> int:
    """The study's creator samples from ``--seed``; every other worker (``--workers``, another machine, a resume)
    from its own sequence, or their random first trials would all be the same point."""
    worker = os.environ.get("TFLITE_ISP_SEARCH_WORKER")
    if worker is not None:
        return cfg.seed * 1000 + int(worker)
    return cfg.seed * 1000 + (os.getpid() % 997 + 1 if joined else 0)


class Budget:
    """``--n_trials`` finished trials across every worker, and ``--timeout``: no trial starts that the median
    trial time says would end past it."""

    def __init__(self, cfg: SearchConfig, started: float):
        self.n_trials, self.timeout, self.started = cfg.n_trials, cfg.timeout, started

    def done(self, study, *, counting_running: bool = False) -> bool:
        states = DONE + ((optuna.trial.TrialState.RUNNING,) if counting_running else ())
        return len(study.get_trials(deepcopy=False, states=states)) >= self.n_trials

    def out_of_time(self, study) -> bool:
        if not self.timeout:
            return False
        took = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.get_trials(deepcopy=False)
                if t.datetime_complete and t.datetime_start and t.state in DONE]
        expected = statistics.median(took) if took else 0.0
        return time.monotonic() - self.started + expected > self.timeout

    def __call__(self, study, _trial) -> None:
        if self.done(study, counting_running=True) or self.out_of_time(study):
            study.stop()


def work(study, objective, cfg: SearchConfig, started: float | None = None) -> None:
    """Run trials in this process until the budget is spent (shared across workers through the storage)."""
    budget = Budget(cfg, started or time.monotonic())
    optuna.storages.fail_stale_trials(study)
    if budget.done(study) or budget.out_of_time(study):
        return
    study.optimize(objective, n_trials=None, callbacks=[budget], catch=(), gc_after_trial=True)


def launch_workers(argv: list, n: int, log=print) -> int:
    """``--workers N``: N worker processes of the same command (each ``--workers 1``); the first failure's code."""
    procs = []
    for i in range(n):
        env = {**os.environ, "TFLITE_ISP_SEARCH_WORKER": str(i)}
        procs.append(subprocess.Popen([sys.executable, "-m", "tflite_isp.search", *argv, "--workers", "1"], env=env))
        log(f"worker {i}: pid {procs[-1].pid}")
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        raise
    return next((c for c in codes if c), 0)
