"""One command, one table: SID U-Net compression ablation on the embedded low-light data, short schedules.

    .venv/bin/python benchmarks/ablation.py                 # every row, 200-step schedules; 17 min on 2 cores
    .venv/bin/python benchmarks/ablation.py --quick         # smoke check: 4-step schedules, 2 test images (about 5 min)
    .venv/bin/python benchmarks/ablation.py --steps 400 --rows baseline,separable,qat

Rows (every one trained, compressed, exported to full-integer INT8 at Full HD and scored in this run):

- ``baseline``: SID U-Net (``train --model sid_unet``), ``--steps`` steps;
- ``separable``: the same with depthwise-separable convolutions (``--separable``);
- ``magnitude``: the baseline fine-tuned ``--steps`` steps under tfmot magnitude pruning to ``--sparsity``
  (``train --init_from BASE --prune_sparsity``); the .tflite stays dense (zeros are stored), so MACs and latency
  do not change;
- ``channel``: structured channel pruning of the baseline (``train --channel_prune BASE``): up to
  ``--prune-rounds`` rounds of ``--prune-step``, each fine-tuned ``--steps / --prune-rounds`` steps, stopping
  before validation PSNR falls ``--prune-psnr-drop`` dB below the baseline's;
- ``slim``: SID U-Net at width 0.25 trained alone (the control for the next two rows);
- ``distilled``: the same slim student distilled from the baseline (``--teacher BASE --distill_alpha 0.5
  --distill_features 0.1``);
- ``joint``: the slim student trained jointly with a 4x wider decoder head (ENERZAi; ``--joint_large_head 4``;
  only the small model is saved and exported);
- ``qat``: the baseline run exported with quantization-aware fine-tuning (``export --int8_qat --qat_steps``).

Every trained row gets the same step budget (``--steps`` optimizer steps of ``--batch`` x ``--patch``, the same
learning rate and schedule); the pruning rows and QAT spend it fine-tuning the baseline. Each row is exported with
``python -m tflite_isp.export RUN --int8`` (``--int8_qat`` for QAT) and scored with ``python -m tflite_isp.score``
(PSNR / SSIM on the whole test split, the runtime at Full HD: ``runtimes.full_hd_plan`` +
``timing.measure_subprocess``, LiteRT + XNNPACK, the same method as ``suite.py``; MAI 2021 score). Size, parameters
and MACs per Full HD frame (544x960 packed) are read from the ``.tflite`` (``suite.describe``:
``flatbuffer.count_macs``).

All work happens in subprocesses with the venv's Python, in ``--build-dir`` (default ``build/ablation``): runs
under ``runs/<row>``, exports under ``exports/<row>``, scores under ``scores/<row>``. A finished step is reused on
a rerun (a run whose metrics.json says finished, an export folder with model.tflite, a score folder with
leaderboard.json), so a rerun after a crash continues; an unfinished run folder is removed and redone. Writes
``ablation.json`` and ``ablation.md`` to ``--out`` (default ``benchmarks/results``) atomically after every row.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench_common import (
    REPO,
    RESULTS,
    add_common_args,
    add_quiet_args,
    comma_list,
    finish_report,
    fmt,
    fmt_bytes,
    fmt_params,
    header,
    load_average,
    log,
    log_step,
    md_table,
    nonnegative_int,
    parser,
    positive_float,
    positive_int,
    provenance_line,
    save_results,
    start_report,
    wait_for_quiet,
)

from tflite_isp.core.errors import run_cli

ROWS = {
    "baseline": "SID U-Net (baseline)",
    "separable": "SID U-Net, depthwise-separable",
    "magnitude": "magnitude-pruned (tfmot, from baseline)",
    "channel": "channel-pruned, structured (from baseline)",
    "slim": "slim student ×0.25, no teacher (control)",
    "distilled": "slim student ×0.25, distilled from baseline",
    "joint": "slim student ×0.25, joint heads (ENERZAi)",
    "qat": "baseline, INT8 QAT export",
}
NEEDS_BASE = ("magnitude", "channel", "distilled", "qat")
STUDENT_WIDTH = 0.25


def parse_args(argv):
    p = parser("ablation", __doc__.splitlines()[0])
    p.add_argument("--rows", type=comma_list(ROWS), default=",".join(ROWS),
                   help=f"Comma-separated rows (default {','.join(ROWS)}).")
    p.add_argument("--steps", type=positive_int, default=200,
                   help="Optimizer steps of every trained row, pruning fine-tunes and QAT (default 200).")
    p.add_argument("--batch", type=positive_int, default=4, help="Training batch (default 4, the recipe's).")
    p.add_argument("--patch", type=positive_int, default=256,
                   help="Training crop in RAW pixels, a multiple of 32 (default 256, the recipe's).")
    p.add_argument("--lr", type=positive_float, default=1e-3,
                   help="Peak learning rate of every trained row (default 1e-3, cosine to --lr-min).")
    p.add_argument("--lr-min", type=float, default=1e-5, help="Final rate of the cosine schedule (default 1e-5).")
    p.add_argument("--sparsity", type=float, default=0.5, help="Magnitude-pruning target sparsity (default 0.5).")
    p.add_argument("--prune-rounds", type=positive_int, default=4, help="Most channel-pruning rounds (default 4).")
    p.add_argument("--prune-step", type=float, default=0.15,
                   help="Fraction of remaining channels removed per round (default 0.15).")
    p.add_argument("--prune-psnr-drop", type=float, default=0.3,
                   help="Stop channel pruning before val PSNR falls this many dB (default 0.3).")
    p.add_argument("--qat-steps", type=nonnegative_int, default=0, help="QAT fine-tune steps (default 0: --steps).")
    p.add_argument("--calibration-images", type=positive_int, default=32,
                   help="INT8 calibration images (default 32).")
    p.add_argument("--fidelity-images", type=nonnegative_int, default=4,
                   help="Validation images of the export's fidelity check (default 4; 0 skips it).")
    p.add_argument("--max-images", type=nonnegative_int, default=0,
                   help="Score only the first N test images (default 0: all).")
    p.add_argument("--runs", type=positive_int, default=20, help="Timed Full HD invokes per model (default 20).")
    p.add_argument("--warmup", type=nonnegative_int, default=3, help="Untimed invokes before timing (default 3).")
    p.add_argument("--latency-rounds", type=nonnegative_int, default=2,
                   help="Rounds of the final Full HD latency pass over every row's file, order rotated each round "
                        "(default 2; 0: use score's single measurement).")
    add_quiet_args(p, quiet_cores=0.3, max_wait=10.0, what="Latency pass: ")
    p.add_argument("--build-dir", default=str(REPO / "build" / "ablation"),
                   help="Runs, exports, scores and logs (default build/ablation).")
    p.add_argument("--fresh", action="store_true", help="Remove --build-dir's results for these settings first.")
    add_common_args(p, out=None, out_help="Results folder (default benchmarks/results; --quick: --build-dir/quick).",
                    threads=2, threads_help="LiteRT threads for scoring and timing", seed=0,
                    quick_help="Smoke check: 4 steps of 2 x 128 px, 2 pruning rounds, 2 QAT steps, 4 calibration "
                               "and 0 fidelity images, 2 test images, 3 timed runs; everything, results included, "
                               "goes to --build-dir/quick unless --out is given (overrides those flags).")
    args = p.parse_args(argv)
    args.name = "ablation"
    if args.quick:
        args.steps, args.batch, args.patch, args.prune_rounds, args.qat_steps = 4, 2, 128, 2, 2
        args.calibration_images, args.fidelity_images, args.max_images, args.runs, args.warmup = 4, 0, 2, 3, 1
        args.latency_rounds = 1
        args.build_dir = str(Path(args.build_dir) / "quick")
    args.out = args.out or (args.build_dir if args.quick else str(RESULTS))
    args.qat_steps = args.qat_steps or args.steps
    if args.patch % 32:
        p.error(f"--patch must be a multiple of 32, not {args.patch}")
    args.ft_steps = max(1, args.steps // args.prune_rounds)
    return args


# --- Steps: subprocesses with the venv's Python ---------------------------------------------------------------------

def python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


def run_step(label: str, cmd: list, cwd: Path, logs: Path) -> float:
    """Run ``python -m ...`` in ``cwd``; stdout/stderr to logs/<label>.log; returns seconds; raises on failure."""
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{label}.log"
    full = [python(), "-m", *cmd]
    log(f"  $ {' '.join(full[1:])}  (log {path})")
    t0 = time.perf_counter()
    with open(path, "w") as fh:
        fh.write(" ".join(full) + "\n\n")
        fh.flush()
        proc = subprocess.run(full, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=None)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()][-6:]
        raise RuntimeError(f"{label}: exit {proc.returncode} after {seconds:.0f} s: `{' '.join(full[1:])}`\n    "
                           + "\n    ".join(tail))
    log(f"  {label}: {seconds:.0f} s")
    return seconds


def finished_run(run_dir: Path) -> dict | None:
    """metrics.json of a finished run (train or channel pruning), else None."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return metrics if metrics.get("finished") and (run_dir / "model.keras").is_file() else None


