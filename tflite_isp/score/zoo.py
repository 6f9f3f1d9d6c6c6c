"""``python -m tflite_isp.score --zoo``: the built-in models trained on the embedded ISP set, exported FP16 and
INT8 at Full HD and scored in one leaderboard, so a new user sees the whole table from one command.

Runs live in ``runs/zoo/<model>``; a finished run or export is reused, so a second call only scores.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from tflite_isp.core.errors import UserError
from tflite_isp.nets import recipes

ZOO_MODELS = ("smallnet", "punet", "sid_unet", "csanet",  # MAI 2021: winner, baseline, SID, best PSNR
              "enerzai", "isp_forever", "noahtcv",  # MAI 2021 field, from the report's descriptions
              "syenet", "microisp", "pynet_v2_mobile")  # MAI 2022 winner, MicroISP, PyNET-V2 Mobile
ZOO_DIR = Path("runs/zoo")
PRECISIONS = ("fp16", "int8")  # mai22 submits the FP16 file, mai21 usually the INT8 one


def trained(run_dir: Path) -> bool:
    return (run_dir / "model.keras").is_file() and (run_dir / "metrics.json").is_file()


def exported(run_dir: Path) -> bool:
    """Every zoo precision exported from the current model.keras."""
    keras_time = (run_dir / "model.keras").stat().st_mtime
    return all((run_dir / "export" / p / "manifest.json").is_file()
               and (run_dir / "export" / p / "manifest.json").stat().st_mtime >= keras_time for p in PRECISIONS)


def command(module: str, args: list, what: str, log) -> None:
    """``python -m tflite_isp.MODULE ARGS`` as a child process (its progress goes to our stderr); its one-line
    error becomes ours. The zoo drives train and export as commands, so scoring never imports training."""
    cmd = [sys.executable, "-m", f"tflite_isp.{module}", *map(str, args)]
    with tempfile.TemporaryFile() as out:
        with subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE) as child:
            stderr = _relay(child.stderr)  # progress bars rewrite one line with \r: pass bytes on as they come
        out.seek(0)
        proc = subprocess.CompletedProcess(cmd, child.returncode, out.read().decode(errors="replace"), stderr)
    gate = [line for line in proc.stderr.splitlines() if line.startswith("FAILED ")]
    if proc.returncode == 1 and gate:  # a fidelity gate failed: that precision is not written, its row says so
        log(f"zoo: {what}: " + "; ".join(gate))
    elif proc.returncode:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error: ")]
        raise UserError(f"{what} failed: {(errors or lines or ['exit code %d' % proc.returncode])[-1]}")
    log(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"{what}: done")


def _relay(stream, keep: int = 1 << 16) -> str:
    """Copy a child's stderr to ours as it arrives; return its last ``keep`` bytes as text (for the error line)."""
    tail, sink = b"", getattr(sys.stderr, "buffer", None)
    for chunk in iter(lambda: stream.read1(4096), b""):
        if sink is not None:
            sink.write(chunk)
        else:
            sys.stderr.write(chunk.decode(errors="replace"))
        sys.stderr.flush()
        tail = (tail + chunk)[-keep:]
    return tail.decode(errors="replace")


def train_args(name: str, run_dir: Path, *, data: str, steps: int, seed: int, **settings) -> list:
    """The ``python -m tflite_isp.train`` arguments of one zoo model (``settings``: more train flags)."""
    settings = {**({"epochs": 1, "steps_per_epoch": steps} if steps else {}), **settings}
    args = ["--model", name, "--data", data, "--out", run_dir, "--seed", seed]
    args += [f"--{key}={value}" for key, value in settings.items()]
    if (run_dir / "checkpoints" / "checkpoint").is_file():  # an interrupted zoo run continues
        args.append("--resume")
    return args


def fraction_steps(name: str, fraction: float) -> int:
    """That fraction of a built-in recipe's schedule, in optimizer steps (at least one)."""
    if not 0 < fraction <= 1:
        raise UserError(f"--zoo_fraction must be in (0, 1], not {fraction}")
    train = recipes.load_recipe(name).train
    return max(1, round(train["epochs"] * train["steps_per_epoch"] * fraction))


def prepare(name: str, root: Path, *, data: str, steps: int, seed: int, log=print, fraction: float = 1.0,
            **train_settings) -> Path:
    """Train (unless done) and export (unless done) one built-in model; returns its export root.

    ``steps`` caps the schedule; ``fraction`` < 1 shortens it to that share of the recipe's (same lr schedule)."""
    run_dir = Path(root) / name
    if fraction < 1 and not steps:
        steps = fraction_steps(name, fraction)
    if not trained(run_dir):
        log(f"zoo: training {name} into {run_dir}")
        command("train", train_args(name, run_dir, data=data, steps=steps, seed=seed, **train_settings),
                 f"training {name}", log)
    if not exported(run_dir):
        log(f"zoo: exporting {name} ({', '.join(PRECISIONS)})")
        for precision in PRECISIONS:
            command("export", [run_dir, f"--{precision}", "--seed", seed], f"exporting {name} {precision}", log)
    return run_dir / "export"


def run(cfg, score, *, models=ZOO_MODELS, steps: int = 0, seed: int = 0, root: Path = ZOO_DIR, fraction: float = 1.0,
        **train_settings) -> dict:
    """Prepare every zoo model on ``cfg.data`` (default: the embedded ISP set), then ``score(cfg)`` all their
    exports together; a model that fails to train or export is a failed row, the rest are scored.

    ``score`` is passed in (the leaderboard's ``run``), so this module sits beside it without a circle.
    """

    def log(message):
        print(message, file=sys.stderr, flush=True)

    if not 0 < fraction <= 1:  # before any model trains, not as ten failed rows
        raise UserError(f"--zoo_fraction must be in (0, 1], not {fraction}")
    data, root = cfg.data or "embedded:isp", Path(root)
    roots = []
    for name in models:
        try:
            roots.append(str(prepare(name, root, data=data, steps=steps, seed=seed, log=log, fraction=fraction,
                                     **train_settings)))
        except UserError as err:
            log(f"zoo: {name}: FAILED: {err}")
            roots.append(str(root / name / "export"))  # scored as a failed row naming what is missing
    return score(replace(cfg, models=tuple(roots), data=data, out=cfg.out or str(root / "score")))


__all__ = ["run", "prepare", "command", "ZOO_DIR", "ZOO_MODELS"]
