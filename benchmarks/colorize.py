"""Colourisation on the embedded photos: the reproduced Jetson autoencoder, our half-size U-Net variant and the
anti-grey chroma loss, each trained, exported INT8 and scored beside the grey baseline (L with a = b = 0).

    .venv/bin/python benchmarks/colorize.py                  # the recipes' schedules
    .venv/bin/python benchmarks/colorize.py --fraction 0.1   # a smoke run

Each variant trains with ``python -m tflite_isp.train`` (runs in ``--runs-dir``, reused when finished), exports
``--int8`` (fixed 256 x 256 file and the dynamic one) and is scored by ``python -m tflite_isp.score`` on the
embedded colourisation test split: PSNR / SSIM / mean CIEDE2000 / colourfulness, and the INT8 file's time per
256 x 256 frame on this CPU (``--threads``), whose inverse is the FPS the Jetson project reported (about 10 on a
Jetson Nano's GPU: another machine). Writes ``colorize.{md,json}`` to ``--out``.
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

NAME = "colorize"
#: (tag, recipe, loss): the published net and loss, the anti-grey term on it, our half-size variant
VARIANTS = (("colorize_ae", "colorize_ae", "mse"), ("colorize_ae+chroma", "colorize_ae", "mse,chroma:0.2"),
            ("colorize_unet", "colorize_unet", "mse"))


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--fraction", type=positive_float, default=1.0, help="Share of each recipe's schedule (default 1).")
    p.add_argument("--runs", type=positive_int, default=20, help="Timed runs per file (default 20).")
    p.add_argument("--runs-dir", default=str(REPO / "runs" / "colorize"), help="Training runs (default runs/colorize).")
    add_common_args(p, threads=2, threads_help="LiteRT threads for scoring and timing (default 2).")
    return p.parse_args(argv)


def train_and_export(tag: str, recipe: str, loss: str, root: Path, fraction: float) -> Path:
    from tflite_isp.nets import recipes  # lazy: the project's modules load after the argument check

    run = root / tag
    metrics = run / "metrics.json"
    if not (metrics.is_file() and json.loads(metrics.read_text()).get("finished")):
        train = recipes.load_recipe(recipe).train
        epochs = max(1, round(int(train["epochs"]) * fraction))
        command(["tflite_isp.train", "--model", recipe, "--loss", loss, "--epochs", str(epochs), "--out", str(run)]
               + (["--resume"] if (run / "checkpoints" / "checkpoint").is_file() else []))
    if not (run / "export" / "int8" / "manifest.json").is_file():
        command(["tflite_isp.export", str(run), "--int8"])
    return run


def as_depth_to_space(tconv_model, section):
    """The trained deploy form with each 2x2 stride-2 transposed conv rewritten as a 1x1 conv to 4x the channels +
    pixel shuffle (exactly the same map); the stride-1 2x2 transposed head becomes a 2x2 conv with the same weights
    (the same cost; its output shifted by one pixel, which changes no speed)."""
    import numpy as np  # lazy: the project's modules load after the argument check

    from tflite_isp.core.tf import keras
    from tflite_isp.nets import architectures

    d2s = architectures.build({**section, "upsample": "depth_to_space"})
    for layer in (x for x in d2s.layers if x.weights):
        kernel, bias = tconv_model.get_layer(layer.name).get_weights()
        if layer.name == "ab":
            layer.set_weights([np.transpose(kernel, (0, 1, 3, 2)), bias])
        elif isinstance(tconv_model.get_layer(layer.name), keras.layers.Conv2DTranspose):
            kh, kw, out, cin = kernel.shape  # y[2i + dy, 2j + dx, o] = sum_c x[i, j, c] K[dy, dx, o, c]
            layer.set_weights([np.transpose(kernel, (3, 0, 1, 2)).reshape(1, 1, cin, kh * kw * out),
                               np.tile(bias, kh * kw)])
        else:
            layer.set_weights([kernel, bias])
    return d2s


def upsampling(run_dir: Path, threads: int, runs: int, root: Path) -> list:
    """The trained colorize_ae (batch norms folded) as exported, and with its x2 ups as 1x1 conv + depth-to-space,
    both converted by the exporter's converter to FP32 and INT8 (calibrated on embedded training crops) and timed side
    by side at 256 x 256. Trained weights matter: an untrained file's INT8 scales can push ops off XNNPACK."""
    from tflite_isp.data import layouts, pipeline  # lazy: the project's modules load after the argument check
    from tflite_isp.export import convert
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.run import timing

    recipe = recipes.load_recipe(run_dir / "recipe.json")
    section = architectures.deploy_form(recipe.model)
    tconv = architectures.fuse_weights(architectures.load(run_dir / "model.keras"), architectures.build(section))
    split = layouts.open_split(*layouts.parse_data_flag("embedded:colorize"), "train")
    calib = [x.numpy() for x, _ in pipeline.training_dataset(split, recipe.input, patch=256, batch=1).take(32)]
    table, rows = convert.precisions(), []
    for upsample, model in (("transpose", tconv), ("depth_to_space", as_depth_to_space(tconv, section))):
        row = {"upsample": upsample, "parameters": int(model.count_params())}
        for precision in ("fp32", "int8"):
            path = root / f"upsample-{upsample}-{precision}.tflite"
            path.write_bytes(convert.convert(model, (1, 256, 256, 1), table[precision],
                                             representative=convert.representative_from(calib)))
            row[f"{precision}_ms"] = timing.measure_subprocess(path, threads=threads, runs=runs, warmup=3)["median_ms"]
        rows.append(row)
        log(f"upsampling {upsample}: FP32 {row['fp32_ms']:.1f} ms, INT8 {row['int8_ms']:.1f} ms")
    return rows


