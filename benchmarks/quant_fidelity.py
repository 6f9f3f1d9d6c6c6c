"""INT8 fidelity of the zoo: post-training vs quantization-aware, against the FP32 Keras model.

    python benchmarks/quant_fidelity.py --run smallnet=runs/smallnet --run sid_unet=runs/sid_unet \
        --run punet=runs/punet [--qat-steps 200] [--out benchmarks/results]

Exports each run at Full HD (packed 544 x 960) as INT8 post-training and INT8 QAT through the
export command's own code, with the per-layer quantisation table for the post-training file,
and writes the PSNR drops (targets: PTQ <= 0.5 dB, QAT <= 0.1 dB) to quant_fidelity.{json,md}, atomically,
after every model.
"""
from __future__ import annotations

import sys
import tempfile
import time

from bench_common import (
    add_common_args,
    finish_report,
    header,
    log,
    log_step,
    md_table,
    nonnegative_int,
    parser,
    provenance_line,
    save_results,
    start_report,
)

from tflite_isp.core.errors import run_cli
from tflite_isp.export import exporter as export

NAME = "quant_fidelity"

TARGETS = {"int8": 0.5, "int8_qat": 0.1}


def measure(name: str, run_dir: str, qat_steps: int, qat_target: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cfg = export.ExportConfig(source=run_dir, out=out, precisions=("int8", "int8_qat"), model_none=False,
                                  debug_quant=True, qat_steps=qat_steps, qat_target=qat_target, seed=seed)
        start = time.perf_counter()
        results = export.run(cfg)
    row = {"model": name, "run_dir": run_dir, "seconds": round(time.perf_counter() - start, 1)}
    for precision, manifest in results.items():
        fid = manifest["fidelity"]
        row[precision] = {k: fid[k] for k in ("keras_fp32_psnr", "psnr", "psnr_drop", "max_abs_error", "images",
                                              "canvases")}
        row[precision]["size_bytes"] = manifest["file"]["size_bytes"]
        if "qat" in manifest:
            row[precision]["qat"] = manifest["qat"]
        if "debug_quant" in manifest:
            row[precision]["worst_layers"] = manifest["debug_quant"]["layers"][:5]
            row[precision]["flagged_layers"] = manifest["debug_quant"]["flagged"]
    return row


def table(rows) -> list:
    cells = []
    for r in rows:
        p, q = r["int8"], r["int8_qat"]
        cells.append([r["model"], f"{p['keras_fp32_psnr']:.2f}", f"{p['psnr']:.2f}",
                      f"{p['psnr_drop']:+.3f} {'✓' if p['psnr_drop'] <= TARGETS['int8'] else '✗'}",
                      f"{q['psnr']:.2f}",
                      f"{q['psnr_drop']:+.3f} {'✓' if q['psnr_drop'] <= TARGETS['int8_qat'] else '✗'}",
                      f"{p['max_abs_error']:.3f}", f"{q['max_abs_error']:.3f}"])
    return md_table(["model", "FP32 Keras PSNR", "INT8 PTQ PSNR", "PTQ drop (target ≤ 0.5)", "INT8 QAT PSNR",
                     "QAT drop (target ≤ 0.1)", "PTQ max abs err", "QAT max abs err"], cells, "lrrrrrrr")


def markdown(report: dict) -> str:
    rows, s = report["rows"], report["settings"]
    lines = ["# INT8 fidelity: post-training vs quantization-aware", "", *header(report), "", *table(rows)]
    lines += ["", "PSNR is the mean over validation images of per-image PSNR (dB) against the target; the drop is "
              "FP32 Keras minus the .tflite file, both run on the same Full HD canvases tiled from the validation "
              "split. A negative drop means the quantised file scored higher.", "",
              "## Worst layers of the post-training files (rmse/scale; 0.29 is pure rounding noise)", ""]
    for r in rows:
        lines.append(f"- **{r['model']}** ({r['int8']['flagged_layers']} tensors flagged > 0.7): " + "; ".join(
            f"{w['op']} `{w['tensor'][:48]}` {w['rmse_over_scale']:.2f}" for w in r["int8"]["worst_layers"][:3]))
    lines += ["", f"- QAT: {s['qat_steps']} fine-tuning steps at the recipe's "
              f"final learning rate toward the {s['qat_target']} outputs (`--qat_target`), activation and weight "
              "ranges initialised from the float model.",
              "- Models: " + ", ".join(f"{r['model']} `{r['run_dir']}`" for r in rows)]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, metavar="MODEL=RUN_DIR", help="A trained run; repeatable.")
    p.add_argument("--qat-steps", type=nonnegative_int, default=200, help="QAT fine-tuning steps (default 200).")
    p.add_argument("--qat-target", choices=("teacher", "data"), default="teacher",
                   help="What QAT fine-tunes toward (default teacher: the FP32 model's outputs).")
    add_common_args(p, seed=0)
    args = p.parse_args(argv)
    args.runs = []
    for item in args.run:
        name, sep, run_dir = item.partition("=")
        if not sep or not name or not run_dir:
            p.error(f"--run must be MODEL=RUN_DIR, not {item!r}")
        args.runs.append((name, run_dir))
    return args


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    report = start_report(NAME, argv, settings={"runs": dict(args.runs), "qat_steps": args.qat_steps,
                                                "qat_target": args.qat_target, "seed": args.seed}, rows=[])
    log(provenance_line(report))
    for i, (name, run_dir) in enumerate(args.runs, start=1):
        log_step(i, len(args.runs), f"{name}: {run_dir}", t_start)
        report["rows"].append(measure(name, run_dir, args.qat_steps, args.qat_target, args.seed))
        save_results(args.out, NAME, report, markdown)
    finish_report(report, t_start)
    save_results(args.out, NAME, report, markdown)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