def schedule(args) -> list:
    return ["--epochs", "1", "--steps_per_epoch", str(args.steps), "--batch", str(args.batch),
            "--patch", str(args.patch), "--lr", str(args.lr), "--lr_schedule", "cosine", "--lr_min", str(args.lr_min),
            "--seed", str(args.seed), "--checkpoint_every", str(max(args.steps, 1))]


def train_command(row: str, run_dir: Path, base: Path, args) -> list:
    out = ["--out", str(run_dir)]
    slim = ["--model", "sid_unet", "--width_multiplier", str(STUDENT_WIDTH)]
    if row == "baseline":
        return ["tflite_isp.train", "--model", "sid_unet", *schedule(args), *out]
    if row == "separable":
        return ["tflite_isp.train", "--model", "sid_unet", "--separable", *schedule(args), *out]
    if row == "magnitude":
        return ["tflite_isp.train", "--init_from", str(base), "--prune_sparsity", str(args.sparsity),
                *schedule(args), *out]
    if row == "channel":
        return ["tflite_isp.train", "--channel_prune", str(base), "--prune_step", str(args.prune_step),
                "--prune_rounds", str(args.prune_rounds), "--prune_psnr_drop", str(args.prune_psnr_drop),
                "--steps_per_epoch", str(args.ft_steps), "--batch", str(args.batch), "--patch", str(args.patch),
                "--lr", str(args.lr), "--seed", str(args.seed), *out]
    if row == "slim":
        return ["tflite_isp.train", *slim, *schedule(args), *out]
    if row == "distilled":
        return ["tflite_isp.train", *slim, "--teacher", str(base), "--distill_alpha", "0.5",
                "--distill_features", "0.1", *schedule(args), *out]
    if row == "joint":
        return ["tflite_isp.train", *slim, "--joint_large_head", "4", *schedule(args), *out]
    raise AssertionError(row)


