"""A learned ISP for a camera that is neither embedded sensor: profile -> calibrate -> synthesise -> train -> export
-> enhance, scored against the embedded-set model and LibRaw.

    .venv/bin/python benchmarks/own_camera.py                  # the smallnet recipe's schedule
    .venv/bin/python benchmarks/own_camera.py --fraction 0.1   # a smoke run

The camera is the built-in ``example-12bit`` sensor (12-bit GRBG, per-colour black, the Canon EOS 5D Mark II's dcraw
colour matrix, an example noise table): no package on the registries ships a camera RAW file (rawpy's sdist,
exifread, pidng, colour-demosaicing and rawkit were searched), so its files are written by
``data synth --task camera``. Every step is the project's command line, as a user runs it. Reported:
(a) the synthetic test split for that sensor (``score``: PSNR / SSIM and the LibRaw row); (b) the camera's own shots
through ``enhance``: mean CIEDE2000 against LibRaw's rendering of the same file (what a user without ground truth
can measure), and against the photo each shot was made from (which only a synthetic camera has). Writes
``own_camera.{md,json,html}`` to ``--out``.
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import sys
import time
from pathlib import Path

from bench_common import (
    REPO,
    add_common_args,
    command,
    finish_report,
    generated_by,
    header,
    log,
    md_table,
    parser,
    positive_float,
    positive_int,
    save_results,
    start_report,
    write_atomic,
)

from tflite_isp.core.errors import run_cli

NAME = "own_camera"
SENSOR = "example-12bit"
MODEL = "smallnet"


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--fraction", type=positive_float, default=1.0, help="Share of the recipe's schedule (default 1).")
    p.add_argument("--shots", type=positive_int, default=6, help="The camera's shots to enhance (default 6).")
    p.add_argument("--runs", type=positive_int, default=20, help="Timed runs per file (default 20).")
    p.add_argument("--runs-dir", default=str(REPO / "runs" / "own_camera"), help="Work folder (default "
                                                                                  "runs/own_camera).")
    add_common_args(p, threads=2, threads_help="LiteRT threads for scoring and enhance (default 2).")
    return p.parse_args(argv)


def _once(done: Path, args: list) -> None:
    """Run a step unless its output exists (a rerun reuses finished steps)."""
    if not done.exists():
        command(args)


def camera_to_data(root: Path, shots: int) -> tuple:
    """The camera's files, its profile with calibrated noise, and the isp set synthesised for it."""
    cam, prof, data = root / "cam", root / "sensor.json", root / "data"
    _once(cam, ["tflite_isp.data", "synth", "--task", "camera", "--sensor", SENSOR, "--crops", shots, "--out", cam])
    if not prof.exists():
        command(["tflite_isp.data", "profile", *sorted((cam / "shots").glob("*.dng")), "--out", prof])
        command(["tflite_isp.data", "calibrate", "--dark", cam / "dark", "--flat", cam / "flat", "--profile", prof])
    _once(data, ["tflite_isp.data", "synth", "--task", "isp", "--sensor", prof, "--out", data])
    return cam, prof, data


def trained(run: Path, data: str, fraction: float, *extra) -> Path:
    from tflite_isp.nets import recipes  # lazy: the project's modules load after the argument check

    metrics = run / "metrics.json"
    if not (metrics.is_file() and json.loads(metrics.read_text()).get("finished")):
        epochs = max(1, round(int(recipes.load_recipe(MODEL).train["epochs"]) * fraction))
        command(["tflite_isp.train", "--model", MODEL, "--data", data, "--epochs", epochs, "--out", run, *extra]
               + (["--resume"] if (run / "checkpoints" / "checkpoint").is_file() else []))
    _once(run / "export" / "int8" / "manifest.json", ["tflite_isp.export", run, "--int8"])
    return run


