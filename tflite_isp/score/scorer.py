"""Score exports on a dataset split: PSNR/SSIM from whole images (MAI protocol), runtime from a source, the
LibRaw baseline row, the leaderboard and report written together."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tflite_isp.core import atomic, metrics
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.progress import Progress
from tflite_isp.data import layouts
from tflite_isp.raw import bayer
from tflite_isp.run import flatbuffer, receptive_field, records, tiling
from tflite_isp.run.entries import Entry, make_entry, model_files, unique_names
from tflite_isp.run.litert import Runner
from tflite_isp.score import baseline, colorize, leaderboard, protocols, report, sources

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
    whole_image_mb: int | None = None  # None: half of physical memory; 0: never run the whole image at once
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
    protocol: str = "mai21"  # see tflite_isp.score.protocols

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
    layouts.check_cfa(entry.path, entry.recipe.input, split)
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
    """Canonically packed (R, Gr, Gb, B), black-subtracted and scaled RAW for the report's preview (a Quad Bayer
    mosaic remosaiced to Bayer first, so the preview is the target's size either way)."""
    black = np.asarray(pair.black, np.float32)
    white = pair.white or float(baseline.guess_white(mosaic))
    mosaic, pattern = baseline.as_bayer(mosaic, split.pattern)
    x = bayer.normalise(bayer.pack(mosaic, pattern, bayer.COLOURS), black, white, clip=False) * pair.ratio
    return np.clip(x, 0.0, 1.0)


def crop_box(shape) -> tuple:
    """Centre crop of at most CROP x CROP output pixels at multiples of 4 (whole CFA repeats): (y, x, h, w)."""
    h, w = min(shape[0], CROP), min(shape[1], CROP)
    return (shape[0] - h) // 8 * 4, (shape[1] - w) // 8 * 4, h, w


def _cut(img: np.ndarray, box) -> np.ndarray:
    y, x, h, w = box
    return np.ascontiguousarray(img[y:y + h, x:x + w])


# --- How quality is produced --------------------------------------------------------------------

WHOLE = "whole image"
NO_DYNAMIC = "no dynamic model"
MB = 2 ** 20
# Whole-image memory: LiteRT resizing a dynamic file holds roughly every activation (as float32) without reuse,
# plus the float input/output copies of Runner and run_tiled. Measured peak RSS growth on this repo's four nets,
# FP32 and INT8 model_none.tflite at 1088 x 1920 packed: 0.7-4.0 GiB, within 0.8-1.6x of this estimate.
IO_BYTES_PER_PIXEL = 256
MEMORY_SAFETY = 1.25


def dynamic_file(entry: Entry) -> tuple:
    """(the dynamic-shape file to score ``entry``'s export with, None) or (None, why there is none)."""
    if -1 in entry.input_shape[1:3]:
        return entry.path, None
    if not entry.manifest:
        return None, "no export manifest beside the file"
    record = entry.manifest.get("model_none")
    if not record:
        return None, "exported without model_none.tflite"
    path = entry.path.parent / str(record.get("file") or "")
    if not record.get("file") or not path.is_file():
        return None, str(record.get("skipped") or record.get("error") or f"{path.name or 'model_none.tflite'} missing")
    return path, None


def whole_image_bytes_per_pixel(model) -> float:
    """Estimated bytes per packed input pixel of running ``model``'s graph on a whole image (see MEMORY_SAFETY)."""
    shape = model.inputs[0].shape
    pixels = max(int(shape[1]), 1) * max(int(shape[2]), 1)
    return MEMORY_SAFETY * (flatbuffer.activation_bytes(model, as_float=True) / pixels + IO_BYTES_PER_PIXEL)


def whole_image_budget(mb) -> float:
    """Bytes a whole-image run may take: ``mb`` MiB, else half of this machine's physical memory."""
    if mb is not None:
        return float(mb) * MB
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2
    except (ValueError, OSError):
        return 4.0 * 2 ** 30