def export_command(run_dir: Path, export_root: Path, qat: bool, args) -> list:
    cmd = ["tflite_isp.export", str(run_dir), "--int8_qat" if qat else "--int8", "--out", str(export_root),
           "--nomodel_none", "--calibration_images", str(args.calibration_images),
           "--fidelity_images", str(args.fidelity_images), "--threads", str(args.threads), "--seed", str(args.seed)]
    if qat:
        cmd += ["--qat_steps", str(args.qat_steps)]
    return cmd


def score_command(export_dir: Path, score_dir: Path, args) -> list:
    cmd = ["tflite_isp.score", str(export_dir), "--out", str(score_dir), "--nobaseline", "--report_images", "0",
           "--threads", str(args.threads), "--runs", str(args.runs), "--warmup", str(args.warmup)]
    if args.max_images:
        cmd += ["--max_images", str(args.max_images)]
    return cmd


# --- One row ---------------------------------------------------------------------------------------------------------

def do_row(row: str, args, build: Path, report: dict) -> dict:
    from suite import describe

    runs, exports, scores, logs = (build / d for d in ("runs", "exports", "scores", "logs"))
    base = runs / "baseline"
    entry = report["rows"].setdefault(row, {"row": row, "label": ROWS[row]})
    entry.pop("error", None)
    timings = entry.setdefault("seconds", {})

    # Train (the QAT row reuses the baseline run).
    run_dir = base if row == "qat" else runs / row
    if row in NEEDS_BASE and not finished_run(base):
        raise RuntimeError(f"{row} needs the baseline run ({base}), which is not finished")
    metrics = finished_run(run_dir)
    if row != "qat" and metrics is None:
        if run_dir.exists():
            log(f"  {run_dir}: unfinished, removing and training again")
            shutil.rmtree(run_dir)
        timings["train"] = round(run_step(f"{row}-train", train_command(row, run_dir, base, args), build, logs), 1)
        metrics = finished_run(run_dir)
        if metrics is None:
            raise RuntimeError(f"{row}: training exited 0 but {run_dir} holds no finished run")
    elif row != "qat":
        log(f"  reusing {run_dir}")
    entry["run_dir"] = str(run_dir)
    entry["keras_parameters"] = metrics.get("parameters")
    entry["keras_macs_full_hd"] = metrics.get("macs_full_hd")
    entry["val_psnr"] = (metrics.get("best") or {}).get("val_psnr")
    entry["train_steps"] = metrics.get("total_steps")
    for key in ("prune_sparsity_achieved", "compression", "joint", "pruning", "summary"):
        if key in metrics:
            entry[key] = metrics[key]

    # Export.
    precision = "int8_qat" if row == "qat" else "int8"
    export_root = exports / row
    export_dir = export_root / precision
    if not ((export_dir / "model.tflite").is_file() and (export_dir / "manifest.json").is_file()):
        if export_dir.exists():
            shutil.rmtree(export_dir)
        timings["export"] = round(run_step(f"{row}-export", export_command(run_dir, export_root, row == "qat", args),
                                           build, logs), 1)
    else:
        log(f"  reusing {export_dir}")
    manifest = json.loads((export_dir / "manifest.json").read_text())
    entry["export_dir"] = str(export_dir)
    entry["precision"] = precision
    entry["fidelity"] = manifest.get("fidelity")
    if manifest.get("qat"):
        entry["qat"] = manifest["qat"]
    entry["file"] = describe(export_dir / "model.tflite")

    # Score.
    score_dir = scores / row
    board_path = score_dir / "leaderboard.json"
    if not board_path.is_file():
        if score_dir.exists():
            shutil.rmtree(score_dir)
        timings["score"] = round(run_step(f"{row}-score", score_command(export_dir, score_dir, args), build, logs), 1)
    else:
        log(f"  reusing {board_path}")
    board = json.loads(board_path.read_text())
    rows = [r for r in board["rows"] if r.get("status") == "ok"]
    if not rows:
        raise RuntimeError(f"{row}: score wrote no ok row ({board_path}): "
                           + "; ".join(str(r.get("error")) for r in board["rows"]))
    r = rows[0]
    runtime = r.get("runtime") or {}
    entry["score"] = {"psnr": r["psnr"], "psnr_pooled": r.get("psnr_pooled"), "ssim": r["ssim"],
                      "runtime_ms": r["runtime_ms"], "runtime_source": r.get("runtime_source"),
                      "p95_ms": runtime.get("p95_ms"), "mai_score": r["score"], "images": board["data"]["images"],
                      "split": board["data"]["split"], "macs_g_score": r.get("macs_g"),
                      "runtime": runtime, "leaderboard": str(board_path)}
    entry["complete"] = True
    return entry