def file_levels_copy(run: Path, dest: Path) -> Path:
    """The embedded-set model's weights with its input read as each file's own levels: the fairest way to run a
    model trained on another sensor's data (its fixed /1020 refuses a 12-bit file)."""
    if not (dest / "model.keras").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("model.keras", "run.json", "metrics.json"):
            shutil.copy2(run / name, dest / name)
        recipe = json.loads((run / "recipe.json").read_text())
        recipe["input"].update(black="file", white="file")
        (dest / "recipe.json").write_text(json.dumps(recipe, indent=1))
    _once(dest / "export" / "int8" / "manifest.json", ["tflite_isp.export", dest, "--int8"])
    return dest


def _unit(image):
    """An 8- or 16-bit image in [0, 1] (Pillow, under imageio, reads a 16-bit RGB PNG as 8-bit)."""
    import numpy as np  # lazy: the project's modules load after the argument check

    return image.astype(np.float32) / float(np.iinfo(image.dtype).max)


def shot_metrics(cam: Path, exports: dict, root: Path, threads: int) -> tuple:
    """Per shot and model: mean CIEDE2000 against LibRaw's sRGB rendering and against the source photo, PSNR against
    the source photo; and the crops for the page."""
    import imageio.v3 as iio  # lazy: the project's modules load after the argument check
    import numpy as np

    from tflite_isp.core import colour, metrics
    from tflite_isp.raw import render

    shots = sorted((cam / "shots").glob("*.dng"))
    outputs = {"LibRaw (AHD, camera WB, sRGB gamma)": {s.name: render.render_srgb(s, gamma=(2.4, 12.92))
                                                         for s in shots}}
    for tag, export in exports.items():
        folder = root / "enhanced" / tag
        _once(folder, ["tflite_isp.enhance", cam / "shots", "-o", folder, "--export_dir", export, "--png16",
                       "--threads", threads])
        outputs[tag] = {s.name: _unit(iio.imread(folder / f"{s.stem}.png")) for s in shots}
    libraw = outputs["LibRaw (AHD, camera WB, sRGB gamma)"]
    rows, crops = [], {}
    for tag, images in outputs.items():
        per = []
        for s in shots:
            truth = _unit(iio.imread(cam / "truth" / f"{s.stem}.png"))
            out = np.clip(images[s.name], 0, 1)[: truth.shape[0], : truth.shape[1]]
            per.append({"shot": s.name, "delta_e_libraw": colour.delta_e2000(libraw[s.name], out),
                        "delta_e_truth": colour.delta_e2000(truth, out), "psnr_truth": metrics.image_psnr(out, truth)})
        rows.append({"model": tag, "shots": per, **{k: float(np.mean([p[k] for p in per])) for k in per[0]
                                                    if k != "shot"}})
        crops[tag] = _centre(out)
    crops["source photo (ground truth)"] = _centre(truth)
    return rows, crops


