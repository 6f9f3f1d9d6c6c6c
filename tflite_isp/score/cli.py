"""``python -m tflite_isp.score``: which model to submit or ship. PSNR, SSIM, runtime and the MAI 2021
score of ``.tflite`` files, next to a classical LibRaw ISP, in one leaderboard and one visual report.

    python -m tflite_isp.score MODEL [MODEL ...] [--data LAYOUT:PATH] [--split test]
                               [--runtime local | adb[:SERIAL][:DELEGATE] | jetson:HOST | --runtime_json FILE]
    python -m tflite_isp.score --zoo

A MODEL is an export folder (``RUN/export/int8``: its manifest gives packing, normalisation and IO
quantisation), an export root or run directory (every precision exported there), or a ``.tflite``
file (its folder's manifest, else ``--recipe``). Each file runs in ai-edge-litert's interpreter
(XNNPACK, ``--threads``) on whole test images, tiled when larger than its fixed input. The output
folder holds leaderboard.{md,csv,json} and report.html with its PNGs.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from absl import flags

from tflite_isp.core import atomic, cli, metrics
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.progress import Progress
from tflite_isp.data import layouts
from tflite_isp.raw import bayer
from tflite_isp.run import flatbuffer, receptive_field, records, tiling
from tflite_isp.run.entries import Entry, make_entry, model_files, unique_names
from tflite_isp.run.litert import Runner
from tflite_isp.score import baseline, leaderboard, report, sources, zoo

FLAGS = flags.FLAGS
flags.DEFINE_string("split", "test", "Dataset split to score on.")
flags.DEFINE_string("runtime", "local", "Runtime source: local, adb[:SERIAL][:DELEGATE] or jetson:HOST.")
flags.DEFINE_string("runtime_json", None, "Runtimes measured elsewhere (schema: tflite_isp/run/records.py).")
flags.DEFINE_integer("tile_margin", None, "Tile overlap per side in packed pixels for images larger than the model "
                                         "(default: the file's receptive radius, at most a quarter of the tile).")
flags.DEFINE_integer("max_images", 0, "Score only the first N images of the split (0: all).")
flags.DEFINE_integer("report_images", 3, "Test images shown as side-by-side crops in the report.")
flags.DEFINE_boolean("baseline", True, "Include the classical LibRaw ISP row.")
flags.DEFINE_boolean("zoo", False, "Train (if needed), export and score the built-in models on the embedded data.")
flags.DEFINE_list("zoo_models", list(zoo.ZOO_MODELS), "Built-in models --zoo trains and scores.")
flags.DEFINE_integer("zoo_steps", 0, "Cap each --zoo model's training at N steps (0: the recipe's schedule).")

FRAMEWORK = "TFLite (LiteRT, XNNPACK)"
CROP = 256  # report crops, output pixels


@dataclass
class ScoreConfig:
    models: tuple
    data: str | None = None
    split: str = "test"
    runtime: str = "local"
    runtime_json: str | None = None
    threads: int = 2
    runs: int = 20
    warmup: int = 3
    tile_margin: int | None = None  # None: the file's receptive radius
    max_images: int = 0
    report_images: int = 3
    baseline: bool = True
    recipe: str | None = None
    out: str | None = None
    bad_files: str = "fail"
    log: bool = True
    benchmark_binary: str | None = None  # device harnesses: see sources.parse
    ssh_config: str | None = None
    board_python: str = "python3"

# --- Data ------------------------------------------------------------------------------------


def open_data(cfg: ScoreConfig, entries):
    """The split to score on: --data, else the first model's training data, else the embedded set."""

    if cfg.data:
        layout, root = layouts.parse_data_flag(cfg.data)
    else:
        layout, root = None, None
        for e in entries:
            run_dir = Path(((e.manifest or {}).get("source") or {}).get("run_dir") or "")
            if run_dir.name and (run_dir / "run.json").is_file():
                data = json.loads((run_dir / "run.json").read_text())["data"]
                if Path(data["root"]).exists():
                    layout, root = data["layout"], Path(data["root"])
                    break
        if layout is None:
            task = entries[0].recipe.task if entries else "isp"
            layout, root = layouts.parse_data_flag(f"embedded:{task}")
    split = layouts.open_split(layout, root, cfg.split, on_bad=cfg.bad_files)
    if cfg.max_images:

        split = replace(split, pairs=split.pairs[:cfg.max_images])
    return split