def quality_label(labels) -> str | None:
    """One row's note from its images' notes: the note, or each distinct note with its image count."""
    labels = [x for x in labels if x]
    if not labels:
        return None
    counts: dict = {}
    for x in labels:
        counts[x] = counts.get(x, 0) + 1
    if len(counts) == 1:
        return labels[0]
    return "; ".join(f"{x} ({n} image{'s' if n > 1 else ''})" for x, n in counts.items())


# --- Scoring -----------------------------------------------------------------------------------


class Scorer:
    """One scoring call: the split, the runtime source, the rows and the report samples."""
    def __init__(self, cfg: ScoreConfig, split, source):
        self.cfg, self.split, self.source = cfg, split, source
        self.protocol = protocols.get(cfg.protocol)
        self.local_runtime = cfg.runtime == "local" and not cfg.runtime_json
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
            out, how = out if isinstance(out, tuple) else (out, None)
            if out.shape != target.shape:
                raise fail(pair.raw, f"{name} gave {out.shape[1]}x{out.shape[0]} for a {target.shape[1]}x"
                                     f"{target.shape[0]} target")
            errors.append(metrics.squared_error(out, target))
            per_image.append({"name": Path(pair.raw).name, "psnr": round(metrics.image_psnr(out, target), 4),
                              "ssim": round(metrics.image_ssim(out, target), 5)})
            if how:
                per_image[-1]["quality"] = how
            if i < self.cfg.report_images:
                sample = self._sample(i, pair, mosaic, target)
                sample["outputs"][name] = _cut(np.clip(out, 0.0, 1.0), sample["box"])
        return {"psnr": round(metrics.mean_psnr([p["psnr"] for p in per_image]), 4),
                "psnr_pooled": round(metrics.pooled_psnr(errors), 4),
                "ssim": round(float(np.mean([p["ssim"] for p in per_image])), 5), "per_image": per_image,
                "quality": quality_label([p.get("quality") for p in per_image]) or WHOLE}

    def quality(self, entry: Entry) -> dict:
        """PSNR/SSIM of one export over the split, with how it was produced, scoring time and throughput.

        As the MAI 2021 organisers scored submissions: the export's dynamic-shape ``model_none.tflite`` on each
        whole image (padded to the net's input multiple only), tiles only where that would take more than
        ``whole_image_mb``: then the fixed ``model.tflite`` (the file that is timed) with an overlap of its
        receptive radius. Exports without a dynamic file (older folders, --nomodel_none, selective
        quantisation) fall back to the fixed file alone, padded or tiled, and the row says so."""
        from tflite_isp.nets import architectures  # lazy: TensorFlow loads only when this runs

        blacks, whites = check_fits(entry, self.split)
        multiple, scale = architectures.input_multiple(entry.recipe.model), entry.recipe.input.scale
        fixed_tile = None if -1 in entry.input_shape[1:3] else tuple(entry.input_shape[1:3])
        dynamic, why_not = dynamic_file(entry)
        started = time.perf_counter()
        fixed_model = flatbuffer.read(entry.path)
        # the tiled path: the fixed file at its size, else a dynamic file at Full HD tiles
        tile = fixed_tile or records.full_hd_packed(entry.input_shape[-1])
        radius = receptive_field.receptive_radius(fixed_model)
        margin = self.cfg.tile_margin
        if margin is None:
            margin = tiling.exact_margin(radius, tile)
        if margin < radius:
            self.log(f"warning: {entry.path}: tile overlap {margin} is below the receptive radius {radius:g} (packed "
                     "px; inf: unbounded): images larger than the tile are stitched approximately")
        per_pixel = whole_image_bytes_per_pixel(fixed_model)
        budget = whole_image_budget(self.cfg.whole_image_mb)
        runners: dict = {}

        def runner(path):
            if path not in runners:
                runners[path] = Runner(path, threads=self.cfg.threads)
            return runners[path]

        def render(i, pair, mosaic):
            x = model_input(entry, self.split, mosaic, blacks[i], whites[i], pair.ratio)
            h, w = x.shape[:2]
            whole = tiling.round_up(h, multiple) * tiling.round_up(w, multiple)
            if dynamic is not None and per_pixel * whole <= budget:
                return tiling.run_tiled(runner(dynamic), x, None, multiple=multiple, scale=scale), WHOLE
            path = entry.path if fixed_tile else dynamic
            out = tiling.run_tiled(runner(path), x, tile, margin=margin, multiple=multiple, scale=scale)
            how = tiling.describe((h, w), tile, margin=margin, radius=radius, multiple=multiple)
            return out, how + (f" ({NO_DYNAMIC})" if dynamic is None else "")

        quality = self._quality(entry.name, render)
        seconds = time.perf_counter() - started
        used = [p.name for p in runners]
        quality["details"] = {
            "quality": quality["quality"], "quality_files": used,
            "dynamic_file": dynamic.name if dynamic is not None else None, "no_dynamic_file": why_not,
            "tile": list(fixed_tile) if fixed_tile else None, "tile_margin": margin,
            "receptive_radius": round(radius, 2) if np.isfinite(radius) else None, "exact_stitch": margin >= radius,
            "whole_image_budget_mb": round(budget / MB), "whole_image_mb_per_mpix": round(per_pixel * 1e6 / MB, 1),
            "scoring_seconds": round(seconds, 2),
            "images_per_s": round(len(self.split.pairs) / seconds, 3), "ops": entry.details["ops"]}
        return quality

    def score_entry(self, entry: Entry) -> dict:
        """A leaderboard row for one file: quality on the split, then its runtime and MAI score."""
        quality = self.quality(entry)
        quality["details"]["lint"] = ((entry.manifest or {}).get("file") or {}).get("lint")  # the export's findings
        measured = self.source.measure(entry)
        macs = entry.details["macs"]
        if macs is not None:  # MACs scale with pixels in these fully convolutional nets
            macs *= np.prod(records.full_hd_packed(entry.input_shape[-1])) / np.prod(entry.input_shape[1:3])
        return leaderboard.new_row(
            entry.name, model=entry.recipe.name, precision=entry.precision, framework=FRAMEWORK,
            path=str(entry.path), size_kb=round(entry.details["size_kb"], 2),
            macs_g=round(macs / 1e9, 3) if macs is not None else None, **quality,
            runtime_ms=round(measured.ms, 3), runtime_source=protocols.runtime_label(self.protocol, measured.source,
                                                                                    self.local_runtime),
            score=protocols.score(self.protocol, quality["psnr"], measured.ms / 1000.0), runtime=measured.details)

    def baseline_row(self) -> dict:
        """The classical ISP on the same RAW inputs, scored by the same code, timed here at Full HD."""
        isp = baseline.Baseline()
        remosaic = " on the pixel-swap Bayer remosaic" if bayer.is_quad(self.split.pattern) else ""
        name = f"LibRaw {isp.demosaic}{remosaic} (classical ISP)"
        quality = self._quality(name, lambda i, pair, mosaic: baseline.render(pair, self.split, isp))
        timing = baseline.time_full_hd(self.split.pairs[0], self.split, isp)
        return leaderboard.new_row(
            name, model="libraw", precision="—", framework=f"LibRaw {baseline.libraw_version()} (rawpy)",
            baseline=True, **quality, runtime_ms=round(timing["median_ms"], 3), runtime_source="local (LibRaw)",
            score=protocols.score(self.protocol, quality["psnr"], timing["median_ms"] / 1000.0),
            runtime=timing, details={"describe": isp.describe(self.split)})


