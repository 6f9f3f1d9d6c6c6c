"""Quad Bayer: 16-channel packing at quarter resolution vs the pixel-swap remosaic to Bayer, measured.

    .venv/bin/python benchmarks/quad.py                       # 0.5 x smallnet's schedule, synth's default set size
    .venv/bin/python benchmarks/quad.py --fraction 0.05 --crops 8   # a short run

A Quad Bayer set is synthesised (tflite_isp.data.synth.make_isp) for the quad version of the built-in
``example-12bit`` profile and copied remosaiced to its base Bayer pattern (tflite_isp.data.remosaic). smallnet
trains (``python -m tflite_isp.train --levels file``, the same steps) on (a) the quad data: 16 planes at quarter
resolution and the quad head, and (b) the remosaiced copy: the ordinary 4-plane Bayer smallnet. Both export INT8 and
are scored (``tflite_isp.score``) against the same test targets: (a) on the quad test RAWs, (b) on their remosaiced
copies. Both INT8 Full HD files (272 x 480 x 16 and 544 x 960 x 4, one 1088 x 1920 RAW each) are then timed side by
side, and the remosaic's own NumPy cost per Full HD frame. Writes ``quad.{md,json}`` to ``--out``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench_common import (
    REPO,
    add_common_args,
    command,
    finish_report,
    header,
    log,
    md_table,
    parser,
    positive_float,
    positive_int,
    save_results,
    start_report,
)

from tflite_isp.core.errors import run_cli

NAME = "quad"
PROFILE = "example-12bit"
FULL_HD_RAW = (1088, 1920)
VARIANTS = (("quad", "16-channel packing (quarter resolution, quad head)"),
            ("remosaic", "pixel-swap remosaic to Bayer, 4-channel packing"))


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--fraction", type=positive_float, default=0.5,
                   help="Share of smallnet's recipe schedule (epochs), both variants (default 0.5).")
    p.add_argument("--crops", type=positive_int, default=None,
                   help="Crops per photo in every split of the synthesised set (default: synth.make_isp's).")
    p.add_argument("--runs", type=positive_int, default=20, help="Timed runs per INT8 file (default 20).")
    p.add_argument("--runs-dir", default=str(REPO / "runs" / "quad"), help="Data and runs (default runs/quad).")
    add_common_args(p, threads=2, threads_help="LiteRT threads for scoring and timing (default 2).")
    return p.parse_args(argv)


def make_data(root: Path, crops) -> dict:
    """The quad set (synthesised once) and its remosaiced Bayer copy."""
    from tflite_isp.data import remosaic, synth  # lazy: the project's modules load after the argument check
    from tflite_isp.raw import sensor

    quad, bayer_copy = root / "data-quad", root / "data-remosaic"
    if not (quad / "sensor.json").is_file():
        profile = sensor.from_dict({**sensor.BUILTIN[PROFILE], "name": f"{PROFILE}-quad",
                                    "pattern": "quad-" + sensor.BUILTIN[PROFILE]["pattern"]})
        synth.make_isp(quad, profile=profile, crops_per_photo=crops, eval_crops_per_photo=crops)
    if not (bayer_copy / "sensor.json").is_file():
        remosaic.remosaic_dataset(quad, bayer_copy)
    return {"quad": quad, "remosaic": bayer_copy}


def train_and_export(tag: str, data: Path, root: Path, fraction: float) -> Path:
    from tflite_isp.nets import recipes  # lazy: the project's modules load after the argument check

    run = root / tag
    metrics = run / "metrics.json"
    if not (metrics.is_file() and json.loads(metrics.read_text()).get("finished")):
        epochs = max(1, round(int(recipes.load_recipe("smallnet").train["epochs"]) * fraction))
        command(["tflite_isp.train", "--model", "smallnet", "--levels", "file", "--data", f"mai21:{data}",
                "--epochs", epochs, "--out", run])
    if not (run / "export" / "int8" / "manifest.json").is_file():
        command(["tflite_isp.export", run, "--int8", "--fidelity_images", "2"])  # Full HD packed: 272x480 / 544x960
    return run


def model_stats(run: Path) -> dict:
    """Parameters and MACs of the trained net built for one Full HD RAW frame."""
    from tflite_isp.nets import architectures, recipes, stats  # lazy: loads TensorFlow

    recipe = recipes.load_recipe(run / "recipe.json")
    s = recipe.input.scale
    model = architectures.build(recipe.model, height=FULL_HD_RAW[0] // s, width=FULL_HD_RAW[1] // s, batch=1,
                                cfa=recipe.input.cfa)
    return {"parameters": int(model.count_params()), "macs_g": stats.count_macs(model) / 1e9,
            "input": list(model.input_shape[1:])}


def remosaic_ms(repeats: int = 20) -> float:
    """Median ms of bayer.remosaic_quad on one Full HD uint16 frame (NumPy, this CPU)."""
    import numpy as np  # lazy: the project's modules load after the argument check

    from tflite_isp.raw import bayer

    frame = np.random.default_rng(0).integers(0, 4096, FULL_HD_RAW).astype(np.uint16)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        bayer.remosaic_quad(frame, "quad-GRBG")
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(times[1:]))


def page(report: dict) -> str:
    lines = ["# Quad Bayer: 16-channel packing vs remosaic to Bayer", "", *header(report), ""]
    rows = [[r["name"], r["how"], f"{r['parameters']:,}", f"{r['macs_g']:.2f}", f"{r['psnr']:.2f}",
             f"{r['ssim']:.4f}", f"{r['int8_ms']:.1f}", "x".join(map(str, r["input"]))] for r in report["rows"]]
    if report.get("baseline"):
        b = report["baseline"]
        rows.append([b["name"], "classical", "—", "—", f"{b['psnr']:.2f}", f"{b['ssim']:.4f}",
                     f"{b['runtime_ms']:.1f}", "1088x1920"])
    lines += md_table(["variant", "input", "params", "GMACs / Full HD", "PSNR dB", "SSIM", "INT8 ms / Full HD",
                       "packed input"], rows, "llrrrrrl")
    lines += ["", f"Data: `synth.make_isp` for the quad version of the built-in `{PROFILE}` profile "
                  f"({report['pattern']}, {report['crops'] or 'default'} crops per photo), {report['images']} test "
                  "images; (b) scored on the remosaiced copies of the same test RAWs against the same targets. "
                  f"Training: smallnet, `--levels file`, {report['epochs']} epoch(s) = {report['fraction']:g} x the "
                  "recipe's schedule, the same steps for both. Quality: the INT8 dynamic file on each whole image. "
                  f"Time: the two INT8 Full HD files one after the other on this CPU, LiteRT XNNPACK, "
                  f"{report['litert_threads']} threads, median of {report['runs']} runs (the LibRaw row: its own "
                  "score timing). The remosaic itself (NumPy, one 1088 x 1920 uint16 frame, median of 20): "
                  f"{report['remosaic_ms']:.1f} ms, to add to (b)'s time on a Quad Bayer camera.",
              "", "The machine is shared (2 cores, other jobs running): times and the short training are indicative."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from tflite_isp.run import timing  # lazy: loads TensorFlow
    from tflite_isp.score import scorer

    t0 = time.perf_counter()
    report = start_report(NAME, argv, threads=args.threads, litert_threads=args.threads, fraction=args.fraction,
                          runs=args.runs, crops=args.crops, rows=[])
    root = Path(args.runs_dir)
    data = make_data(root, args.crops)
    report["pattern"] = json.loads((data["quad"] / "sensor.json").read_text())["pattern"]
    runs = {}
    for i, (tag, how) in enumerate(VARIANTS, 1):
        log(f"[{i}/{len(VARIANTS)}] {tag}: train smallnet on {data[tag].name} and export INT8")
        runs[tag] = train_and_export(tag, data[tag], root, args.fraction)
    report["epochs"] = len(json.loads((runs["quad"] / "metrics.json").read_text())["epochs"])
    for tag, how in VARIANTS:
        board = scorer.run(scorer.ScoreConfig(
            models=(str(runs[tag] / "export" / "int8"),), data=f"mai21:{data[tag]}", threads=args.threads, runs=3,
            report_images=2, baseline=tag == "quad", out=str(root / f"scores-{tag}")))
        model_row = next(r for r in board["rows"] if not r.get("baseline"))
        if model_row.get("status") != "ok":
            raise SystemExit(f"error: scoring {tag} failed: {model_row.get('error')}")
        report["images"] = board["data"]["images"]
        report["rows"].append({"name": tag, "how": how, "psnr": model_row["psnr"], "ssim": model_row["ssim"],
                               **model_stats(runs[tag])})
        base = next((r for r in board["rows"] if r.get("baseline") and r.get("status") == "ok"), None)
        if base:
            report["baseline"] = {k: base[k] for k in ("name", "psnr", "ssim", "runtime_ms")}
    for row in report["rows"]:  # side by side, one after the other
        path = runs[row["name"]] / "export" / "int8" / "model.tflite"
        row["int8_ms"] = timing.measure_subprocess(path, threads=args.threads, runs=args.runs, warmup=3)["median_ms"]
        log(f"{row['name']}: INT8 {row['int8_ms']:.1f} ms per Full HD frame")
    report["remosaic_ms"] = remosaic_ms()
    finish_report(report, t0)
    for path in save_results(args.out, NAME, report, page):
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
