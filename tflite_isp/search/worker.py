"""A search worker: the target's runtime or latency table, a check that the space has candidates the target's
delegate takes, then trials until the study's budget is spent."""
from __future__ import annotations

import optuna

from tflite_isp.core.errors import UserError
from tflite_isp.export import compat
from tflite_isp.nets import recipes
from tflite_isp.run import flatbuffer
from tflite_isp.score import sources
from tflite_isp.search import space
from tflite_isp.search import study as studies
from tflite_isp.search.config import SearchConfig
from tflite_isp.search.targets import Target
from tflite_isp.search.trial import Trial, shipped_form, untrained_int8

PREFLIGHT_SAMPLES = 12


def run(study, cfg: SearchConfig, target: Target, started: float, log=print) -> None:
    """Trials in this process until ``--n_trials`` / ``--timeout`` across the study's workers."""
    predictor = _predictor(cfg, target) if cfg.latency == "predict" else None
    if not any(t.user_attrs.get("delegate") and t.user_attrs.get("pruned_at") != "delegate"
               for t in study.get_trials(deepcopy=False)):
        preflight(cfg, target, log)
    runtime = None if predictor else sources.parse(target.runtime, None, threads=cfg.threads, runs=cfg.runs,
                                                   warmup=cfg.warmup, binary=cfg.benchmark_binary,
                                                   ssh_config=cfg.ssh_config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies.work(study, Trial(cfg, target, runtime, predictor, log=log), cfg, started)


class _Predicted:
    """``--latency predict``: Full HD milliseconds from the target's per-op table."""

    def __init__(self, table, latency_module):
        self.table, self.latency = table, latency_module
        self.label = f"predicted from {table.get('path', 'the per-op table')}"

    def __call__(self, path) -> float:
        return self.latency.predict(path, self.table)["ms"]


def _predictor(cfg: SearchConfig, target: Target):
    from tflite_isp.search import latency  # lazy: only predicting workers read tables

    return _Predicted(latency.table_for(target, cfg.table, cfg.threads), latency)


def preflight(cfg: SearchConfig, target: Target, log=print) -> None:
    """Refuse, in one line, a space whose sampled candidates the target's delegate never fully takes."""

    blocked, recipe = {}, recipes.load_recipe(cfg.base)
    for section, _ in zip(space.sample(cfg.seed, space.load_space(cfg.space)), range(PREFLIGHT_SAMPLES)):
        try:
            data = untrained_int8(lambda: shipped_form(section, recipe.input, 64, 64), recipe.input.channels)
        except (ValueError, UserError):  # settings the network refuses, a graph the converter refuses: not delegable
            continue
        report = compat.check(flatbuffer.parse(data), target.delegate)
        if report.fully_delegable:
            return
        for op in report.fallback_counts():
            blocked[op] = blocked.get(op, 0) + 1
    ops = ", ".join(f"{op} ({n}/{PREFLIGHT_SAMPLES})" for op, n in sorted(blocked.items(), key=lambda x: -x[1]))
    raise UserError(f"no candidate of the search space is fully delegable on {target.spec} "
                    f"({target.delegate} table; {PREFLIGHT_SAMPLES} sampled): falls back: {ops or 'none built'}; "
                    "narrow the space (--space) to ops the target runs")
