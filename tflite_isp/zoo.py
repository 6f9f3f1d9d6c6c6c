"""``python -m tflite_isp.score --zoo``: the built-in models trained on the embedded ISP set, exported FP32 and
INT8 at Full HD and scored in one leaderboard, so a new user sees the whole table from one command.

Runs live in ``runs/zoo/<model>``; a finished run or export is reused, so a second call only scores.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

ZOO_MODELS = ("smallnet", "punet", "sid_unet", "csanet")
ZOO_DIR = Path("runs/zoo")
PRECISIONS = ("fp32", "int8")


def trained(run_dir: Path) -> bool:
    return (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()


def exported(run_dir: Path) -> bool:
    """Every zoo precision exported from the current model.keras."""
    keras_time = (run_dir / "model.keras").stat().st_mtime
    return all((run_dir / "export" / p / "manifest.json").is_file()
               and (run_dir / "export" / p / "manifest.json").stat().st_mtime >= keras_time for p in PRECISIONS)


def prepare(name: str, root: Path, *, data: str, steps: int, seed: int, log=print, **train_settings) -> Path:
    """Train (unless done) and export (unless done) one built-in model; returns its export root."""
    from tflite_isp import export, train

    run_dir = root / name
    if not trained(run_dir):
        log(f"zoo: training {name} into {run_dir}")
        settings = {**({"epochs": 1, "steps_per_epoch": steps} if steps else {}), **train_settings}
        resume = (run_dir / "checkpoints" / "checkpoint").is_file()  # an interrupted zoo run continues
        train.run(train.TrainConfig(model=name, data=data, out=str(run_dir), seed=seed, resume=resume, **settings,
                                    explicit=("data", "out", "seed", *settings)))
    if not exported(run_dir):
        log(f"zoo: exporting {name} ({', '.join(PRECISIONS)})")
        cfg = export.ExportConfig(source=str(run_dir), precisions=PRECISIONS, seed=seed)
        export.run(cfg)
        if cfg.gate_failures:
            log(f"zoo: {name}: " + "; ".join(cfg.gate_failures))
    return run_dir / "export"


def run(cfg, score, *, models=ZOO_MODELS, steps: int = 0, seed: int = 0, root: Path = ZOO_DIR,
        **train_settings) -> dict:
    """Prepare every zoo model on ``cfg.data`` (default: the embedded ISP set), then ``score(cfg)`` all their
    exports together; a model that fails to train or export is a failed row, the rest are scored.

    ``score`` is passed in (score.run) rather than imported: ``python -m tflite_isp.score`` runs that module
    as ``__main__``, and importing it again would define its flags twice.
    """
    import sys

    from tflite_isp.errors import UserError

    def log(message):
        print(message, file=sys.stderr, flush=True)

    data, root = cfg.data or "embedded:isp", Path(root)
    roots = []
    for name in models:
        try:
            roots.append(str(prepare(name, root, data=data, steps=steps, seed=seed, log=log, **train_settings)))
        except UserError as err:
            log(f"zoo: {name}: FAILED: {err}")
            roots.append(str(root / name / "export"))  # scored as a failed row naming what is missing
    return score(replace(cfg, models=tuple(roots), data=data, out=cfg.out or str(root / "score")))


__all__ = ["run", "prepare", "ZOO_DIR", "ZOO_MODELS"]
