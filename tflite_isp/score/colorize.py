"""Scoring a colourisation export: PSNR / SSIM of the recoloured sRGB, mean CIEDE2000 against the original and
the colourfulness that shows a greyish output, and the grey baseline (L with a* = b* = 0) as its reference row.

The functions take the Scorer (score.scorer) of the call: its split, settings, progress and report samples.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tflite_isp.core import colour, metrics
from tflite_isp.core.errors import fail
from tflite_isp.run import stream_loop
from tflite_isp.run.litert import Runner
from tflite_isp.score import leaderboard

GREY = "grey (L with a = b = 0)"


def _images(scorer, label: str):
    """(index, pair, sRGB image) for each image of the split, with progress."""
    from tflite_isp.data import pipeline  # lazy: TensorFlow loads only when this runs

    bar = scorer._progress(label)
    for i, pair in enumerate(scorer.split.pairs):
        yield i, pair, pipeline.read_image(scorer.split, pair)
        bar.update(i + 1)
    bar.close()


def quality(scorer, name: str, render, how: str) -> dict:
    """Per-image PSNR, SSIM, mean CIEDE2000 and colourfulness of ``render(rgb) -> sRGB`` over the split."""
    per_image, errors = [], []
    for i, pair, target in _images(scorer, name):
        out = render(target)
        errors.append(metrics.squared_error(out, target))
        per_image.append({"name": Path(pair.raw).name, "psnr": round(metrics.image_psnr(out, target), 4),
                          "ssim": round(metrics.image_ssim(out, target), 5),
                          "delta_e": round(colour.delta_e2000(target, out), 4),
                          "colourfulness": round(colour.colourfulness(out), 3),
                          "target_colourfulness": round(colour.colourfulness(target), 3)})
        if i < scorer.cfg.report_images:
            sample = _sample(scorer, i, pair, target)
            sample["outputs"][name] = out[:sample["box"][2], :sample["box"][3]]
    mean = {k: float(np.mean([p[k] for p in per_image])) for k in ("ssim", "delta_e", "colourfulness")}
    return {"psnr": round(metrics.mean_psnr([p["psnr"] for p in per_image]), 4),
            "psnr_pooled": round(metrics.pooled_psnr(errors), 4), "ssim": round(mean["ssim"], 5),
            "delta_e": round(mean["delta_e"], 3), "colourfulness": round(mean["colourfulness"], 2),
            "per_image": per_image, "quality": how}


def _sample(scorer, i: int, pair, target) -> dict:
    while len(scorer.samples) <= i:
        scorer.samples.append(None)
    if scorer.samples[i] is None:
        h, w = min(target.shape[0], 256), min(target.shape[1], 256)
        scorer.samples[i] = {"name": Path(pair.raw).name, "box": (0, 0, h, w), "raw": None,
                             "target": target[:h, :w], "outputs": {}}
    return scorer.samples[i]


def colourise(run, rgb: np.ndarray, spec, *, tile=None, multiple: int = 16) -> np.ndarray:
    """sRGB (h, w, 3) in [0, 1] -> ``run``'s colouring of its L in float (the stream runner's frame rule: a fixed
    file sees L resized to its input and its ab is resized back; a dynamic file runs on the padded frame)."""
    l_in = colour.model_input(np.asarray(rgb, np.float32), spec.l_scale).astype(np.float32)
    ab = run(stream_loop.model_l(l_in, tile, multiple)[None])[0]
    ab = stream_loop.frame_ab(ab, l_in.shape[:2], tile)
    return np.clip(colour.render(l_in, ab, spec.l_scale, spec.ab_scale), 0.0, 1.0).astype(np.float32)


def score_entry(scorer, entry) -> dict:
    """A leaderboard row for one colourisation file: quality on the split, then its runtime per frame."""
    from tflite_isp.nets import architectures  # lazy: TensorFlow loads only when this runs

    if entry.recipe.task != scorer.split.task:
        raise fail(entry.path, f"a {entry.recipe.task} model cannot score on {scorer.split.layout} "
                               f"{scorer.split.task} data")
    spec, shape = entry.recipe.input, entry.input_shape[1:3]
    tile = None if -1 in shape else tuple(shape)
    how = "whole image" if tile is None else f"L resized to {tile[0]}x{tile[1]}, ab resized back"
    runner = Runner(entry.path, threads=scorer.cfg.threads)
    multiple = architectures.input_multiple(entry.recipe.model)
    started = time.perf_counter()
    row = quality(scorer, entry.name, lambda rgb: colourise(runner, rgb, spec, tile=tile, multiple=multiple), how)
    row["details"] = {"quality": how, "scoring_seconds": round(time.perf_counter() - started, 2),
                      "ops": entry.details["ops"],
                      "lint": ((entry.manifest or {}).get("file") or {}).get("lint")}
    measured = scorer.source.measure(entry)
    macs = entry.details["macs"]
    return leaderboard.new_row(
        entry.name, model=entry.recipe.name, precision=entry.precision, framework="TFLite (LiteRT, XNNPACK)",
        path=str(entry.path), size_kb=round(entry.details["size_kb"], 2),
        macs_g=round(macs / 1e9, 3) if macs is not None else None, **row, runtime_ms=round(measured.ms, 3),
        runtime_source=measured.source, score=None, runtime=measured.details)


def grey_row(scorer) -> dict:
    """The grey baseline: each image's own L with a* = b* = 0, timed per 256 x 256 frame as the models are."""
    quality_ = quality(scorer, GREY, lambda rgb: colour.grey(rgb).astype(np.float32), "whole image")
    frame = np.random.default_rng(0).uniform(0, 1, (256, 256, 3)).astype(np.float32)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        colour.grey(frame)
        times.append((time.perf_counter() - start) * 1000)
    return leaderboard.new_row(GREY, model="grey", precision="—", framework="NumPy (tflite_isp.core.colour)",
                               baseline=True, **quality_, runtime_ms=round(float(np.median(times)), 3),
                               runtime_source="local (NumPy Lab round trip, 256x256)", score=None,
                               runtime={"median_ms": float(np.median(times)), "runs": len(times)})


HEADLINE = ("Colourisation: each image's L* goes in, the model's (a*, b*) come out and are joined with that L* back "
            "into sRGB (tflite_isp.core.colour, D65). PSNR (mean of per-image PSNRs, dB) and SSIM as for ISP models; "
            "dE2000 is the mean CIEDE2000 difference from the original (scikit-image); colourfulness is Hasler and "
            "Suesstrunk's (a grey image scores 0), to compare with the originals' {target:.1f}. Quality from the "
            "dynamic file on each whole image (padded to the net's multiple), else the fixed file with L resized to "
            "it. Runtime: one frame at the file's own size (256 x 256 for a dynamic file). No challenge score: rows "
            "rank by PSNR.")


def headline(board_rows) -> str:
    targets = [p["target_colourfulness"] for r in board_rows for p in (r.get("per_image") or [])
               if "target_colourfulness" in p]
    return HEADLINE.format(target=float(np.mean(targets)) if targets else float("nan"))


__all__ = ["GREY", "colourise", "quality", "score_entry", "grey_row", "headline"]