def check_fits(entry: Entry, split) -> tuple:
    """Refuse a model whose task or levels do not match the data (wrong bit depth, low-light vs ISP);
    returns the per-image (black, white) levels of its normalisation."""

    if entry.recipe.task != split.task:
        raise fail(entry.path, f"a {entry.recipe.task} model cannot score on {split.layout} {split.task} data")
    levels = layouts.input_levels(split, entry.recipe.input)
    if entry.levels:
        for p in split.pairs:
            if p.white and not 1 / 1.5 < p.white / entry.levels["white"] < 1.5:
                raise fail(entry.path, f"normalises in the graph by white level {entry.levels['white']:g} but "
                                       f"{p.raw} has white level {p.white:g} (a different bit depth)")
    return levels


def model_input(entry: Entry, split, mosaic: np.ndarray, black, white, ratio: float) -> np.ndarray:
    """Packed input (h, w, 4) the file takes: normalised per its recipe, or sensor values (--raw_input)."""
    from tflite_isp.data import pipeline  # lazy: TensorFlow loads only when this runs

    if entry.levels:
        return bayer.pack(mosaic, split.pattern, entry.recipe.input.order).astype(np.float32)
    return np.asarray(pipeline.model_input(mosaic, split.pattern, entry.recipe.input, black, white, ratio),
                      np.float32)


def raw_preview_input(split, pair, mosaic: np.ndarray) -> np.ndarray:
    """Canonically packed (R, Gr, Gb, B), black-subtracted and scaled RAW for the report's preview."""

    black = np.asarray(pair.black, np.float32)
    white = pair.white or float(baseline.guess_white(mosaic))
    x = bayer.normalise(bayer.pack(mosaic, split.pattern, bayer.COLOURS), black, white, clip=False) * pair.ratio
    return np.clip(x, 0.0, 1.0)


def crop_box(shape) -> tuple:
    """Centre crop of at most CROP x CROP output pixels, on even coordinates: (y, x, h, w)."""
    h, w = min(shape[0], CROP), min(shape[1], CROP)
    return (shape[0] - h) // 4 * 2, (shape[1] - w) // 4 * 2, h, w


def _cut(img: np.ndarray, box) -> np.ndarray:
    y, x, h, w = box
    return np.ascontiguousarray(img[y:y + h, x:x + w])

# --- Scoring -----------------------------------------------------------------------------------