def stream_fps(runs: dict, threads: int, root: Path, frames: int = 120) -> list:
    """End-to-end FPS of ``python -m tflite_isp.stream`` on a 256 x 256 H.264 video of the bundled photos (a slow
    pan over four of them), each variant's INT8 file and the reproduced net's FP32 one: decode, Lab, network, encode."""
    import imageio_ffmpeg  # lazy: the project's modules load after the argument check
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    video = root / "pan256.mp4"
    writer = imageio_ffmpeg.write_frames(str(video), (256, 256), fps=25, macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for i in range(frames):
        photo = resize(getattr(data, ("astronaut", "coffee", "chelsea", "rocket")[i * 4 // frames])(), (256, 256))
        writer.send((np.roll(photo, 2 * i, axis=1) * 255 + 0.5).astype(np.uint8))
    writer.close()
    rows = []
    for tag, precision in [(t, "int8") for t in runs] + [("colorize_ae", "fp32")]:
        export = runs[tag] / "export" / precision
        if not (export / "model.tflite").is_file():
            command(["tflite_isp.export", str(runs[tag])] + ([] if precision == "fp32" else [f"--{precision}"]))
        out = root / f"stream-{tag}-{precision}.json"
        command(["tflite_isp.stream", str(export), "--input", str(video), "--output", str(root / "stream-out.mp4"),
                "--threads", str(threads), "--json", str(out)])
        r = json.loads(out.read_text())
        rows.append({"model": tag, "precision": precision, "frames": r["frames"], "fps": r["fps"],
                     "steady_fps": r["steady_fps"], "inference_ms": r["inference_ms"]["mean"], "share": r["share"]})
    return rows


def page(report: dict) -> str:
    lines = ["# Colourisation on the embedded photos", "", *header(report), ""]
    rows = []
    for r in report["rows"]:
        ms = r.get("runtime_ms")
        if r.get("status") != "ok":
            rows.append([r["name"], r.get("loss") or "—", "FAILED: " + str(r.get("error"))])
            continue
        rows.append([r["name"], r.get("loss") or "—", f"{r['parameters']:,}" if r.get("parameters") else "—",
                     f"{r['psnr']:.2f}", f"{r['ssim']:.3f}", f"{r['delta_e']:.2f}", f"{r['colourfulness']:.1f}",
                     f"{ms:.1f}" if ms else "—", f"{1000 / ms:.1f}" if ms and r.get("loss") else "—",
                     f"{r['train_min']:.1f}" if r.get("train_min") else "—"])
    lines += md_table(["model", "loss", "params", "PSNR dB", "SSIM", "ΔE2000", "colourfulness", "INT8 ms / frame",
                       "FPS", "train min"], rows, "llrrrrrrrr")
    lines += ["", f"Embedded colourisation test split ({report['images']} images, 288 x 288, from the astronaut "
                  f"photo); the originals' colourfulness is {report['target_colourfulness']:.1f}. Quality: the INT8 "
                  "dynamic file on each whole image. Time: the INT8 model.tflite (256 x 256 L) on this CPU, LiteRT "
                  f"XNNPACK, {report['litert_threads']} threads, median of {report['runs']} runs; FPS = 1000 / ms, the "
                  "network alone (the stream runner's end-to-end FPS adds decode, Lab conversion and encode). The "
                  "grey row's time is the NumPy Lab round trip (no FPS: it runs no network). Training: "
                  f"{report['fraction']:g} x each recipe's schedule, embedded train split."]
    if report.get("stream"):
        lines += ["", "## End to end: `python -m tflite_isp.stream` on a 256 x 256 video", "",
                  *md_table(["model", "file", "FPS (after the first frame)", "network ms", "decode / Lab / network / "
                             "encode share"],
                            [[r["model"], r["precision"].upper(), f"{r['fps']:.1f} ({r['steady_fps']:.1f})",
                              f"{r['inference_ms']:.1f}", " / ".join(f"{100 * r['share'][k]:.0f} %" for k in
                                                                     ("decode", "colour", "inference", "encode"))]
                             for r in report["stream"]], "llrrl"),
                  "", f"{report['stream'][0]['frames']} frames of an H.264 pan over four bundled photos, written by "
                      "imageio-ffmpeg; every frame decoded, converted to L, run, joined with its L and encoded to "
                      "H.264 again; one run each, in sequence."]
    if report.get("upsampling"):
        lines += ["", "## Upsampling: transposed conv vs 1x1 conv + depth-to-space", "",
                  *md_table(["colorize_ae's x2 ups", "params", "FP32 ms", "INT8 ms"],
                            [[r["upsample"], f"{r['parameters']:,}", f"{r['fp32_ms']:.1f}", f"{r['int8_ms']:.1f}"]
                             for r in report["upsampling"]], "lrrr"),
                  "", "The trained colorize_ae (batch norms folded), its four 2x2 stride-2 transposed convs as they "
                      "are or as a 1x1 conv to 4x the channels + pixel shuffle (the same map; its stride-1 head a 2x2 "
                      "conv), converted by the exporter's converter (INT8 calibrated on 32 embedded training crops), "
                      "timed side by side in one run at 256 x 256, same threads and runs as above."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from tflite_isp.score import scorer  # lazy: loads TensorFlow

    t0 = time.perf_counter()
    report = start_report(NAME, argv, threads=args.threads, litert_threads=args.threads, fraction=args.fraction,
                          runs=args.runs, rows=[])
    root = Path(args.runs_dir)
    runs = {}
    for i, (tag, recipe, loss) in enumerate(VARIANTS, 1):
        log(f"[{i}/{len(VARIANTS)}] {tag}: train ({loss}) and export INT8")
        runs[tag] = train_and_export(tag, recipe, loss, root, args.fraction)
    cfg = scorer.ScoreConfig(models=tuple(str(r / "export" / "int8") for r in runs.values()),
                             data="embedded:colorize", threads=args.threads, runs=args.runs, report_images=2,
                             out=str(root / "scores"))
    board = scorer.run(cfg)
    for row in board["rows"]:
        tag = next((t for t, r in runs.items() if row.get("path") and row["path"].startswith(f"{r}/")), None)
        metrics = json.loads((runs[tag] / "metrics.json").read_text()) if tag else {}
        report["rows"].append({
            "name": tag or row["name"], "loss": next((v[2] for v in VARIANTS if v[0] == tag), None),
            "parameters": metrics.get("parameters"),
            "train_min": sum(e.get("seconds", 0) for e in metrics.get("epochs", [])) / 60 or None,
            **{k: row.get(k) for k in ("psnr", "ssim", "delta_e", "colourfulness", "runtime_ms", "status", "error",
                                       "quality", "path")}})
    report["images"] = board["data"]["images"]
    targets = [p["target_colourfulness"] for r in board["rows"] for p in r.get("per_image") or []]
    report["target_colourfulness"] = sum(targets) / max(len(targets), 1)
    report["leaderboard"] = str(Path(board["out"]) / "leaderboard.json")
    report["upsampling"] = upsampling(runs["colorize_ae"], args.threads, args.runs, root)
    report["stream"] = stream_fps(runs, args.threads, root)
    finish_report(report, t0)
    for path in save_results(args.out, NAME, report, page):
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
