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

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from bench_machine import load_average, machine_info  # noqa: E402

from tflite_isp.core import atomic  # noqa: E402

FULL_HD = (1088, 1920)  # RAW pixels


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
    from tflite_isp.score import cli as score

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


def to_markdown(result: dict) -> str:
    lines = [f"Scoring throughput at Full HD ({result['images']} images of 1920x1088, "
             f"{result['threads']} threads, {result['rounds']} rounds; {result['machine']['cpu']}, "
             f"{result['machine']['usable_cores']} cores)", "",
             "| file | images/s | ms/image | inference ms | metrics ms | decode ms | inference share |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in result["files"].items():
        lines.append(f"| {name} | {r['images_per_s']:.2f} | {r['ms_per_image']:.0f} | {r['inference_ms']:.0f} | "
                     f"{r['metrics_ms']:.0f} | {r['decode_ms']:.0f} | {r['inference_share']:.0%} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/score_throughput.py", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="smallnet,punet,sid_unet")
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--images", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args(argv)

    from tflite_isp.data import layouts, synth
    from tflite_isp.score import cli as score

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_full_hd_set(work / "fullhd", args.images)
        split = layouts.open_split("mai21", data, "test")
        cfg = score.ScoreConfig(models=(), threads=args.threads, report_images=0, log=False)
        scorer = score.Scorer(cfg, split, source=None)
        entries = []
        for name in args.models.split(","):
            log(f"exporting {name} at Full HD ({args.precisions})")
            root = export_model(name, work, synth.ensure_embedded("isp"), args.precisions.split(","))
            entries += [entries.make_entry(f, str(f), None) for f in entries.model_files(str(root))]
        timings: dict = {e.name: [] for e in entries}
        for r in range(args.rounds):
            for e in entries:
                log(f"round {r + 1}/{args.rounds}: {e.name}")
                seconds = scorer.quality(e)["details"]["scoring_seconds"]
                timings[e.name].append(1000 * seconds / len(split.pairs))
        files = {}
        for e in entries:
            ms = statistics.median(timings[e.name])
            alone = parts(scorer, e, split)
            files[e.name] = {"ms_per_image": ms, "images_per_s": 1000 / ms, **alone,
                             "inference_share": alone["inference_ms"] / ms, "rounds_ms": timings[e.name]}
    result = {"images": args.images, "threads": args.threads, "rounds": args.rounds, "machine": machine_info(),
              "load_average": load_average(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": files}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / "score_throughput.json", result)
    atomic.write_text(out / "score_throughput.md", to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