def headline(protocol: protocols.Protocol) -> str:
    return ("PSNR is the mean of per-image PSNRs (dB, the headline); PSNR pooled is the PSNR of the MSE pooled over "
            "all pixels (MAI 2021 baseline code); SSIM as tf.image.ssim (11x11 Gaussian, sigma 1.5), averaged over "
            "images. Outputs clipped to [0, 1]. Quality as MAI 2021 scored submissions: the export's dynamic-shape "
            "model_none.tflite on each whole image, tiled (overlap = receptive radius) only past the memory budget; "
            "the quality column says how each row's was produced. Runtime: model.tflite at Full HD. "
            f"Protocol {protocol.name} ({protocol.title}, {protocol.source}): {protocol.score_rule}")


def run(cfg: ScoreConfig) -> dict:
    """Score every model (a failing one becomes a failed row), write the leaderboard and report; returns the board."""
    protocol = protocols.get(cfg.protocol)
    runtime = protocols.runtime_spec(protocol, cfg.runtime)
    source = sources.parse(runtime, cfg.runtime_json, threads=cfg.threads, runs=cfg.runs, warmup=cfg.warmup,
                            binary=cfg.benchmark_binary, ssh_config=cfg.ssh_config, board_python=cfg.board_python)
    source.label = protocols.runtime_label(protocol, source.label, runtime == "local" and not cfg.runtime_json)
    entries, rows = [], []
    for arg in cfg.models:
        try:
            found = []
            for path in model_files(arg):
                try:
                    found.append(make_entry(path, arg, cfg.recipe))
                except UserError as err:
                    rows.append(leaderboard.failed_row(str(path), str(err), path=str(path)))
            if found:
                entries += protocols.submissions(protocol, found, arg, Path(arg).is_file())
        except UserError as err:
            rows.append(leaderboard.failed_row(arg, str(err), path=arg))
    unique_names(entries)
    split = open_data(cfg, entries)
    scorer = Scorer(cfg, split, source)
    scorer.log(f"scoring {len(entries)} model(s) on {split.layout}:{split.root} {split.name} "
               f"({len(split.pairs)} images); runtime: {source.label}")
    colour_task = split.task == "colorize"
    for entry in entries:
        try:
            row = colorize.score_entry(scorer, entry) if colour_task else scorer.score_entry(entry)
            score = f"  score {row['score']:.3f}" if row["score"] is not None else ""
            scorer.log(f"{row['name']}: PSNR {row['psnr']:.3f} dB  SSIM {row['ssim']:.4f}  "
                       f"{row['runtime_ms']:.1f} ms{score}")
        except UserError as err:
            row = leaderboard.failed_row(entry.name, str(err), model=entry.recipe.name, precision=entry.precision,
                                         path=str(entry.path))
            scorer.log(f"{entry.name}: FAILED: {err}")
        rows.append(row)
    if cfg.baseline:
        name = colorize.GREY if colour_task else "LibRaw (classical ISP)"
        try:
            rows.append(colorize.grey_row(scorer) if colour_task else scorer.baseline_row())
        except UserError as err:
            rows.append(leaderboard.failed_row(name, str(err), baseline=True))
            scorer.log(f"{name} baseline: FAILED: {err}")
    board = {"format": leaderboard.FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
             "data": {"layout": split.layout, "root": str(split.root), "split": split.name, "task": split.task,
                      "images": len(split.pairs), "skipped": [list(s) for s in split.skipped]},
             "headline": colorize.headline(rows) if colour_task else headline(protocol),
             "protocol": protocol.to_dict(), "runtime": source.label,
             "rows": leaderboard.sort_rows(rows)}
    out = Path(cfg.out or f"scores/{time.strftime('%Y%m%d-%H%M%S')}")
    with atomic.staged_dir(out) as tmp:
        leaderboard.write(tmp, board)
        report.write_report(tmp, board, [s for s in scorer.samples if s is not None])
    board["out"] = str(out)
    scorer.log(leaderboard.to_markdown(board))
    scorer.log(f"leaderboard: {out / 'leaderboard.md'}  report: {out / 'report.html'}")
    return board