# --- Latency pass: every finished row's file, interleaved, as suite.py measures -------------------------------------

def latency_pass(report: dict, args, save) -> None:
    """``--latency-rounds`` rounds over the rows' files (order rotated), each a fresh process
    (``suite.litert``: ``timing.measure_subprocess`` at ``full_hd_plan``'s shape), after waiting for a quieter
    machine (``bench_common.wait_for_quiet``); per row the median over rounds, and the MAI score from score's
    PSNR."""
    import statistics

    from suite import litert

    from tflite_isp.score import leaderboard

    keys = [k for k, e in report["rows"].items() if e.get("complete")]
    for e in report["rows"].values():
        e.pop("latency", None)
    for r in range(args.latency_rounds):
        shift = (r * len(keys)) // max(args.latency_rounds, 1)
        for i, key in enumerate(keys[shift:] + keys[:shift], start=1):
            e = report["rows"][key]
            quiet = wait_for_quiet(args.quiet_cores, args.max_wait)
            try:
                res = {**litert(e["file"], args.threads, args.runs, args.warmup), **quiet}
            except RuntimeError as err:
                log(f"latency round {r + 1} [{i}/{len(keys)}] {key}: FAILED: {err}")
                continue
            e.setdefault("latency", {"rounds": []})["rounds"].append(res)
            log(f"latency round {r + 1}/{args.latency_rounds} [{i}/{len(keys)}] {key}: median {res['median_ms']:.1f} "
                f"ms, p95 {res['p95_ms']:.1f} ms, {res['invoke_cores']:.2f} cores invoking (others "
                f"{quiet['others_busy_cores']} before, waited {quiet['waited_s']:.0f} s)")
        for key in keys:
            e = report["rows"][key]
            rounds = (e.get("latency") or {}).get("rounds") or []
            if rounds:
                calls = e["file"].get("calls_per_frame", 1)
                med = statistics.median(x["median_ms"] for x in rounds) * calls
                e["latency"].update({"median_ms": round(med, 3),
                                     "p95_ms": round(statistics.median(x["p95_ms"] for x in rounds) * calls, 3),
                                     "invoke_cores_min": min(x["invoke_cores"] for x in rounds),
                                     "mai_score": round(leaderboard.mai_score(e["score"]["psnr"], med / 1e3), 4)})
        report["latency_rounds_done"] = r + 1
        save()


