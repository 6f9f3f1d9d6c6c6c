"""``python -m tflite_isp.enhance``: camera RAW files to JPEG through an exported model, at any resolution.

    python -m tflite_isp.enhance IMG_0001.ARW -o out.jpg --export_dir runs/sid/export/int8 [--ratio 100 | --ratio auto]
    python -m tflite_isp.enhance raw_folder/ -o out_folder/ --export_dir EXPORT_DIR [--png16] [--max_memory 1000]

The RAW is read with rawpy, packed and normalised as the export's manifest says, amplified by the exposure ratio
(low-light models: given, or predicted by ``--ratio_model``), and run through the export's fixed-shape
``model.tflite`` in overlapping tiles: the tile is the largest whose estimated peak memory fits ``--max_memory``,
made from the file by rewriting its shapes (static shapes keep XNNPACK on every op, which a dynamic file resized
at run time does not), and the overlap is the net's receptive radius read off the graph, so the stitched image
equals whole-frame inference. The output follows the RAW's orientation flag; files are written atomically.
"""
from __future__ import annotations

import json
import math
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import rawpy
from absl import flags

from tflite_isp.apps import ratio as ratio_mod
from tflite_isp.core import atomic, cli
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.progress import Progress
from tflite_isp.data import layouts
from tflite_isp.nets import recipes
from tflite_isp.raw import bayer, rawio
from tflite_isp.run import flatbuffer, tiling, timing
from tflite_isp.run.litert import Runner
from tflite_isp.run.tiling import tile_count

RAW_SUFFIXES = (".dng", ".arw", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".raf", ".orf", ".rw2", ".pef", ".srw",
                ".raw", ".rwl", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mos", ".mrw", ".x3f", ".srf", ".sr2")
TILE_SIDES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32)  # packed pixels, largest first
MB = 2 ** 20


@dataclass(frozen=True)
class Export:
    """An export folder as enhance needs it: the fixed-shape file and the conventions it was made with."""

    folder: Path
    manifest: dict
    spec: object  # recipes.InputSpec
    task: str
    data: bytes  # model.tflite
    tile: tuple  # the file's own packed (h, w)
    multiple: int  # packed sides of a tile are multiples of this
    radius: float  # receptive radius in packed pixels (inf: unbounded, tiles never exact)
    levels: dict | None  # in-graph levels: the file takes sensor values


def load_export(folder) -> Export:
    """Read ``folder``'s manifest and fixed-shape ``model.tflite``; a run directory means its int8 export."""

    folder = Path(folder)
    if (folder / "export" / "int8" / "manifest.json").is_file():
        folder = folder / "export" / "int8"
    mpath, fpath = folder / "manifest.json", folder / "model.tflite"
    if not mpath.is_file() or not fpath.is_file():
        raise fail(folder, "not an export folder (manifest.json and model.tflite; run python -m tflite_isp.export)")
    try:
        manifest = json.loads(mpath.read_text())
        recipe = recipes.Recipe.from_dict(manifest["recipe"], str(mpath))
    except (ValueError, KeyError) as err:
        raise fail(mpath, f"not a tflite_isp export manifest ({err})") from None
    data = fpath.read_bytes()
    model = flatbuffer.parse(data, str(fpath))
    shape = tuple(model.inputs[0].shape_signature)
    if len(shape) != 4 or shape[-1] != 4 or -1 in shape:
        raise fail(fpath, f"input {shape} is not a fixed-shape packed RAW (1, H, W, 4)")
    return Export(folder, manifest, recipe.input, recipe.task, data, shape[1:3], flatbuffer.input_multiple(model),
                  flatbuffer.receptive_radius(model), (manifest.get("input") or {}).get("levels"))

# --- Memory plan ---------------------------------------------------------------------------------------------------


def tile_bytes(export: Export, tile: tuple) -> int:
    """What one tile costs at run time: every activation tensor of the refitted file (an upper bound: LiteRT
    reuses arena memory) plus the weights twice (the file and XNNPACK's packed copy)."""

    model = flatbuffer.parse(refit(export, tile))
    sizes = {t.index: int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize
             for op in model.ops for t in (*op.inputs, *op.outputs) if t is not None and not t.is_constant}
    return sum(sizes.values()) + 2 * len(export.data)


def frame_bytes(packed_hw: tuple) -> int:
    """The frame's own buffers: mosaic (uint16), packed input and padded copy (float32), float output, 8-bit copy."""
    h, w = packed_hw
    return h * w * (4 * 2 + 2 * 4 * 4 + 4 * 3 * 4 + 4 * 3)


def refit(export: Export, tile: tuple) -> bytes:

    return export.data if tuple(tile) == tuple(export.tile) else flatbuffer.refit(export.data, *tile)


