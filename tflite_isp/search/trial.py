"""One trial, cheapest test first: (a) the target's delegate takes every op, (b) latency on the target (measured,
or predicted from its per-op table) within the budget, (c) a short proxy training whose validation curve is
checked against the finished trials (pruned once a faster one was clearly better at the same step), then the
INT8 export whose validation PSNR is the quality objective.

Training and export run as child processes (``python -m tflite_isp.train`` / ``.export``), so a trial can be
stopped mid-way and a crash in one never takes the worker down.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError
from tflite_isp.export import compat, convert
from tflite_isp.nets import architectures, recipes
from tflite_isp.nets.stats import count_macs, count_params
from tflite_isp.run import entries, flatbuffer
from tflite_isp.search import space
from tflite_isp.search.config import SearchConfig
from tflite_isp.search.probes import loadable
from tflite_isp.search.targets import Target

POLL_S = 1.0


class Trial:
    """The objective of one study: ``Trial(cfg, target, runtime, predictor)(optuna_trial) -> (psnr, ms)``."""

    def __init__(self, cfg: SearchConfig, target: Target, runtime, predictor=None, log=print):
        self.cfg, self.target, self.runtime, self.predictor, self.log = cfg, target, runtime, predictor, log
        self.space = space.load_space(cfg.space)

    def __call__(self, trial: optuna.Trial) -> tuple:
        section = space.suggest(trial, self.space)
        twin = _finished_twin(trial)
        if twin is not None:  # TPE may propose a finished point again: its figures stand, nothing is retrained
            for key, value in twin.user_attrs.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("same_as", twin.number)
            trial.set_constraint("requirements", 0.0)
            return tuple(twin.values)
        folder = self.cfg.folder / "trials" / f"{trial.number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        recipe_path = self._write_recipe(folder, section, trial.number)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("summary", space.describe(section))
        trial.set_user_attr("recipe", str(recipe_path))
        quick = self._quick_int8(folder, section, recipe_path, trial)  # (a) + (b)
        early_ms = self.latency(trial, quick, recipe_path)
        trial.set_user_attr("early_ms", round(early_ms, 3))
        if self.cfg.max_ms and early_ms > self.cfg.max_ms:
            _prune(trial, "latency", f"{early_ms:.1f} ms > --max_ms {self.cfg.max_ms:g} on {self.target.spec}",
                   violation=early_ms / self.cfg.max_ms - 1)
        run_dir = folder / "run"
        self._train(trial, recipe_path, run_dir, early_ms)  # (c)
        manifest = self._export(trial, run_dir)
        final = run_dir / "export" / "int8" / "model.tflite"
        ms = self.latency(trial, final, recipe_path)
        psnr = float(manifest["fidelity"]["psnr"])
        trial.set_user_attr("keras_psnr", manifest["fidelity"]["keras_fp32_psnr"])
        trial.set_user_attr("tflite", str(final))
        trial.set_user_attr("latency_source", self.latency_source)
        trial.set_constraint("requirements", 0.0)
        self.log(f"trial {trial.number}: {psnr:.2f} dB INT8, {ms:.1f} ms on {self.target.spec}  "
                 f"({trial.user_attrs['summary']})")
        return psnr, ms

    # --- (a) delegate, (b) latency ------------------------------------------------------------------------

    def _write_recipe(self, folder: Path, section: dict, number: int) -> Path:
        rec = space.recipe(section, self.cfg.base, name=f"{self.cfg.name}-trial{number}")
        steps = self.cfg.eval_steps
        rec["train"].update(epochs=self.cfg.trial_steps // steps, steps_per_epoch=steps, batch=self.cfg.batch,
                            checkpoint_every=steps, **({"patch": self.cfg.patch} if self.cfg.patch else {}))
        path = folder / "recipe.toml"
        atomic.write_text(path, space.to_toml(rec))
        return path

    def _quick_int8(self, folder: Path, section: dict, recipe_path: Path, trial) -> Path:
        """The candidate's shipped form, untrained, as a Full HD INT8 file: enough for its ops and its time."""
        recipe = recipes.load_recipe(recipe_path)
        h, w = recipe.input.full_hd
        try:
            model = shipped_form(section, recipe.input, h, w)
        except ValueError as err:
            _prune(trial, "invalid", str(err), violation=1.0)
        trial.set_user_attr("params", count_params(model))
        trial.set_user_attr("gmac", round(count_macs(model) / 1e9, 3))
        try:
            data = untrained_int8(lambda: shipped_form(section, recipe.input, h, w), recipe.input.channels)
        except UserError as err:
            _prune(trial, "convert", str(err), violation=1.0)
        report = compat.check(flatbuffer.parse(data), self.target.delegate)
        trial.set_user_attr("delegate", report.summary())
        if not report.fully_delegable:
            _prune(trial, "delegate", report.summary(), violation=len(report.cpu_fallback))
        path = folder / "untrained_int8.tflite"
        atomic.write_bytes(path, data)
        return path

    @property
    def latency_source(self) -> str:
        return self.predictor.label if self.predictor else self.runtime.label

    def latency(self, trial, path: Path, recipe_path: Path) -> float:
        """Full HD milliseconds of ``path`` on the target: predicted from its op table, or measured there."""
        if self.predictor:
            return float(self.predictor(path))
        entry = entries.make_entry(path, str(path), str(recipe_path))
        try:
            return float(self.runtime.measure(entry).ms)
        except UserError as err:  # the target's runtime refused the file (seen: XNNPACK failing to prepare a node)
            _prune(trial, "runtime", str(err), violation=1.0)

    # --- (c) proxy training and export -------------------------------------------------------------------

    def _train(self, trial, recipe_path: Path, run_dir: Path, early_ms: float) -> None:
        args = ["--model", str(recipe_path), "--data", self.cfg.data, "--out", str(run_dir),
                "--seed", str(self.cfg.seed)]
        if self.cfg.mixed_precision:
            args += ["--mixed_precision", self.cfg.mixed_precision]
        proc, logfile = _start("train", args, run_dir.parent / "train.log")
        seen = 0
        try:
            while proc.poll() is None:
                time.sleep(POLL_S)
                curve = _curve(run_dir)
                if len(curve) > seen:
                    seen = len(curve)
                    trial.set_user_attr("curve", curve)
                    self._check_dominated(trial, curve[-1], early_ms)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            logfile.close()
        trial.set_user_attr("curve", _curve(run_dir))
        if proc.returncode:
            _prune(trial, "train", _last_line(run_dir.parent / "train.log"))

    def _check_dominated(self, trial, point: list, early_ms: float) -> None:
        """Prune when a finished trial no slower than this one was ``prune_margin`` dB better at this step."""
        step, psnr = point
        for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            theirs = dict((s, p) for s, p in other.user_attrs.get("curve", []))
            if step in theirs and other.values[1] <= early_ms and theirs[step] >= psnr + self.cfg.prune_margin:
                _prune(trial, "dominated", f"at step {step}: {psnr:.2f} dB against trial {other.number}'s "
                                           f"{theirs[step]:.2f} dB at {other.values[1]:.1f} ms")

    def _export(self, trial, run_dir: Path) -> dict:
        args = [str(run_dir), "--int8", "--nomodel_none", "--calibration_images", str(self.cfg.calibration_images),
                "--fidelity_images", str(self.cfg.fidelity_images), "--target", self.target.delegate,
                "--seed", str(self.cfg.seed)]
        proc, logfile = _start("export", args, run_dir.parent / "export.log")
        proc.wait()
        logfile.close()
        manifest = run_dir / "export" / "int8" / "manifest.json"
        if proc.returncode or not manifest.is_file():
            _prune(trial, "export", _last_line(run_dir.parent / "export.log"))
        return json.loads(manifest.read_text())