# --- Markdown ----------------------------------------------------------------------------------------------------------

def note(e: dict) -> str:
    parts = []
    if e.get("prune_sparsity_achieved") is not None:
        parts.append(f"{e['prune_sparsity_achieved']:.0%} of conv weights zero (stored dense)")
    if e.get("summary") and "macs_removed" in e["summary"]:
        s = e["summary"]
        parts.append(f"kept round {s.get('rounds_kept')}: {s['macs_removed']:.0%} MACs removed, val "
                     f"{s['psnr_change_db']:+.2f} dB")
    if e.get("joint", {}).get("large_head_val_psnr") is not None:
        parts.append(f"large head val {e['joint']['large_head_val_psnr']:.2f} dB")
    fid = e.get("fidelity") or {}
    drop = fid.get("psnr_drop") if isinstance(fid, dict) else None
    if drop is not None:
        parts.append(f"INT8 vs FP32 {-drop:+.2f} dB")
    return "; ".join(parts)


def markdown(report: dict) -> str:
    s, m = report["settings"], report["machine"]

    def timing(e):  # (median, p95, MAI score): the latency pass's when done, else score's own measurement
        lat, sc = e.get("latency") or {}, e.get("score") or {}
        if "median_ms" in lat:
            return lat["median_ms"], lat["p95_ms"], lat["mai_score"]
        return sc.get("runtime_ms"), sc.get("p95_ms"), sc.get("mai_score")

    base_ms = timing(report["rows"].get("baseline", {}))[0]
    rows = []
    for row in s["rows"]:
        e = report["rows"].get(row)
        if not e:
            rows.append([ROWS[row], "not run yet"])
            continue
        if e.get("error") and not e.get("complete"):
            rows.append([ROWS[row], f"**failed**: {e['error'].splitlines()[0][:160]}"])
            continue
        f, sc = e.get("file") or {}, e.get("score") or {}
        ms, p95, mai = timing(e)
        lat = "–" if ms is None else f"{ms:,.0f} ({fmt(p95, ',.0f')})" + (
            f", ×{base_ms / ms:.1f}" if base_ms and row != "baseline" else "")
        rows.append([ROWS[row], fmt_params(f.get("parameters")), fmt(f.get("macs") and f["macs"] / 1e9, ".2f"),
                     fmt_bytes(f.get("size_bytes")), lat, fmt(sc.get("psnr"), ".2f"), fmt(sc.get("ssim"), ".4f"),
                     fmt(mai, ".2f"), fmt(e.get("val_psnr"), ".2f"), note(e)])
    lines = [*header(report), "",
             "# Ablation: SID U-Net compression on the embedded low-light set (short schedules, INT8, Full HD)", "",
             *md_table(["row", "params", "GMAC / Full HD", ".tflite", "latency ms (median, p95)", "PSNR dB", "SSIM",
                        "MAI score", "val PSNR dB (Keras)", "notes"], rows, "lrrrrrrrrl")]
    ch = report["rows"].get("channel") or {}
    if ch.get("pruning"):
        base = ch["pruning"][0]
        lines += ["", "## Channel pruning, round by round (Keras model, validation split)", ""]
        lines += md_table(
            ["round", "GMAC / Full HD", "MACs removed", "params", "val PSNR dB", "PSNR change dB", "kept"],
            [[r["round"], f"{r['macs_full_hd'] / 1e9:.2f}", f"{1 - r['macs_full_hd'] / base['macs_full_hd']:.0%}",
              fmt_params(r["parameters"]), f"{r['val_psnr']:.2f}", f"{r['val_psnr'] - base['val_psnr']:+.2f}",
              "yes" if r.get("accepted") else "no (below the floor)"] for r in ch["pruning"]],
            "rrrrrrl")
    test = next((e["score"] for e in report["rows"].values() if e.get("score")), {})
    lines += ["", "## How to read it", "",
              f"- **Short-schedule numbers on synthetic data, not published results.** Every trained row ran "
              f"{s['steps']} optimizer steps of {s['batch']} × {s['patch']}² RAW crops (L1, Adam, lr "
              f"{s['lr']:g} cosine to {s['lr_min']:g}, seed {s['seed']}) on the embedded low-light set (SID layout, "
              "synthetic noisy shorts of the scikit-image photos). The magnitude-pruned row fine-tunes the "
              f"baseline for the same {s['steps']} steps (sparsity {s['sparsity']:g}, ramped over 10–80 % of the "
              f"steps); channel pruning spends them as up to {s['prune_rounds']} rounds × {s['ft_steps']} steps "
              f"(step {s['prune_step']:g}, floor {s['prune_psnr_drop']:g} dB below the baseline); QAT fine-tunes "
              f"the baseline {s['qat_steps']} steps toward the FP32 model's outputs. So the pruned and QAT rows have seen "
              "the baseline's steps plus their own: a PSNR above the baseline's there is the extra training, not the "
              "compression; what they show is how much of it survives the removed weights or channels. The slim rows are width "
              f"×{STUDENT_WIDTH:g}; *distilled* adds the baseline as teacher (alpha 0.5, feature term 0.1), "
              "*joint* trains a 4× wider second decoder beside it and keeps only the small model. Compare each "
              "with the *slim, no teacher* control, not with the baseline. A real SID schedule is thousands of "
              "steps; ranks between close rows here can change with a longer one.",
              f"- Every row is a full-integer INT8 `.tflite` (int8 IO, per-channel weights, "
              f"{s['calibration_images']} calibration images) with a fixed 1×544×960×4 input (Full HD). *params* "
              "and *GMAC / Full HD* are read from the file (`flatbuffer.count_macs`; elements of the constant "
              "weight and bias tensors). Magnitude pruning stores zeros, so its size, MACs and latency equal the "
              "baseline's; only the structured (channel) and the architectural rows remove work.",
              f"- *PSNR*, *SSIM*: `python -m tflite_isp.score` on the {test.get('split', 'test')} split "
              f"({test.get('images', '?')} images, whole images tiled through the Full HD file); PSNR is the mean "
              "of per-image PSNRs, SSIM as `tf.image.ssim`. *val PSNR* is the Keras model's best validation PSNR "
              "during training (a different split and the float model). *notes*: INT8 vs FP32 is the export's "
              "fidelity figure on validation images.",
              f"- *latency*: one Full HD frame, LiteRT + XNNPACK, {s['threads']} threads, each measurement a fresh "
              f"process (`runtimes.full_hd_plan` + `timing.measure_subprocess`, as `suite.py`) of {s['runs']} timed "
              f"invokes after {s['warmup']} warm-up; "
              + (f"measured after all rows in {report.get('latency_rounds_done')} round(s) over every file with the "
                 f"order rotated, each after waiting (at most {s['max_wait']:g} s) for other jobs to use under "
                 f"{s['quiet_cores']:g} cores; median over rounds of each process's median (and p95). score's own "
                 "single measurement is in the JSON (`score.runtime_ms`)."
                 if report.get("latency_rounds_done") else
                 "score's own measurement (the interleaved latency pass has not run yet).")
              + " ×N = baseline latency / this row's. *MAI score* = PSNR + 20 · (0.2 − clip(t)) with t that "
              "Full HD runtime in seconds (`leaderboard.mai_score`, MAI 2021).",
              "- The machine may be shared with other jobs (see the load averages below: they include this run's "
              "own training); latency differences under ~10 % are within noise."]
    contended = [f"{k} ({e['latency']['invoke_cores_min']:.2f} cores)" for k, e in report["rows"].items()
                 if (e.get("latency") or {}).get("invoke_cores_min") is not None
                 and e["latency"]["invoke_cores_min"] < 0.8 * s["threads"]]
    measured = [e for e in report["rows"].values() if (e.get("latency") or {}).get("invoke_cores_min") is not None]
    if measured and not contended:
        lines.append(f"- Every latency measurement got at least 80 % of its {s['threads']} threads' cores while "
                     "invoking (least: " + f"{min(e['latency']['invoke_cores_min'] for e in measured):.2f} cores).")
    if contended:
        lines.append(f"- **Contended latency** (a process got under 80 % of its {s['threads']} threads' cores while "
                     "invoking, in at least one round): " + ", ".join(contended)
                     + ". Treat those rows' times as upper bounds.")
    lines += ["", "## Machine and settings", "",
              f"- {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores"
              + (f", {m['memory_gib']} GiB" if m.get("memory_gib") else "")
              + f"; TensorFlow {m['tensorflow']}, ai-edge-litert {m['ai_edge_litert']}, Python {m['python']}.",
              f"- Load average (1, 5, 15 min): {report['load_average_start']} at start"
              + "".join(f", {v} after {k}" for k, v in report["load_average_rows"].items())
              + ".",
              "- Time per row (train / export / score, s): "
              + "; ".join(f"{k} " + " / ".join(str(e.get('seconds', {}).get(x, "baseline's run" if k == "qat" and
                                                                     x == "train" else "reused"))
                                               for x in ('train', 'export', 'score'))
                          for k, e in report["rows"].items()) + ".",
              f"- Runs, exports, scores and logs: `{s['build_dir']}`." + (" --quick." if s["quick"] else "")]
    return "\n".join(lines) + "\n"