class Scorer:
    """One scoring call: the split, the runtime source, the rows and the report samples."""

    def __init__(self, cfg: ScoreConfig, split, source):
        self.cfg, self.split, self.source = cfg, split, source
        self.samples: list = []

    def log(self, message: str) -> None:
        if self.cfg.log:
            print(message, file=sys.stderr, flush=True)

    def _progress(self, label: str):

        return Progress(len(self.split.pairs), label, enabled=self.cfg.log)

    def _images(self, label: str):
        """(index, pair, mosaic, target) for each image of the split, with progress."""
        from tflite_isp.data import pipeline  # lazy: TensorFlow loads only when this runs

        bar = self._progress(label)
        for i, pair in enumerate(self.split.pairs):
            mosaic, target = pipeline.read_pair(self.split, pair)
            yield i, pair, mosaic, target
            bar.update(i + 1)
        bar.close()

    def _sample(self, i: int, pair, mosaic, target) -> dict:
        """The report's sample record for image ``i`` (created the first time it is seen)."""

        while len(self.samples) <= i:
            self.samples.append(None)
        if self.samples[i] is None:
            box = crop_box(target.shape)
            preview = report.raw_preview(raw_preview_input(self.split, pair, mosaic), ("R", "Gr", "Gb", "B"))
            self.samples[i] = {"name": Path(pair.raw).name, "box": box, "raw": _cut(preview, box),
                               "target": _cut(target, box), "outputs": {}}
        return self.samples[i]

    def _quality(self, name: str, render) -> dict:
        """Per-image PSNR/SSIM of ``render(index, pair, mosaic) -> H x W x 3`` over the split."""

        per_image, errors = [], []
        for i, pair, mosaic, target in self._images(name):
            out = render(i, pair, mosaic)
            if out.shape != target.shape:
                raise fail(pair.raw, f"{name} gave {out.shape[1]}x{out.shape[0]} for a {target.shape[1]}x"
                                     f"{target.shape[0]} target")
            errors.append(metrics.squared_error(out, target))
            per_image.append({"name": Path(pair.raw).name, "psnr": round(metrics.image_psnr(out, target), 4),
                              "ssim": round(metrics.image_ssim(out, target), 5)})
            if i < self.cfg.report_images:
                sample = self._sample(i, pair, mosaic, target)
                sample["outputs"][name] = _cut(np.clip(out, 0.0, 1.0), sample["box"])
        return {"psnr": round(metrics.mean_psnr([p["psnr"] for p in per_image]), 4),
                "psnr_pooled": round(metrics.pooled_psnr(errors), 4),
                "ssim": round(float(np.mean([p["ssim"] for p in per_image])), 5), "per_image": per_image}

    def quality(self, entry: Entry) -> dict:
        """PSNR/SSIM of one file over the split (whole images, tiled), with scoring time and throughput."""
        from tflite_isp.nets import architectures  # lazy: TensorFlow loads only when this runs

        blacks, whites = check_fits(entry, self.split)
        runner = Runner(entry.path, threads=self.cfg.threads)
        _, th, tw, _ = entry.input_shape
        tile = None if th == -1 or tw == -1 else (th, tw)
        multiple = architectures.input_multiple(entry.recipe.model)
        started = time.perf_counter()

        radius = receptive_field.receptive_radius(flatbuffer.read(entry.path)) if tile else 0.0
        margin = self.cfg.tile_margin
        if margin is None:
            margin = tiling.exact_margin(radius, tile) if tile else 0
        if margin < radius:
            self.log(f"warning: {entry.path}: tile overlap {margin} is below the receptive radius {radius:g} (packed "
                     "px; inf: unbounded): images larger than the tile are stitched approximately")

        def render(i, pair, mosaic):
            x = model_input(entry, self.split, mosaic, blacks[i], whites[i], pair.ratio)
            return tiling.run_tiled(runner, x, tile, margin=margin, multiple=multiple)

        quality = self._quality(entry.name, render)
        seconds = time.perf_counter() - started
        quality["details"] = {"tile": list(tile) if tile else None, "tile_margin": margin,
                              "receptive_radius": radius if math.isfinite(radius) else None,
                              "exact_stitch": margin >= radius,
                              "scoring_seconds": round(seconds, 2),
                              "images_per_s": round(len(self.split.pairs) / seconds, 3), "ops": entry.details["ops"]}
        return quality

    def score_entry(self, entry: Entry) -> dict:
        """A leaderboard row for one file: quality on the split, then its runtime and MAI score."""

        quality = self.quality(entry)
        measured = self.source.measure(entry)
        macs = entry.details["macs"]
        if macs is not None:  # MACs scale with pixels in these fully convolutional nets
            macs *= np.prod(records.FULL_HD_PACKED) / np.prod(entry.input_shape[1:3])
        return leaderboard.new_row(
            entry.name, model=entry.recipe.name, precision=entry.precision, framework=FRAMEWORK,
            path=str(entry.path), size_kb=round(entry.details["size_kb"], 2),
            macs_g=round(macs / 1e9, 3) if macs is not None else None, **quality,
            runtime_ms=round(measured.ms, 3), runtime_source=measured.source,
            score=round(leaderboard.mai_score(quality["psnr"], measured.ms / 1000.0), 4),
            runtime=measured.details)

    def baseline_row(self) -> dict:
        """The classical ISP on the same RAW inputs, scored by the same code, timed here at Full HD."""

        isp = baseline.Baseline()
        name = f"LibRaw {isp.demosaic} (classical ISP)"
        quality = self._quality(name, lambda i, pair, mosaic: baseline.render(pair, self.split, isp))
        timing = baseline.time_full_hd(self.split.pairs[0], self.split, isp)
        return leaderboard.new_row(
            name, model="libraw", precision="—", framework=f"LibRaw {baseline.libraw_version()} (rawpy)",
            baseline=True, **quality, runtime_ms=round(timing["median_ms"], 3), runtime_source="local (LibRaw)",
            score=round(leaderboard.mai_score(quality["psnr"], timing["median_ms"] / 1000.0), 4),
            runtime=timing, details={"describe": isp.describe(self.split)})


def headline() -> str:
    return ("PSNR is the mean of per-image PSNRs (dB, the headline); PSNR pooled is the PSNR of the MSE pooled over "
            "all pixels (MAI 2021 baseline code); SSIM as tf.image.ssim (11x11 Gaussian, sigma 1.5), averaged over "
            "images. Outputs clipped to [0, 1]; whole images, tiled with overlap where larger than the model's input. "
            "MAI score = PSNR + alpha * (0.2 - clip(t)) on the Full HD runtime t.")