def _finished_twin(trial):
    """A complete trial of the study with exactly these parameters, or None."""
    for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if other.params == trial.params:
            return other
    return None


def shipped_form(section: dict, spec, height: int, width: int):
    """The candidate as its file ships it (re-parameterised blocks fused), untrained, at a fixed size; a ValueError
    names a setting the network refuses."""
    return architectures.build(architectures.deploy_form(section), height=height, width=width, batch=1, cfa=spec.cfa)


def untrained_int8(build, channels: int) -> bytes:
    """An INT8 file of the network ``build()`` makes, untrained, calibrated on two random inputs: its ops and its
    speed, not its quality (weights drawn again where XNNPACK would refuse the file: ``probes.loadable``)."""
    def convert_seeded(seed):
        model = build()
        _, h, w, _ = model.input_shape
        rng = np.random.default_rng(seed)
        calib = [rng.uniform(0, 1, (1, h, w, channels)).astype(np.float32) for _ in range(2)]
        return convert.convert(model, (1, h, w, channels), convert.precisions()["int8"],
                               representative=convert.representative_from(calib))
    return loadable(convert_seeded)


def _prune(trial, stage: str, reason: str, violation: float = 0.0):
    """Stop the trial, recording which test it failed and why (``violation`` > 0: a hard requirement missed)."""
    if violation > 0:
        # a hard requirement missed: TPE models such candidates as infeasible; left as merely pruned they could
        # fill its "good" group while few trials are complete
        trial.set_constraint("requirements", round(violation, 4))
    trial.set_user_attr("pruned_at", stage)
    trial.set_user_attr("reason", reason)
    raise optuna.TrialPruned(f"{stage}: {reason}")


def _start(module: str, args: list, log_path: Path):
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logfile = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", f"tflite_isp.{module}", *args], stdout=logfile,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, logfile


def _curve(run_dir: Path) -> list:
    """[[step, validation PSNR], ...] from a run's metrics.json so far."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return []
    return [[e["step"], round(float(e["val_psnr"]), 4)] for e in metrics.get("epochs", [])]


def _last_line(path: Path) -> str:
    """The child's one-line error, or what it said just before it crashed (a native abort prints a traceback)."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error")]
    if errors:
        return errors[-1][:300]
    crash = next((i for i, ln in enumerate(lines) if ln.startswith("Fatal Python error")), None)
    if crash is not None:
        return f"{lines[crash]}" + (f" after {lines[crash - 1]!r}" if crash else "")
    return (lines or ["no output"])[-1][:300]