# --- Main ------------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    out, build = Path(args.out), Path(args.build_dir).resolve()
    if args.fresh and build.exists():
        for d in ("runs", "exports", "scores", "logs"):
            shutil.rmtree(build / d, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    rows = list(args.rows)
    if any(r in NEEDS_BASE for r in rows) and "baseline" not in rows:
        rows.insert(0, "baseline")  # needed as teacher / source; trained first (or reused)
    report = start_report(
        "ablation", argv, threads=args.threads,
        settings={"rows": rows, "steps": args.steps, "batch": args.batch, "patch": args.patch, "lr": args.lr,
                  "lr_min": args.lr_min, "sparsity": args.sparsity, "prune_rounds": args.prune_rounds,
                  "prune_step": args.prune_step, "prune_psnr_drop": args.prune_psnr_drop,
                  "ft_steps": args.ft_steps, "qat_steps": args.qat_steps,
                  "calibration_images": args.calibration_images, "fidelity_images": args.fidelity_images,
                  "max_images": args.max_images, "threads": args.threads, "runs": args.runs,
                  "warmup": args.warmup, "seed": args.seed, "quick": args.quick, "build_dir": str(build),
                  "student_width": STUDENT_WIDTH, "latency_rounds": args.latency_rounds,
                  "quiet_cores": args.quiet_cores, "max_wait": args.max_wait, "full_hd_packed": [544, 960]},
        load_average_rows={}, rows={})
    try:  # a rerun that reuses steps keeps the times the earlier run measured for them
        earlier = json.loads((out / f"{args.name}.json").read_text())
        if earlier.get("settings", {}).get("build_dir") == str(build):
            for row, e in earlier.get("rows", {}).items():
                if e.get("seconds"):
                    report["rows"][row] = {"row": row, "label": ROWS.get(row, row), "seconds": dict(e["seconds"])}
    except (OSError, ValueError):
        pass
    log(provenance_line(report))
    log(f"ablation: rows {', '.join(rows)}; {args.steps} steps of {args.batch} x {args.patch}; build dir {build}")

    def save():
        return save_results(out, args.name, report, markdown)

    save()
    failed = []
    for i, row in enumerate(rows, start=1):
        log_step(i, len(rows), f"{row}: {ROWS[row]}", t_start)
        try:
            e = do_row(row, args, build, report)
            sc = e["score"]
            log(f"  {row}: PSNR {sc['psnr']:.2f} dB, SSIM {sc['ssim']:.4f}, {sc['runtime_ms']:.0f} ms, "
                f"MAI {sc['mai_score']:.2f}, {e['file']['macs'] / 1e9:.2f} GMAC, {e['file']['parameters']:,} params")
        except (RuntimeError, OSError, ValueError, KeyError) as err:
            log(f"  {row}: FAILED: {err}")
            report["rows"].setdefault(row, {"row": row, "label": ROWS[row]})["error"] = str(err)
            report["rows"][row]["complete"] = False
            failed.append(row)
        report["load_average_rows"][row] = load_average()
        save()

    if args.latency_rounds > 0:
        log(f"latency pass: {args.latency_rounds} round(s) over the finished rows ({time.perf_counter() - t_start:.0f} s)")
        latency_pass(report, args, save)
        report["load_average_rows"]["latency pass"] = load_average()

    finish_report(report, t_start, complete=not failed)
    paths = save()
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, paths))}"
        + (f"; FAILED rows: {', '.join(failed)}" if failed else ""))
    print(markdown(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
