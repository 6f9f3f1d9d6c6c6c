"""The zoo table: every built-in model trained on the embedded ISP set, exported FP16 + INT8 at Full HD and scored
(``score --zoo``), beside each export's INT8 fidelity drop, delegate verdicts and lint findings (its manifest).

    .venv/bin/python benchmarks/zoo.py                      # the recipes' schedules (about 20 min per model here)
    .venv/bin/python benchmarks/zoo.py --fraction 0.25      # a quarter of each schedule, same lr schedule
    .venv/bin/python benchmarks/zoo.py --models smallnet,syenet --runs 5

Training, export and scoring are the zoo's own (``tflite_isp.score.zoo``; runs in ``--zoo-dir``, reused when
finished). Quality is on the embedded ISP test split (whole images, the score command's protocol); the runtime is
each file at Full HD on this CPU (LiteRT XNNPACK, ``--threads``), so the MAI score is this machine's, not the
challenge phone's. Writes ``zoo.{md,json}`` to ``--out`` (default ``benchmarks/results``).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench_common import (
    REPO,
    add_common_args,
    comma_list,
    finish_report,
    header,
    log,
    md_table,
    nonnegative_int,
    parser,
    positive_float,
    positive_int,
    save_results,
    start_report,
)

from tflite_isp.core.errors import run_cli
from tflite_isp.score.zoo import ZOO_MODELS

NAME = "zoo"
TARGETS = ("xnnpack", "gpu", "nnapi:30", "hexagon", "mediatek")
#: lint targets: the export's own plus NNAPI on an older runtime (phones ship old ones)
LINT_TARGETS = (*TARGETS, "nnapi:30@2.4")


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--models", type=comma_list(ZOO_MODELS), default=",".join(ZOO_MODELS),
                   help=f"Comma-separated zoo models (default {','.join(ZOO_MODELS)}).")
    p.add_argument("--fraction", type=positive_float, default=1.0,
                   help="Share of each recipe's training schedule (default 1: the recipe's).")
    p.add_argument("--runs", type=positive_int, default=10, help="Timed runs per file (default 10).")
    p.add_argument("--warmup", type=nonnegative_int, default=2, help="Untimed runs per file (default 2).")
    p.add_argument("--zoo-dir", default=str(REPO / "runs" / "zoo"), help="Zoo runs (default runs/zoo).")
    add_common_args(p, threads=2, threads_help="LiteRT threads for scoring and timing (default 2).")
    return p.parse_args(argv)


def read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def lint_findings(path: Path) -> list:
    """The lint rules' findings on one file for LINT_TARGETS."""
    from tflite_isp.export import lint  # lazy: the project's modules load after the argument check
    from tflite_isp.run import flatbuffer

    return [f.to_dict() for f in lint.lint(flatbuffer.read(path), list(LINT_TARGETS))]


def shipped_parameters(name: str) -> int:
    """Parameters of the network export ships (a re-parameterised recipe's fused form)."""
    from tflite_isp.nets import architectures, recipes  # lazy: loads TensorFlow
    from tflite_isp.nets.stats import count_params

    return count_params(architectures.build(architectures.deploy_form(recipes.load_recipe(name).model)))


def model_record(name: str, run_dir: Path, rows: list) -> dict:
    """What the table shows of one model: its run, its two exports' manifests and its leaderboard rows."""
    metrics = read_json(run_dir / "metrics.json") or {}
    epochs = metrics.get("epochs") or [{}]
    record = {"model": name, "parameters": shipped_parameters(name), "train_parameters": metrics.get("parameters"),
              "steps": epochs[-1].get("step"),
              "train_s": sum(e.get("seconds", 0) for e in epochs), "val_psnr": (metrics.get("best") or {}).get(
                  "val_psnr"), "exports": {}}
    for precision in ("fp16", "int8"):
        manifest = read_json(run_dir / "export" / precision / "manifest.json")
        row = next((r for r in rows if r.get("model") == name and r.get("precision") == precision
                    and "dynamic" not in r["name"]), None)
        if manifest is None:
            record["exports"][precision] = {"error": (row or {}).get("error") or "not exported"}
            continue
        record["exports"][precision] = {
            "size_kb": manifest["file"]["size_bytes"] / 1024,
            "psnr_drop": (manifest.get("fidelity") or {}).get("psnr_drop"),
            "verdicts": {t: c["fully_delegable"] for t, c in manifest.get("compatibility", {}).items()},
            "cpu_fallback": {t: c["cpu_fallback"] for t, c in manifest.get("compatibility", {}).items()},
            "lint": lint_findings(run_dir / "export" / precision / "model.tflite"),
            "row": {k: (row or {}).get(k) for k in ("status", "error", "psnr", "ssim", "runtime_ms", "score",
                                                     "macs_g", "quality")}}
    return record