def tile_candidates(export: Export, packed_hw: tuple) -> list:
    """Tiles from the whole (padded) frame down, each a size the file can be refitted to, largest first."""
    m = export.multiple
    whole = tuple(-(-n // m) * m for n in packed_hw)
    out = []
    for h, w in [whole] + [(min(s, whole[0]), min(s, whole[1])) for s in TILE_SIDES if s < max(whole)]:
        h, w = -(-h // m) * m, -(-w // m) * m
        if (h, w) not in out and _refittable(export, (h, w)):
            out.append((h, w))
    return out


def _refittable(export: Export, tile: tuple) -> bool:
    try:
        refit(export, tile)
    except ValueError:
        return False
    return True


def plan(export: Export, packed_hw: tuple, budget_mb: float, base_mb: float) -> tuple:
    """(tile, margin, estimated peak MiB, exact): the largest tile that fits ``budget_mb`` with an overlap of at least
    the receptive radius (stitching then equals whole-frame inference), else the largest that fits; else an error."""
    fixed = base_mb + frame_bytes(packed_hw) / MB
    options = []
    for tile in tile_candidates(export, packed_hw):
        margin = margin_for(export, tile)
        whole = all(t >= n for t, n in zip(tile, packed_hw))
        if not whole and min(tile) - 2 * margin < export.multiple:
            continue  # no room left inside the overlap
        options.append((tile, margin, fixed + tile_bytes(export, tile) / MB, whole or margin >= export.radius))
    fits = [o for o in options if o[2] <= budget_mb]
    if not fits:
        need = f"~{options[-1][2]:.0f} MiB" if options else "a tile larger than its overlap"
        raise UserError(f"--max_memory {budget_mb:g} MiB is too small for this frame through {export.folder}: the "
                        f"smallest tile needs {need} (frame buffers {fixed - base_mb:.0f} MiB, process "
                        f"{base_mb:.0f} MiB)")
    return next((o for o in fits if o[3]), fits[0])


def margin_for(export: Export, tile: tuple) -> int:
    """The overlap per side: the receptive radius (exact stitching), at most a quarter of the tile."""
    return tiling.exact_margin(export.radius, tile)

# --- One frame ------------------------------------------------------------------------------------------------------


ORIENT = {0: 0, 3: 2, 5: 1, 6: 3}  # LibRaw sizes.flip -> quarter turns counter-clockwise (np.rot90)


def read_frame(path):
    """(RawFrame, LibRaw flip) of a Bayer RAW; other sensors and unreadable files are one-line errors."""

    frame = rawio.read_raw(path)
    with rawpy.imread(str(path)) as raw:
        flip = int(raw.sizes.flip)
    return frame, flip


def model_input(export: Export, frame, ratio: float) -> np.ndarray:
    """The packed input the file takes: normalised per the recipe and amplified, or sensor values (in-graph levels)."""

    if export.levels:
        return bayer.pack(frame.mosaic, frame.pattern, export.spec.order).astype(np.float32)
    black, white = layouts.file_levels(export.spec, frame.black, frame.white, frame.path)
    return np.asarray(bayer.model_input(frame.mosaic, frame.pattern, export.spec, black, white, ratio), np.float32)


def enhance_frame(export: Export, packed: np.ndarray, tile: tuple, margin: int, threads: int = 2) -> np.ndarray:
    """Packed input (h, w, 4) -> RGB (2h, 2w, 3) in [0, 1], tiled through the refitted file."""

    runner = Runner(refit(export, tile), threads=threads)
    return tiling.run_tiled(runner, packed, tile, margin=margin, multiple=export.multiple)


def oriented(rgb: np.ndarray, flip: int) -> np.ndarray:
    return np.rot90(rgb, ORIENT.get(flip, 0)) if ORIENT.get(flip, 0) else rgb


def png16_bytes(rgb16: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow, behind imageio, writes 16-bit grayscale only): big-endian rows, filter 0, zlib."""

    h, w, _ = rgb16.shape
    rows = np.concatenate([np.zeros((h, 1), np.uint8), rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6)], axis=1)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + \
        chunk(b"IEND", b"")


def write_image(path: Path, rgb: np.ndarray, png16: bool = False) -> list:
    """JPEG (quality 95) at ``path``, plus a 16-bit PNG beside it with ``png16``; each written atomically."""

    written = []
    with atomic.replacing(path) as tmp:
        iio.imwrite(tmp, np.round(rgb * 255).astype(np.uint8), extension=".jpg", quality=95)
    written.append(path)
    if png16:
        png = path.with_suffix(".png")
        atomic.write_bytes(png, png16_bytes(np.round(rgb * 65535).astype(np.uint16)))
        written.append(png)
    return written

# --- Files and folders ----------------------------------------------------------------------------------------------


def jobs(inputs, out: Path) -> list:
    """(RAW path, output JPEG path) pairs: a file to a file, a folder (or several inputs) into a folder."""
    files = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in RAW_SUFFIXES)
            if not found:
                raise fail(p, f"no RAW files here ({', '.join(RAW_SUFFIXES[:6])}, ...)")
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
    """One RAW file to its JPEG: the record of what was done."""

    started = time.perf_counter()
    frame, flip = read_frame(raw)
    if ratio == "auto":

        model = ratio_model_file(ratio_model)
        ratio = ratio_mod.predict_ratio(model, frame.mosaic, frame.black, frame.white, pattern=frame.pattern,
                                        threads=threads)
    packed = model_input(export, frame, ratio or 1.0)
    del frame

    tile, margin, estimate, exact = plan(export, packed.shape[:2], budget_mb, timing.current_rss_mb())
    rgb = oriented(enhance_frame(export, packed, tile, margin, threads), flip)
    written = write_image(out, rgb, png16)

    return {"input": str(raw), "outputs": [str(w) for w in written], "size": [rgb.shape[1], rgb.shape[0]],
            "ratio": ratio, "tile": list(tile), "margin": margin, "exact": exact, "radius": export.radius,
            "tiles": tile_count(packed.shape[:2], tile, margin=margin, multiple=export.multiple),
            "estimated_mb": round(estimate), "peak_rss_mb": round(timing.peak_rss_mb()),
            "seconds": round(time.perf_counter() - started, 2)}


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
                      + f", {r['seconds']} s, peak RSS {r['peak_rss_mb']} MiB)", file=sys.stderr)
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

__all__ = ["Export", "load_export", "plan", "margin_for", "read_frame", "model_input", "enhance_frame", "oriented",
           "write_image", "jobs", "parse_ratio", "ratio_model_file", "enhance_file", "main"]
