"""Scoring throughput at Full HD: images/s of ``python -m tflite_isp.score``'s quality pass, and where the time goes.

    python benchmarks/score_throughput.py [--models smallnet,punet,sid_unet] [--precisions fp32,int8]
        [--images 6] [--rounds 2] [--threads 2] [--out benchmarks/results]

Makes a Full HD (1920 x 1088 RAW) MAI-layout test set by wrapping the embedded ISP test pairs
(wrap keeps the Bayer phase), exports each model (the recipe's network, random weights: speed
does not depend on them) at Full HD, then scores every file on that set with the score
command's own Scorer (decode -> normalise -> model.tflite -> PSNR + SSIM), the files of all
models interleaved in ``--rounds`` rounds. Beside each scoring pass it times the parts alone on
the same images: decoding, one inference, the metrics. Per file: images/s, and the share of
the scoring time that is inference (the rest is the command's own overhead).

Writes ``score_throughput.{json,md}`` to ``--out`` (atomically).
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import (
    add_common_args,
    comma_list,
    finish_report,
    header,
    log,
    md_table,
    parser,
    positive_int,
    provenance_line,
    save_results,
    start_report,
)

from tflite_isp.core.errors import run_cli

NAME = "score_throughput"
FULL_HD = (1088, 1920)  # RAW pixels


def make_full_hd_set(root: Path, n: int) -> Path:
    """A mai21-layout test split of ``n`` Full HD pairs wrapped from the embedded ISP test pairs."""
    import imageio.v3 as iio

    from tflite_isp.data import layouts, pipeline, synth

    source = synth.ensure_embedded("isp")
    split = layouts.open_split("mai21", source, "test")
    for sub in ("mediatek_raw", "fujifilm"):
        (root / "test" / sub).mkdir(parents=True, exist_ok=True)
    (root / "sensor.json").write_text((Path(source) / "sensor.json").read_text())
    for i, pair in enumerate(split.pairs[:n]):
        mosaic, target = pipeline.read_pair(split, pair)
        pad = [(0, FULL_HD[0] - mosaic.shape[0]), (0, FULL_HD[1] - mosaic.shape[1])]
        iio.imwrite(root / "test" / "mediatek_raw" / f"{i}.png", np.pad(mosaic, pad, mode="wrap").astype(np.uint16))
        rgb = np.pad(np.round(target * 255), pad + [(0, 0)], mode="wrap").astype(np.uint8)
        iio.imwrite(root / "test" / "fujifilm" / f"{i}.png", rgb)
    return root


def export_model(name: str, work: Path, data: Path, precisions) -> Path:
    """A random-weight run of recipe ``name`` on ISP data (``data``: calibrates the INT8 file), exported at
    Full HD; returns its export root."""
    from tflite_isp.core.tf import keras
    from tflite_isp.export import exporter as export
    from tflite_isp.nets import architectures, recipes

    recipe = recipes.load_recipe(name)
    recipe = recipes.Recipe.from_dict({**recipe.to_dict(), "task": "isp"})
    run = work / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    architectures.build(recipe.model, name=recipe.name).save(str(run / "model.keras"))
    (run / "recipe.json").write_text(json.dumps(recipe.to_dict()))
    (run / "run.json").write_text(json.dumps({"config": {}, "data": {"layout": "mai21", "root": str(data)}}))
    export.run(export.ExportConfig(source=str(run), precisions=tuple(precisions), calibration_images=8,
                                   fidelity_images=0, model_none=False, log=False))
    return run / "export"


def parts(scorer, entry, split) -> dict:
    """Decode, one inference and the metrics, each timed alone on the same images (ms per image)."""
    from tflite_isp.core import metrics
    from tflite_isp.data import pipeline
    from tflite_isp.run.litert import Runner
    from tflite_isp.score import scorer as score

    blacks, whites = score.check_fits(entry, split)
    runner = Runner(entry.path, threads=scorer.cfg.threads)
    decode, infer, measure = [], [], []
    for i, pair in enumerate(split.pairs):
        t0 = time.perf_counter()
        mosaic, target = pipeline.read_pair(split, pair)
        t1 = time.perf_counter()
        x = score.model_input(entry, split, mosaic, blacks[i], whites[i], pair.ratio)[None]
        t2 = time.perf_counter()
        out = runner(x)[0]
        t3 = time.perf_counter()
        metrics.image_psnr(out, target), metrics.image_ssim(out, target)
        t4 = time.perf_counter()
        decode.append(t1 - t0)
        infer.append(t3 - t2)
        measure.append(t4 - t3)
    return {k: 1000 * statistics.median(v) for k, v in (("decode_ms", decode), ("inference_ms", infer),
                                                         ("metrics_ms", measure))}


def table(report: dict) -> list:
    return md_table(["file", "images/s", "ms/image", "inference ms", "metrics ms", "decode ms", "inference share"],
                    [[name, f"{r['images_per_s']:.2f}", f"{r['ms_per_image']:.0f}", f"{r['inference_ms']:.0f}",
                      f"{r['metrics_ms']:.0f}", f"{r['decode_ms']:.0f}", f"{r['inference_share']:.0%}"]
                     for name, r in report["files"].items()], "lrrrrrr")


def markdown(report: dict) -> str:
    s = report["settings"]
    lines = [f"# Scoring throughput at Full HD ({s['images']} images of 1920x1088, {s['threads']} threads, "
             f"{s['rounds']} rounds)", "", *header(report), "", *table(report)]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--models", type=comma_list(), default="smallnet,punet,sid_unet",
                   help="Comma-separated recipes (default smallnet,punet,sid_unet).")
    p.add_argument("--precisions", type=comma_list(), default="fp32,int8",
                   help="Comma-separated export precisions (default fp32,int8).")
    p.add_argument("--images", type=positive_int, default=6, help="Full HD test images (default 6).")
    p.add_argument("--rounds", type=positive_int, default=2, help="Scoring rounds over every file (default 2).")
    add_common_args(p, threads=2, threads_help="LiteRT threads for scoring")
    return p.parse_args(argv)


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    report = start_report(NAME, argv, threads=args.threads,
                          settings={"models": args.models, "precisions": args.precisions, "images": args.images,
                                    "rounds": args.rounds, "threads": args.threads}, files={})
    log(provenance_line(report))

    from tflite_isp.data import layouts, synth
    from tflite_isp.run import entries
    from tflite_isp.score import scorer as score

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_full_hd_set(work / "fullhd", args.images)
        split = layouts.open_split("mai21", data, "test")
        cfg = score.ScoreConfig(models=(), threads=args.threads, report_images=0, log=False)
        scorer = score.Scorer(cfg, split, source=None)
        files = []
        for name in args.models:
            log(f"exporting {name} at Full HD ({', '.join(args.precisions)})")
            root = export_model(name, work, synth.ensure_embedded("isp"), args.precisions)
            files += [entries.make_entry(f, str(f), None) for f in entries.model_files(str(root))]
        timings: dict = {e.name: [] for e in files}
        for r in range(args.rounds):
            for e in files:
                log(f"round {r + 1}/{args.rounds}: {e.name}")
                seconds = scorer.quality(e)["details"]["scoring_seconds"]
                timings[e.name].append(1000 * seconds / len(split.pairs))
        for e in files:
            ms = statistics.median(timings[e.name])
            alone = parts(scorer, e, split)
            report["files"][e.name] = {"ms_per_image": ms, "images_per_s": 1000 / ms, **alone,
                                       "inference_share": alone["inference_ms"] / ms, "rounds_ms": timings[e.name]}
    finish_report(report, t_start)
    paths = save_results(args.out, NAME, report, markdown)
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, paths))}")
    print("\n".join(table(report)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