def _row(record: dict, precision: str) -> dict:
    return (record["exports"].get(precision) or {}).get("row") or {}


def _num(value, fmt):
    return "—" if value is None else fmt.format(value)


def _verdicts(export: dict) -> str:
    verdicts = export.get("verdicts") or {}
    return " ".join(f"{t.split(':')[0]} {'✓' if verdicts.get(t) else '✗'}" for t in TARGETS if t in verdicts) or "—"


def _lint(records: dict) -> str:
    """Findings grouped by precision, severity and rule, with the targets each applies to."""
    targets: dict = {}
    for precision, export in records.items():
        for f in export.get("lint") or []:
            targets.setdefault((precision, f["severity"], f["rule"]), set()).add(f["target"])
    return "; ".join(f"{p} {sev} `{rule}` ({', '.join(sorted(t))})"
                     for (p, sev, rule), t in sorted(targets.items())) or "none"


def zoo_page(report: dict) -> str:
    lines = ["# The zoo on the embedded ISP set", "", *header(report), ""]
    rows = []
    for r in sorted(report["models"], key=lambda r: -(_row(r, "int8").get("score") or -1e9)):
        i8 = r["exports"].get("int8", {})
        i8row, f16row = _row(r, "int8"), _row(r, "fp16")
        rows.append([r["model"], _num(r["parameters"], "{:,}"), _num(i8row.get("macs_g"), "{:.2f}"),
                     f"{_num(r['steps'], '{:,}')} / {r['train_s'] / 60:.1f}",
                     _num(i8.get("size_kb"), "{:,.1f}"), _num(i8row.get("runtime_ms"), "{:,.1f}"),
                     _num(f16row.get("runtime_ms"), "{:,.1f}"),
                     f"{_num(i8row.get('psnr'), '{:.2f}')} / {_num(i8row.get('ssim'), '{:.3f}')}",
                     f"{_num(f16row.get('psnr'), '{:.2f}')} / {_num(f16row.get('ssim'), '{:.3f}')}",
                     _num(i8.get("psnr_drop"), "{:+.2f}"), _num(i8row.get("score"), "{:.2f}"),
                     _verdicts(i8), _lint(r["exports"])])
    lines += md_table(["model", "params", "GMAC", "train steps / min", "INT8 KB", "INT8 ms", "FP16 ms",
                       "INT8 PSNR / SSIM", "FP16 PSNR / SSIM", "INT8 drop dB", "MAI score (INT8)",
                       "INT8 verdicts", "lint findings"], rows)
    baseline = report.get("baseline")
    if baseline:
        lines += ["", f"LibRaw baseline on the same split: PSNR {baseline['psnr']:.2f} dB, "
                      f"SSIM {baseline['ssim']:.3f}, {baseline['runtime_ms']:.0f} ms."]
    lines += ["", "GMAC per Full HD frame (packed 544×960×4). Runtimes: model.tflite at Full HD on this CPU "
                  f"(LiteRT XNNPACK, {report['litert_threads']} threads, median of {report['runs']} runs). MAI score = "
                  "PSNR + α·(0.2 − clip(t)) with this CPU's INT8 time: a local figure, not the challenge phone's. "
                  "INT8 drop: the FP32 Keras model's PSNR minus the INT8 file's on validation images (positive: INT8 "
                  "loses). Params: the shipped network (SYENet fused). Verdicts "
                  "(predicted from the op tables, not measured on devices): ✓ every op of the INT8 file delegates. "
                  f"Training: {report['fraction']:g} × each recipe's schedule."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from tflite_isp.score import scorer, zoo  # lazy: loads TensorFlow

    t0 = time.perf_counter()
    report = start_report(NAME, argv, threads=args.threads, litert_threads=args.threads, fraction=args.fraction,
                          runs=args.runs,
                          models=[], baseline=None)
    root = Path(args.zoo_dir)
    cfg = scorer.ScoreConfig(models=(), data="embedded:isp", threads=args.threads, runs=args.runs,
                             warmup=args.warmup, report_images=1)
    log(f"zoo: {len(args.models)} models, {args.fraction:g} of each schedule, runs in {root}")
    board = zoo.run(cfg, scorer.run, models=tuple(args.models), fraction=args.fraction, root=root)
    report["leaderboard"] = str(Path(board["out"]) / "leaderboard.json")
    report["models"] = [model_record(name, root / name, board["rows"]) for name in args.models]
    report["baseline"] = next(({k: r[k] for k in ("psnr", "ssim", "runtime_ms")} for r in board["rows"]
                               if r.get("baseline") and r["status"] == "ok"), None)
    finish_report(report, t0)
    for path in save_results(args.out, NAME, report, zoo_page):
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
