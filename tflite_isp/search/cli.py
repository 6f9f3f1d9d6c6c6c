"""``python -m tflite_isp.search``: design the network for a device.

    python -m tflite_isp.search run --name NAME [--target local|adb:SERIAL[:DELEGATE]|jetson:HOST]
        [--latency measure|predict [--table FILE]] [--n_trials 20] [--timeout S] [--workers N] [--storage URL]
        [--data embedded:isp] [--space FILE.toml] [--trial_steps 600] [--max_ms MS]
    python -m tflite_isp.search profile --runtime local|adb:SERIAL[:DELEGATE]|jetson:HOST [--out FILE]
    python -m tflite_isp.search report --name NAME
    python -m tflite_isp.search pick --name NAME [--trial N] [--fraction 1] [--compare RUN ...]

``run`` starts the study ``NAME`` (files in runs/search/NAME, the study in its study.db unless ``--storage``),
or resumes it: finished trials are kept, trials of a dead worker are run again. Workers on other machines join
with the same ``--name`` and ``--storage`` (PostgreSQL: docs/search.md).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tflite_isp.core.errors import UserError, run_cli
from tflite_isp.nets.recipes import load_recipe
from tflite_isp.search import study as studies
from tflite_isp.search.config import SearchConfig
from tflite_isp.search.space import load_point, load_space
from tflite_isp.search.targets import parse_target

_RUN_FLAGS = {  # flag -> (type, help); defaults come from SearchConfig
    "name": (str, "the study's name (its folder under --root)"),
    "target": (str, "local, adb:SERIAL[:DELEGATE] or jetson:HOST"),
    "latency": (str, "measure on the target, or predict from its per-op table"),
    "table": (str, "per-op latency table for --latency predict (default: converters/latency/<device>.json)"),
    "data": (str, "training and validation data, LAYOUT:PATH or embedded:isp"),
    "base": (str, "recipe whose input convention and schedule every candidate takes"),
    "space": (str, "TOML file narrowing the search axes"),
    "start_from": (str, "a point trained first: smallnet (a zoo model in the space) or a TOML file of axis values"),
    "trial_steps": (int, "proxy-training steps per trial"),
    "eval_steps": (int, "validate (and check for pruning) every this many steps"),
    "batch": (int, "proxy-training batch"),
    "patch": (int, "proxy-training crop in RAW pixels (default: the base recipe's)"),
    "prune_margin": (float, "dB below a faster finished trial at the same step that prunes a trial"),
    "max_ms": (float, "latency budget on the target: slower candidates are pruned before training"),
    "mixed_precision": (str, "proxy training in bfloat16 or float16 (train --mixed_precision)"),
    "calibration_images": (int, "INT8 calibration images per trial"),
    "fidelity_images": (int, "validation images the INT8 file is scored on"),
    "seed": (int, "random seed"),
    "root": (str, "folder of the searches"),
    "storage": (str, "database URL shared by workers (sqlite:///FILE, postgresql://USER@HOST/DB)"),
    "n_trials": (int, "finished (complete or pruned) trials to reach, over every worker"),
    "timeout": (float, "seconds: no trial starts that would end after it"),
    "workers": (int, "local worker processes"),
    "threads": (int, "LiteRT threads when timing"),
    "runs": (int, "timed runs per file"),
    "warmup": (int, "untimed runs first"),
    "heartbeat": (int, "seconds between a running trial's heartbeats (stale after three missed)"),
    "benchmark_binary": (str, "adb targets: benchmark_model binary to push"),
    "ssh_config": (str, "jetson targets: ssh config file"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tflite_isp.search", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start or resume a search (the study NAME)")
    for flag, (kind, text) in _RUN_FLAGS.items():
        run.add_argument(f"--{flag}", type=kind, default=None, help=f"{text} (default: "
                                                                   f"{getattr(SearchConfig, flag)})")
    prof = sub.add_parser("profile", help="time probe graphs and write the device's per-op latency table")
    prof.add_argument("--runtime", default="local", help="local, adb:SERIAL[:DELEGATE] or jetson:HOST")
    prof.add_argument("--out", type=Path, default=None, help="table file (default converters/latency/<device>.json)")
    prof.add_argument("--threads", type=int, default=2, help="LiteRT threads (local, jetson)")
    prof.add_argument("--benchmark_binary", default=None, help="adb: benchmark_model binary to push")
    prof.add_argument("--ssh_config", default=None, help="jetson: ssh config file")
    rep = sub.add_parser("report", help="write pareto.{md,json} and report.html of a search")
    pick = sub.add_parser("pick", help="train the pick at its full schedule, export it, score it next to the zoo")
    for s in (rep, pick):
        s.add_argument("--name", default=SearchConfig.name)
        s.add_argument("--root", default=SearchConfig.root)
        s.add_argument("--storage", default=None)
    pick.add_argument("--trial", type=int, default=None, help="this trial instead of the best MAI score "
                                                                "(its files go to pick-trialN/)")
    pick.add_argument("--fraction", type=float, default=1.0, help="share of the recipe's schedule to train")
    pick.add_argument("--compare", nargs="*", default=["runs/zoo/smallnet"], help="run folders scored beside it")
    return p


def config(args) -> tuple:
    """(SearchConfig, the flags given explicitly)."""
    given = {k: v for k, v in vars(args).items() if k in _RUN_FLAGS and v is not None}
    return SearchConfig(**given), tuple(given)


def _run(args, argv: list) -> None:
    cfg, explicit = config(args)
    target = parse_target(cfg.target)  # bad input stops here, before any database is touched
    axes = load_space(cfg.space)
    if cfg.start_from:
        load_point(cfg.start_from, axes)
    if "base" in explicit:
        load_recipe(cfg.base)
    study, cfg = studies.open_study(cfg, explicit)
    started = time.monotonic()
    if cfg.workers > 1:
        code = studies.launch_workers(_without_workers(argv), cfg.workers, log=_log)
        if code:
            raise UserError(f"a worker exited with code {code} (see its output above)")
    else:
        from tflite_isp.search import worker  # lazy: TensorFlow and the harnesses only for a worker

        worker.run(study, cfg, target, started, log=_log)
    from tflite_isp.search import report  # lazy: matplotlib only for the report

    _log(f"report: {report.write(study, cfg)}")


def _without_workers(argv: list) -> list:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command == "run":
        _run(args, argv)
    elif args.command == "profile":
        from tflite_isp.search import profile  # lazy: TensorFlow only for profiling

        options = {k: v for k, v in (("binary", args.benchmark_binary), ("ssh_config", args.ssh_config)) if v}
        print(profile.profile(args.runtime, args.out, log=_log, threads=args.threads, **options))
    else:
        from tflite_isp.search import pick, report  # lazy: only these commands read a finished study

        cfg = SearchConfig(name=args.name, root=args.root, storage=args.storage)
        study = studies.load_study(cfg)
        if args.command == "report":
            print(report.write(study, cfg))
        else:
            print(pick.pick(study, cfg, trial=args.trial, fraction=args.fraction, compare=args.compare, log=_log))
    return 0


def entry() -> None:
    sys.exit(run_cli(main))