def _centre(image, size: int = 256):
    h, w = image.shape[:2]
    return image[max(0, (h - size) // 2):][:size, max(0, (w - size) // 2):][:, :size]


def _png_b64(image) -> str:
    import imageio.v3 as iio  # lazy: the project's modules load after the argument check
    import numpy as np

    buf = io.BytesIO()
    iio.imwrite(buf, (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), extension=".png")
    return base64.b64encode(buf.getvalue()).decode()


def html(report: dict, crops: dict) -> str:
    cells = "".join(f'<figure><img src="data:image/png;base64,{_png_b64(img)}"><figcaption>{tag}</figcaption>'
                    "</figure>" for tag, img in crops.items())
    rows = "".join(f"<tr><td>{r['model']}</td><td>{r['delta_e_libraw']:.2f}</td><td>{r['delta_e_truth']:.2f}</td>"
                   f"<td>{r['psnr_truth']:.2f}</td></tr>" for r in report["shots"])
    return ("<!doctype html><meta charset=utf-8><title>tflite_isp: a learned ISP for your own camera</title>"
            "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:4px}"
            "td,th{padding:2px 10px;text-align:right}td:first-child{text-align:left}</style>"
            f"<h1>{report['sensor']}: the camera's last shot (centre crop)</h1>{cells}"
            "<h2>The camera's shots through enhance</h2><table><tr><th>rendering</th><th>ΔE2000 vs LibRaw</th>"
            f"<th>ΔE2000 vs source</th><th>PSNR vs source</th></tr>{rows}</table>"
            f"<p>{generated_by(report)}</p>")


def page(report: dict) -> str:
    lines = ["# A learned ISP for a camera that is neither embedded sensor", "", *header(report), ""]
    lines += [f"Sensor `{report['sensor']}`: {report['sensor_summary']}", "",
              "## (a) Synthetic test split for that sensor (`python -m tflite_isp.score`)", "",
              *md_table(["model", "PSNR dB", "SSIM", "INT8 ms (this CPU)"],
                        [[r["name"], f"{r['psnr']:.2f}", f"{r['ssim']:.3f}",
                          f"{r['runtime_ms']:.1f}" if r.get("runtime_ms") else "—"] for r in report["split"]], "lrrr"),
              "", "## (b) The camera's own shots through `python -m tflite_isp.enhance`", "",
              *md_table(["rendering", "ΔE2000 vs LibRaw", "ΔE2000 vs source photo", "PSNR vs source photo"],
                        [[r["model"], f"{r['delta_e_libraw']:.2f}", f"{r['delta_e_truth']:.2f}",
                          f"{r['psnr_truth']:.2f}"] for r in report["shots"]], "lrrr"),
              "", f"{report['n_shots']} shots of the test-split photo written by `data synth --task camera`; "
                  "ΔE2000 is the mean CIEDE2000 per pixel (D65). Crops: `own_camera.html`."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from tflite_isp.raw import sensor  # lazy: loads the project
    from tflite_isp.score import scorer

    t0 = time.perf_counter()
    report = start_report(NAME, argv, threads=args.threads, fraction=args.fraction, sensor=SENSOR, n_shots=args.shots)
    root = Path(args.runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    log("[1/4] the camera's files, its profile and calibration, data synthesised for it")
    cam, prof, data = camera_to_data(root, args.shots)
    report["sensor_summary"] = "; ".join(line.strip() for line in sensor.summary(sensor.load(prof)).splitlines()[1:])
    report["profile"] = sensor.load(prof).to_dict()
    log("[2/4] smallnet trained on the camera's data, and on the embedded set")
    mine = trained(root / "smallnet-camera", f"mai21:{data}", args.fraction, "--levels", "file")
    embedded = trained(root / "smallnet-embedded", "embedded:isp", args.fraction)
    exports = {"smallnet, this camera's data": mine / "export" / "int8",
               "smallnet, embedded set (file levels)": file_levels_copy(embedded, root / "smallnet-embedded-file")
               / "export" / "int8"}
    log("[3/4] score on the sensor's synthetic test split")
    board = scorer.run(scorer.ScoreConfig(models=tuple(str(e) for e in exports.values()), data=f"mai21:{data}",
                                          threads=args.threads, runs=args.runs, out=str(root / "scores")))
    names = {str(e): tag for tag, e in exports.items()}
    report["split"] = [{"name": next((t for p, t in names.items() if (r.get("path") or "").startswith(p)), r["name"]),
                        **{k: r.get(k) for k in ("psnr", "ssim", "runtime_ms")}} for r in board["rows"]]
    log("[4/4] the camera's shots through enhance, against LibRaw")
    report["shots"], crops = shot_metrics(cam, exports, root, args.threads)
    finish_report(report, t0)
    for path in save_results(args.out, NAME, report, page):
        log(f"wrote {path}")
    html_path = Path(args.out) / f"{NAME}.html"
    write_atomic(html_path, html(report, crops))
    log(f"wrote {html_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