def run(cfg: ScoreConfig) -> dict:
    """Score every model (a failing one becomes a failed row), write the leaderboard and report; returns the board."""

    source = sources.parse(cfg.runtime, cfg.runtime_json, threads=cfg.threads, runs=cfg.runs, warmup=cfg.warmup,
                            binary=cfg.benchmark_binary, ssh_config=cfg.ssh_config, board_python=cfg.board_python)
    entries, rows = [], []
    for arg in cfg.models:
        try:
            for path in model_files(arg):
                try:
                    entries.append(make_entry(path, arg, cfg.recipe))
                except UserError as err:
                    rows.append(leaderboard.failed_row(str(path), str(err), path=str(path)))
        except UserError as err:
            rows.append(leaderboard.failed_row(arg, str(err), path=arg))
    unique_names(entries)
    split = open_data(cfg, entries)
    scorer = Scorer(cfg, split, source)
    scorer.log(f"scoring {len(entries)} model(s) on {split.layout}:{split.root} {split.name} "
               f"({len(split.pairs)} images); runtime: {source.label}")
    for entry in entries:
        try:
            row = scorer.score_entry(entry)
            scorer.log(f"{row['name']}: PSNR {row['psnr']:.3f} dB  SSIM {row['ssim']:.4f}  "
                       f"{row['runtime_ms']:.1f} ms  score {row['score']:.3f}")
        except UserError as err:
            row = leaderboard.failed_row(entry.name, str(err), model=entry.recipe.name, precision=entry.precision,
                                         path=str(entry.path))
            scorer.log(f"{entry.name}: FAILED: {err}")
        rows.append(row)
    if cfg.baseline:
        try:
            rows.append(scorer.baseline_row())
        except UserError as err:
            rows.append(leaderboard.failed_row("LibRaw (classical ISP)", str(err), baseline=True))
            scorer.log(f"LibRaw baseline: FAILED: {err}")
    board = {"format": leaderboard.FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
             "data": {"layout": split.layout, "root": str(split.root), "split": split.name,
                      "images": len(split.pairs), "skipped": [list(s) for s in split.skipped]},
             "headline": headline(), "runtime": source.label, "rows": leaderboard.sort_rows(rows)}
    out = Path(cfg.out or f"scores/{time.strftime('%Y%m%d-%H%M%S')}")
    with atomic.staged_dir(out) as tmp:
        leaderboard.write(tmp, board)
        report.write_report(tmp, board, [s for s in scorer.samples if s is not None])
    board["out"] = str(out)
    scorer.log(leaderboard.to_markdown(board))
    scorer.log(f"leaderboard: {out / 'leaderboard.md'}  report: {out / 'report.html'}")
    return board

# --- CLI -------------------------------------------------------------------------------------


def config_from_flags(models) -> ScoreConfig:
    return ScoreConfig(
        models=tuple(models), data=FLAGS.data, split=FLAGS.split, runtime=FLAGS.runtime,
        runtime_json=FLAGS.runtime_json, threads=FLAGS.threads, runs=FLAGS.runs, warmup=FLAGS.warmup,
        tile_margin=FLAGS.tile_margin, max_images=FLAGS.max_images, report_images=FLAGS.report_images,
        baseline=FLAGS.baseline, recipe=FLAGS.recipe, out=FLAGS.out, bad_files=FLAGS.bad_files,
        benchmark_binary=FLAGS.benchmark_binary, ssh_config=FLAGS.ssh_config, board_python=FLAGS.board_python)


def main(argv) -> int:
    def body(_):
        models = argv[1:]
        if FLAGS.zoo:
            if models:
                raise UserError("--zoo trains, exports and scores the built-in models; give no MODEL with it")
            board = zoo.run(config_from_flags(()), run, models=tuple(FLAGS.zoo_models), steps=FLAGS.zoo_steps,
                            seed=FLAGS.seed)
        else:
            if not models:
                raise UserError("usage: python -m tflite_isp.score MODEL [MODEL ...] [--data LAYOUT:PATH] "
                                "(or --zoo)")
            board = run(config_from_flags(models))
        failed = [r for r in board["rows"] if r["status"] != "ok"]
        for r in failed:
            print(f"FAILED {r['name']}: {r['error']}", file=sys.stderr)
        return 1 if failed else 0

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
