"""``python -m tflite_isp.enhance``: camera RAW files to JPEG through an exported model, at any resolution.

    python -m tflite_isp.enhance IMG_0001.ARW -o out.jpg --export_dir runs/sid/export/int8 [--ratio 100 | --ratio auto]
    python -m tflite_isp.enhance raw_folder/ -o out_folder/ --export_dir EXPORT_DIR [--png16] [--max_memory 1000]

The RAW is read with rawpy, packed and normalised as the export's manifest says, amplified by the exposure ratio
(low-light models: given, or predicted by ``--ratio_model``), and run through the export's fixed-shape
``model.tflite`` in overlapping tiles: the tile is the largest whose estimated peak memory fits ``--max_memory``,
made from the file by rewriting its shapes (static shapes keep XNNPACK on every op, which a dynamic file resized
at run time does not), and the overlap is the net's receptive radius read off the graph, so the stitched image
equals whole-frame inference. The output follows the RAW's orientation flag; files are written atomically.

The memory plan is this process's resident size measured before each frame, plus the largest phase of that frame
(decode, input, tiles, writing: the arrays held, XNNPACK's indirection buffers included in a tile's share), with
slack; the frame's size comes from the file's header, so a budget too small is an error before decoding. After
the first tile, its measured cost is checked against the plan, and the tiles re-planned smaller if needed.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import rawpy
from absl import flags

from tflite_isp.apps.exported import Export, load_export
from tflite_isp.apps.images import _band_rows, oriented, to_uint8, write_image, write_jpeg, write_png16
from tflite_isp.apps.memory_plan import (
    Plan,
    frame_phases,
    margin_for,
    peak_mb,
    plan,
    refit,
    release_free_memory,
    runtime_bytes,
    tile_bytes,
)
from tflite_isp.core import cli
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.progress import Progress
from tflite_isp.data import layouts
from tflite_isp.raw import bayer, rawio
from tflite_isp.run import tiling, timing
from tflite_isp.run.litert import Runner
from tflite_isp.run.tiling import tile_count

# --- One frame ------------------------------------------------------------------------------------------------------




def read_frame(path):
    """(RawFrame, LibRaw flip) of a Bayer RAW; other sensors and unreadable files are one-line errors."""

    frame = rawio.read_raw(path)
    with rawpy.imread(str(path)) as raw:
        flip = int(raw.sizes.flip)
    return frame, flip


def model_input(export: Export, frame, ratio: float) -> np.ndarray:
    """The packed input the file takes: normalised per the recipe and amplified, or sensor values (in-graph levels).
    Worked a band of rows at a time into one float32 array (the same values as the whole-frame expression), so the
    float temporaries of normalising stay small."""

    mosaic = frame.mosaic
    p = bayer.period(frame.pattern)
    h, w = mosaic.shape[0] // p, mosaic.shape[1] // p
    if export.levels:
        def convert(part):
            return bayer.pack(part, frame.pattern, export.spec.order).astype(np.float32)
    else:
        black, white = layouts.file_levels(export.spec, frame.black, frame.white, frame.path)

        def convert(part):
            return np.asarray(bayer.model_input(part, frame.pattern, export.spec, black, white, ratio), np.float32)
    out = np.empty((h, w, p * p), np.float32)
    rows = _band_rows(w * p * p * 8)  # float64 temporaries where the levels are float64
    for r in range(0, h, rows):
        out[r:r + rows] = convert(mosaic[p * r:p * (r + rows), :p * w])
    return out




class OverPlan(Exception):
    """The first tile took more memory than planned (``used_mb``: the interpreter and that call, measured)."""

    def __init__(self, used_mb: float):
        super().__init__(f"the first tile took {used_mb:.0f} MiB")
        self.used_mb = used_mb


def enhance_frame(export: Export, packed: np.ndarray, tile: tuple, margin: int, threads: int = 2, *,
                  first_tile=None) -> np.ndarray:
    """Packed input (h, w, C) -> RGB (sh, sw, 3) in [0, 1] (s: the recipe's scale), tiled through the refitted
    file. ``first_tile(used_mb)`` is called once the first tile has run, with the memory (MiB) the interpreter and
    that call took, measured; it may raise (:class:`OverPlan`) to stop before the stitched output is allocated."""

    before, peak_before = timing.current_rss_mb(), timing.peak_rss_mb()
    runner = Runner(refit(export, tile), threads=threads)
    pending = [first_tile] if first_tile else []

    def run(x):
        y = runner(x)
        if pending:
            peak = timing.peak_rss_mb()
            pending.pop()((peak if peak > peak_before else timing.current_rss_mb()) - before)
        return y

    return tiling.run_tiled(run, packed, tile, margin=margin, multiple=export.multiple, scale=export.spec.scale)





















# --- Files and folders ----------------------------------------------------------------------------------------------


def jobs(inputs, out: Path) -> list:
    """(RAW path, output JPEG path) pairs: a file to a file, a folder (or several inputs) into a folder."""
    files = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in rawio.RAW_SUFFIXES)
            if not found:
                raise fail(p, f"no RAW files here ({', '.join(rawio.RAW_SUFFIXES[:6])}, ...)")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise fail(p, "no such file or folder")
    if len(files) == 1 and not any(Path(a).is_dir() for a in inputs) and out.suffix.lower() in (".jpg", ".jpeg"):
        return [(files[0], out)]
    if out.suffix.lower() in (".jpg", ".jpeg"):
        raise fail(out, f"{len(files)} inputs need an output folder, not a .jpg file")
    return [(f, out / (f.stem + ".jpg")) for f in files]


def parse_ratio(text: str | None, task: str):
    """None (no amplification), a float > 0, or "auto"."""
    if text is None or text == "":
        return None
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"--ratio must be a number > 0 or auto, not {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise UserError(f"--ratio must be > 0, not {text}")
    return value

# --- CLI ----------------------------------------------------------------------------------------------------------


def _define_flags():

    flags.DEFINE_string("export_dir", None, "The export folder to run (manifest.json and model.tflite, from "
                                            "python -m tflite_isp.export); --model is accepted as its old spelling.")
    flags.DEFINE_string("output", None, "Output JPEG (one input) or folder (several inputs or a folder).",
                        short_name="o")
    flags.DEFINE_string("ratio", None, "Exposure ratio for a low-light model: a number > 0, or auto (--ratio_model).")
    flags.DEFINE_string("ratio_model", None, "Ratio predictor export (python -m tflite_isp.ratio) for --ratio auto.")
    flags.DEFINE_float("max_memory", 1000, "Peak memory budget in MiB: the tile is the largest that fits.")
    flags.DEFINE_boolean("png16", False, "Also write a 16-bit PNG beside each JPEG.")


def export_folder(flag_values) -> str:
    """``--export_dir``; ``--model`` is its old spelling (in train, ``--model`` names a recipe), still accepted."""
    folder = flag_values.export_dir
    if flag_values["model"].present:
        if folder:
            raise UserError("give the export folder once, as --export_dir (--model is its old spelling)")
        folder = flag_values.model
    if not folder:
        raise UserError("--export_dir EXPORT_DIR is required (an export folder made by python -m tflite_isp.export)")
    return folder


def ratio_model_file(path) -> Path:
    """The ratio predictor's ``.tflite`` for ``--ratio_model`` (its folder or the file), checked before any work:
    a ratio manifest beside it (python -m tflite_isp.ratio writes one) and the file itself."""
    from tflite_isp.apps import ratio as ratio_mod  # lazy: the ratio predictor only for --ratio auto

    path = Path(path)
    if path.is_dir():
        manifest = ratio_mod.load_manifest(path / "model.tflite")
        path = path / ((manifest.get("files") or {}).get("fp32") or "model.tflite")
    elif not path.exists():
        raise fail(path, "no such ratio predictor (--ratio_model: a folder made by python -m tflite_isp.ratio)")
    else:
        ratio_mod.load_manifest(path)
    if not path.is_file():
        raise fail(path, "the ratio predictor's manifest is here but its .tflite file is missing")
    return path


def enhance_file(export: Export, raw: Path, out: Path, *, ratio, budget_mb: float, threads: int, png16: bool,
                 ratio_model=None) -> dict:
    """One RAW file to its JPEG: the record of what was done.

    The memory plan starts from this process's resident size now and the frame's size read from the file's header,
    so a budget that cannot be met is one error before the image is decoded or anything written. Once the first
    tile has run, what it really took is compared with the plan; if the rest would then exceed the budget, the
    tiles are re-planned with every tile's share scaled by that error and the frame restarted."""

    started = time.perf_counter()
    release_free_memory()  # what an earlier file left in the allocator's free lists is not this file's base
    base = timing.current_rss_mb()
    height, width, flip, raw_pixels = rawio.raw_size(raw)
    s = export.spec.scale
    hw = (height // s, width // s)
    options = {"raw_pixels": raw_pixels, "ratio_auto": ratio == "auto", "where": raw}
    chosen = plan(export, hw, budget_mb, base, **options)
    frame = rawio.read_raw(raw)
    if bayer.cfa_kind(frame.pattern) != export.spec.cfa:
        raise fail(raw, f"is {frame.pattern} RAW but {export.folder} takes {export.spec.cfa} RAW (input.cfa = "
                        f"\"{export.spec.cfa}\")")
    if frame.mosaic.shape != (height, width):  # decoded otherwise than the header said: plan the real size
        hw = (frame.mosaic.shape[0] // s, frame.mosaic.shape[1] // s)
        chosen = plan(export, hw, budget_mb, base, **options)
    if ratio == "auto":

        from tflite_isp.apps import ratio as ratio_mod  # lazy: the ratio predictor only for --ratio auto
        model = ratio_model_file(ratio_model)
        ratio = ratio_mod.predict_ratio(model, frame.mosaic, frame.black, frame.white, pattern=frame.pattern,
                                        threads=threads)
    packed = model_input(export, frame, ratio or 1.0)
    del frame
    replans, scale, rgb = [], 1.0, None
    while rgb is None:  # each re-plan takes a smaller tile or is a one-line error: this ends
        def check(used_mb, p=chosen):
            if used_mb > p.tile_mb and peak_mb(p.base_mb, p.phases, used_mb) > budget_mb:
                raise OverPlan(used_mb)

        try:
            rgb = enhance_frame(export, packed, chosen.tile, chosen.margin, threads, first_tile=check)
        except OverPlan as over:
            scale *= over.used_mb / chosen.tile_mb
            replans.append({"tile": list(chosen.tile), "planned_mb": round(chosen.tile_mb, 1),
                            "measured_mb": round(over.used_mb, 1)})
            release_free_memory()
            chosen = plan(export, hw, budget_mb, base, tile_scale=scale, smaller_than=chosen.tile, **options)
    tiles = tile_count(hw, chosen.tile, margin=chosen.margin, multiple=export.multiple)
    del packed
    release_free_memory()  # the interpreter's buffers, freed: the writing phases are planned without them
    rgb = oriented(rgb, flip)
    size = [rgb.shape[1], rgb.shape[0]]
    rgb8 = to_uint8(rgb)
    png = write_png16(out.with_suffix(".png"), rgb) if png16 else None
    del rgb  # the float frame: the JPEG is encoded from the 8-bit copy alone
    written = [write_jpeg(out, rgb8)] + ([png] if png else [])
    return {"input": str(raw), "outputs": [str(w) for w in written], "size": size, "ratio": ratio,
            "tile": list(chosen.tile), "margin": chosen.margin, "exact": chosen.exact, "radius": export.radius,
            "tiles": tiles, "base_mb": round(base), "estimated_mb": round(chosen.estimate_mb), "replans": replans,
            "peak_rss_mb": round(timing.peak_rss_mb()), "seconds": round(time.perf_counter() - started, 2)}


def approximate_reason(record: dict) -> str:
    """Why a frame's tiles were stitched approximately (an overlap below the radius, or an unbounded one)."""
    if not math.isfinite(record["radius"]):
        return ("the net's receptive field is unbounded (a global statistic or an op without a radius rule): tile "
                "seams can differ from whole-frame inference; a larger --max_memory allows one whole-frame tile")
    return (f"the overlap {record['margin']} is below the net's receptive radius {record['radius']:g} (packed px): "
            "tile seams can differ slightly from whole-frame inference; a larger --max_memory allows exact tiles")


def main(argv) -> int:

    FLAGS = flags.FLAGS

    def body(_):
        inputs = argv[1:]
        if not inputs or not FLAGS.output:
            raise UserError("usage: python -m tflite_isp.enhance RAW_OR_FOLDER [...] -o OUT.jpg|OUT_DIR "
                            "--export_dir EXPORT_DIR [--ratio R|auto]")
        export = load_export(export_folder(FLAGS))
        ratio = parse_ratio(FLAGS.ratio, export.task)
        if export.task == "lowlight" and ratio is None:
            raise UserError(f"{export.folder} is a low-light model: give the exposure ratio (--ratio 100) or "
                            "--ratio auto with --ratio_model")
        if export.task != "lowlight" and ratio is not None:
            raise UserError(f"--ratio applies to low-light models; {export.folder} is a {export.task} model")
        if ratio == "auto" and not FLAGS.ratio_model:
            raise UserError("--ratio auto needs --ratio_model RATIO_EXPORT (made by python -m tflite_isp.ratio)")
        if ratio == "auto":
            ratio_model_file(FLAGS.ratio_model)  # a wrong path is one error before any file is read
        if FLAGS.max_memory <= 0:
            raise UserError(f"--max_memory must be > 0 MiB, not {FLAGS.max_memory:g}")
        todo = jobs(inputs, Path(FLAGS.output))
        Path(todo[0][1]).parent.mkdir(parents=True, exist_ok=True)
        bar = Progress(len(todo), "enhance")
        failed = 0
        for i, (raw, out) in enumerate(todo):
            try:
                r = enhance_file(export, raw, out, ratio=ratio, budget_mb=FLAGS.max_memory, threads=FLAGS.threads,
                                 png16=FLAGS.png16, ratio_model=FLAGS.ratio_model)
                print(f"{raw} -> {out} ({r['size'][0]}x{r['size'][1]}, {r['tiles']} tile(s) of "
                      f"{r['tile'][0]}x{r['tile'][1]} margin {r['margin']}" + (f", ratio {r['ratio']:.4g}" if
                                                                                r['ratio'] else "")
                      + f", {r['seconds']} s, peak RSS {r['peak_rss_mb']} MiB, planned {r['estimated_mb']} MiB)",
                      file=sys.stderr)
                for rp in r["replans"]:
                    print(f"warning: {raw}: the first {rp['tile'][0]}x{rp['tile'][1]} tile took "
                          f"{rp['measured_mb']:.0f} "
                          f"MiB where {rp['planned_mb']:.0f} were planned; re-planned to fit --max_memory",
                          file=sys.stderr)
                if not r["exact"]:
                    print(f"warning: {raw}: {approximate_reason(r)}", file=sys.stderr)
            except UserError as err:
                if len(todo) == 1:
                    raise
                failed += 1
                print(f"error: {err}", file=sys.stderr)
            bar.update(i + 1)
        bar.close()
        return 1 if failed else 0

    return cli.run_command(body)


def entry():

    _define_flags()
    cli.entry(main)


if __name__ == "__main__":
    entry()


__all__ = ["Export", "OverPlan", "Plan", "enhance_file", "enhance_frame", "frame_phases", "jobs", "load_export",
           "main", "margin_for", "model_input", "oriented", "parse_ratio", "peak_mb", "plan", "ratio_model_file",
           "read_frame", "runtime_bytes", "tile_bytes", "to_uint8", "write_image", "write_jpeg", "write_png16"]
