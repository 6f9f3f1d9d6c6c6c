"""Dataset layouts (mai21, zurich, sid): file pairs per split, checked before training.

Each layout turns a root folder into a :class:`Split`: RAW/target file pairs with the CFA
pattern, levels and amplification ratio of each RAW. Every file is checked up front (PNG
header and bit depth, truncation, sizes, rawpy decode) so a corrupt file is reported by
name, then skipped and counted or fatal by choice, never trained on silently. The tf.data
pipeline that streams a Split lives in :mod:`tflite_isp.pipeline`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

from tflite_isp.core import atomic
from tflite_isp.core.cache import cache_dir
from tflite_isp.core.errors import UserError, fail
from tflite_isp.data.photos import IMAGE_EXTS, file_split
from tflite_isp.raw import bayer, rawio
from tflite_isp.raw import render as render_mod

LAYOUTS = ("mai21", "zurich", "sid", "images")
SPLITS = ("train", "val", "test")
SID_MAX_RATIO = 300.0


@dataclass(frozen=True)
class Pair:
    raw: str
    target: str
    ratio: float = 1.0
    black: tuple = (0.0, 0.0, 0.0, 0.0)  # per colour, bayer.COLOURS order; from the file or sensor.json
    white: float = 0.0  # 0 when unknown (a bare PNG without sensor.json)
    shape: tuple = (0, 0)  # RAW mosaic (height, width), known once checked
    target_bits: int = 8


@dataclass(frozen=True)
class Split:
    layout: str
    root: str
    name: str
    pattern: str
    raw_format: str  # "png" (16-bit Bayer PNG, decoded by TF) or "rawpy"
    pairs: tuple
    skipped: tuple = field(default=())  # (path, reason) of bad pairs left out

    @property
    def task(self) -> str:
        return task_of(self.layout)

    def decoded_bytes(self) -> int:
        """Memory that the decoded split takes: uint16 mosaics plus 8- or 16-bit RGB targets."""
        per_target = 6 if any(p.target_bits > 8 for p in self.pairs) else 3
        return sum(h * w * (2 + per_target) for h, w in (p.shape for p in self.pairs))

    def report(self) -> dict:
        return {"layout": self.layout, "root": self.root, "split": self.name, "pairs": len(self.pairs),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped]}

def task_of(layout: str) -> str:
    """The task a layout's pairs train: SID's low-light RAW, plain RGB images' colourisation, else ISP."""
    return {"sid": "lowlight", "images": "colorize"}.get(layout, "isp")

# --- File checks --------------------------------------------------------------------------


def png_header(path) -> tuple:
    """(width, height, bit_depth, colour_type) from the IHDR chunk; raises if not a whole PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(size - 12, 0))
        tail = f.read(12)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    if tail[4:8] != b"IEND":
        raise ValueError("truncated PNG (no IEND chunk at the end)")
    width, height, depth, ctype = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, ctype


def image_size(path) -> tuple:
    """(width, height, channels, bits) of a PNG or JPEG target, checking the file is complete."""
    if str(path).lower().endswith(".png"):
        w, h, depth, ctype = png_header(path)
        return w, h, {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype, 0), depth

    with open(path, "rb") as f:
        f.seek(-2, os.SEEK_END)
        if f.read(2) != b"\xff\xd9":
            raise ValueError("truncated JPEG (no end-of-image marker)")
    with Image.open(path) as im:
        return im.width, im.height, len(im.getbands()), 8


def _check_png_raw(path) -> tuple:
    w, h, depth, ctype = png_header(path)
    if ctype != 0 or depth != 16:
        raise ValueError(f"RAW PNG must be 16-bit single-channel Bayer, found {depth}-bit colour type {ctype}")
    if w % 2 or h % 2:
        raise ValueError(f"RAW size {w}x{h} is odd; a Bayer mosaic needs even width and height")
    return w, h


def _check_target(path, raw_wh) -> int:
    """Check an RGB target matches its RAW's size; returns its bit depth."""
    w, h, c, bits = image_size(path)
    if c != 3:
        raise ValueError(f"target must be RGB, found {c} channel(s)")
    if (w, h) != tuple(raw_wh):
        raise ValueError(f"target is {w}x{h} but its RAW is {raw_wh[0]}x{raw_wh[1]}")
    return bits


def _screen(candidates, check, on_bad: str, split_name: str):
    """Apply ``check(pair) -> Pair`` to each candidate; keep good ones, list or raise on bad ones."""
    good, bad = [], []
    total = len(candidates)
    for i, pair in enumerate(candidates):
        try:
            good.append(check(pair))
        except (ValueError, OSError, UserError) as err:
            path = getattr(err, "path", None) or pair.raw
            reason = getattr(err, "problem", None) or str(err)
            if on_bad == "fail":
                raise fail(path, f"{reason} (use --bad_files=skip to leave bad files out)") from None
            bad.append((path, reason))
        if total > 200 and (i + 1) % 200 == 0:
            print(f"checked {i + 1}/{total} {split_name} pairs", file=sys.stderr)
    if bad:
        print(f"warning: skipped {len(bad)} bad pair(s) in {split_name}; first: {bad[0][0]}: {bad[0][1]}",
              file=sys.stderr)
    return good, bad

# --- Layouts ------------------------------------------------------------------------------


def _numbered(folder: Path, exts) -> dict:
    return {int(p.stem): p for p in folder.iterdir() if p.stem.isdigit() and p.suffix.lower() in exts}


def _sensor(root: Path) -> dict:
    """Optional ``sensor.json`` (pattern, black, white) for PNG layouts; MAI's own data has none."""
    path = root / "sensor.json"
    if not path.is_file():
        return {"pattern": "RGGB"}  # MAI 2021 / ZRR code treat their mosaics as RGGB
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise fail(path, f"not valid JSON ({err})") from None


def _png_layout(root: Path, split: str, raw_dir: str, target_dir: str, target_exts, on_bad: str, layout: str):
    folder = root / split / raw_dir
    if not folder.is_dir():
        raise fail(folder, f"{layout} split folder not found (expected <root>/{split}/{raw_dir}/<i>.png)")
    raws = _numbered(folder, {".png"})
    targets = _numbered(root / split / target_dir, target_exts) if (root / split / target_dir).is_dir() else {}
    if not raws:
        raise fail(folder, f"empty split: no <i>.png RAW files in {split}")
    sensor = _sensor(root)
    pattern = bayer.check_pattern(sensor.get("pattern", "RGGB"))
    black = sensor.get("black", 0)
    black = tuple(float(b) for b in (black if isinstance(black, list) else [black] * 4))
    white = float(sensor.get("white", 0))
    candidates = [Pair(str(raws[i]), str(targets.get(i, root / split / target_dir / f"{i}{sorted(target_exts)[0]}")),
                       1.0, black, white) for i in sorted(raws)]

    def check(pair: Pair) -> Pair:
        wh = _check_png_raw(pair.raw)
        if not Path(pair.target).is_file():
            raise ValueError(f"no target image {pair.target}")
        try:
            bits = _check_target(pair.target, wh)
        except ValueError as err:
            raise fail(pair.target, str(err)) from None
        return replace(pair, shape=(wh[1], wh[0]), target_bits=bits)

    good, bad = _screen(candidates, check, on_bad, f"{layout}:{split}")
    return Split(layout, str(root), split, pattern, "png", tuple(good), tuple(bad))


def sid_exposure(path) -> float:
    """Exposure time in seconds from a SID file name such as ``10019_00_0.033s.ARW``."""
    m = re.search(r"_([0-9]*\.?[0-9]+)s\.[A-Za-z0-9]+$", Path(path).name)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"cannot read an exposure time from the file name {Path(path).name!r}")
    return float(m.group(1))


def sid_ratio(short, long) -> float:
    """SID amplification ratio: min(long exposure / short exposure, 300)."""
    return min(sid_exposure(long) / sid_exposure(short), SID_MAX_RATIO)


def _sid_list(root: Path, split: str) -> Path:
    lists = sorted(root.glob(f"*_{split}_list.txt"))
    if not lists:
        raise fail(root, f"no SID list file *_{split}_list.txt (columns: short long ISO F)")
    return lists[0]


SID_GT_FORMAT = "png16:round(rgb*65535)"  # how a rendering is stored; change it to retire old cached files


def sid_gt_key(long_path: Path, settings: dict) -> str:
    """Cache key of one rendering: the file (path, size, mtime), every render setting, LibRaw's version, the format."""

    st = long_path.stat()
    what = {"file": str(long_path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "render": settings,
            "libraw": list(rawpy.libraw_version), "format": SID_GT_FORMAT}
    return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]


def sid_ground_truth(long_path, **render) -> Path:
    """rawpy rendering of a long exposure (SID's GT recipe; ``render``: render.render_srgb's settings) as 16-bit PNG,
    computed once per file and settings, and cached."""

    long_path = Path(long_path).resolve()
    out = cache_dir() / "sid_gt" / f"{sid_gt_key(long_path, render_mod.srgb_settings(**render))}.png"
    if out.is_file():
        return out
    rgb = render_mod.render_srgb(long_path, **render)
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    data = tf.io.encode_png(np.round(rgb * 65535.0).astype(np.uint16)).numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, data)
    return out


def _check_rendered_size(gt: Path, pair: Pair, shape) -> None:
    """The rendered ground truth must cover the short exposure's mosaic pixel for pixel (LibRaw may crop)."""
    w, h, _, _ = png_header(gt)
    if (h, w) != tuple(shape):
        raise fail(pair.raw, f"the ground truth rendered from {Path(pair.target).name} is {w}x{h} but this mosaic is "
                             f"{shape[1]}x{shape[0]} (cached as {gt})")


def _sid(root: Path, split: str, on_bad: str) -> Split:

    listing = _sid_list(root, split)
    candidates = []
    for n, line in enumerate(listing.read_text().splitlines(), start=1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 2:
            raise fail(listing, f"line {n}: expected 'short long ISO F', found {line!r}")
        candidates.append(Pair(str((listing.parent / cols[0]).resolve()), str((listing.parent / cols[1]).resolve())))
    if not candidates:
        raise fail(listing, f"empty split: no pairs listed for {split}")
    patterns = set()

    def check(pair: Pair) -> Pair:
        ratio = sid_ratio(pair.raw, pair.target)
        short = rawio.read_raw(pair.raw)
        long_frame = rawio.read_raw(pair.target)
        if short.mosaic.shape != long_frame.mosaic.shape:
            raise fail(pair.raw, f"short exposure is {short.mosaic.shape} but {pair.target} is "
                                 f"{long_frame.mosaic.shape}")
        patterns.add(short.pattern)
        gt = sid_ground_truth(pair.target)
        _check_rendered_size(gt, pair, short.mosaic.shape)
        return Pair(pair.raw, str(gt), ratio, short.black, short.white, short.mosaic.shape, 16)

    good, bad = _screen(candidates, check, on_bad, f"sid:{split}")
    if len(patterns) > 1:
        raise fail(listing, f"mixed CFA patterns {sorted(patterns)} in one split")
    pattern = patterns.pop() if patterns else "RGGB"
    return Split("sid", str(root), split, pattern, "rawpy", tuple(good), tuple(bad))


def _images(root: Path, split: str, on_bad: str) -> Split:
    """RGB images for colourisation: ``<root>/<split>/*`` where those folders exist, else ``<root>/*`` split by
    :func:`file_split`; each image is its own target (the model sees its L, learns its ab)."""
    folder = root / split
    if any((root / s).is_dir() for s in SPLITS):
        files = sorted(folder.iterdir()) if folder.is_dir() else []
    else:
        files = [p for p in sorted(root.iterdir()) if file_split(p.name) == split]
    files = [p for p in files if p.suffix.lower() in IMAGE_EXTS]
    if not files:
        raise fail(folder if folder.is_dir() else root, f"empty split: no {'/'.join(IMAGE_EXTS)} images for {split}")

    def check(pair: Pair) -> Pair:
        w, h, c, bits = image_size(pair.raw)
        if c not in (1, 3, 4):
            raise ValueError(f"not an RGB image ({c} channels)")
        return replace(pair, shape=(h, w), target_bits=bits)

    good, bad = _screen([Pair(str(p), str(p)) for p in files], check, on_bad, f"images:{split}")
    return Split("images", str(root), split, "", "rgb", tuple(good), tuple(bad))


def open_split(layout: str, root, split: str, *, on_bad: str = "fail") -> Split:
    """Check and list the pairs of one split of a dataset."""
    if layout not in LAYOUTS:
        raise UserError(f"unknown dataset layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if on_bad not in ("fail", "skip"):
        raise UserError(f"--bad_files must be 'fail' or 'skip', not {on_bad!r}")
    root = Path(root)
    if not root.is_dir():
        raise fail(root, "dataset root not found")
    if layout == "mai21":
        s = _png_layout(root, split, _RAW_DIRS[layout], "fujifilm", {".png", ".jpg"}, on_bad, layout)
    elif layout == "zurich":
        s = _png_layout(root, split, _RAW_DIRS[layout], "canon", {".jpg", ".png"}, on_bad, layout)
    elif layout == "images":
        s = _images(root, split, on_bad)
    else:
        s = _sid(root, split, on_bad)
    if not s.pairs:
        raise fail(root, f"empty split: all {len(s.skipped)} pair(s) of {split} are bad")
    return s


_RAW_DIRS = {"mai21": "mediatek_raw", "zurich": "huawei_raw"}


def has_split(layout: str, root, split: str) -> bool:
    """Whether the dataset has files for ``split`` (Zurich RAW-to-RGB ships train and test only)."""
    root = Path(root)
    if layout == "sid":
        return any(root.glob(f"*_{split}_list.txt"))
    if layout == "images":
        return (root / split).is_dir() or not any((root / s).is_dir() for s in SPLITS)
    return (root / split / _RAW_DIRS[layout]).is_dir()


def validation_split(layout: str, root) -> str:
    """``val`` where the dataset has one, else ``test`` (as PyNET validates on ZRR)."""
    return "val" if has_split(layout, root, "val") or not has_split(layout, root, "test") else "test"


def parse_data_flag(value: str):
    """``LAYOUT:PATH`` -> (layout, path); ``embedded:isp|lowlight|colorize`` -> the embedded set."""
    layout, sep, path = value.partition(":")
    if not sep or not path:
        raise UserError(f"--data must be LAYOUT:PATH (layouts: {', '.join(LAYOUTS)}) or "
                        f"embedded:isp|lowlight|colorize, not {value!r}")
    if layout == "embedded":
        embedded = {"isp": "mai21", "lowlight": "sid", "colorize": "images"}
        if path not in embedded:
            raise UserError(f"embedded data is 'isp', 'lowlight' or 'colorize', not {path!r}")
        from tflite_isp.data import synth  # lazy: scikit-image's photos only when the embedded set is used

        return embedded[path], synth.ensure_embedded(path)
    if layout not in LAYOUTS:
        raise UserError(f"unknown dataset layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return layout, Path(path)


def file_levels(spec, black, white: float, where) -> tuple:
    """(black per packed channel in the model's order, white) for one file whose levels are ``black`` (per colour,
    bayer.COLOURS order) and ``white``; ``where`` names the file in errors. Refuses another bit depth."""
    if (spec.black == "file" or spec.white == "file") and white <= 0:
        raise fail(where, "the model normalises with the file's black/white levels but this PNG dataset "
                          "has none (add sensor.json with pattern, black, white to the dataset root)")
    order_idx = [bayer.COLOURS.index(c) for c in spec.order]
    black4 = np.asarray(black, np.float32)[order_idx] if spec.black == "file" else np.full(4, float(spec.black))
    model_white = white if spec.white == "file" else float(spec.white)
    if spec.white != "file" and white > 1.5 * model_white:
        raise fail(where, f"the model divides by {model_white:g} but this file's white level is {white:g}; "
                          "train with --levels file (or a recipe with black/white = \"file\")")
    if spec.white != "file" and 0 < white < model_white / 1.5:
        raise fail(where, f"the model divides by {model_white:g} but this file's white level is only {white:g} "
                          "(data of a lower bit depth than the model's)")
    return black4, model_white


def check_cfa(source, spec, split) -> None:
    """A Bayer model (``spec.cfa``) on Quad Bayer data or the reverse: one line naming ``source`` and the data."""
    if spec.cfa != bayer.cfa_kind(split.pattern):
        raise fail(source, f"takes {spec.cfa} RAW (input.cfa = \"{spec.cfa}\") but {split.layout}:{split.root} is "
                           f"{split.pattern}; train a new network on it (a fresh --model takes the data's CFA)")


def input_levels(split: Split, spec) -> tuple:
    """(black per colour, white) for a model's InputSpec on this split's files: arrays (n_pairs, 4) and (n_pairs,),
    in the model's colour order."""
    levels = [file_levels(spec, p.black, p.white, p.raw) for p in split.pairs]
    return (np.asarray([b for b, _ in levels], np.float32).reshape(-1, 4),
            np.asarray([w for _, w in levels], np.float32))


__all__ = ["Pair", "Split", "open_split", "parse_data_flag", "input_levels", "file_levels", "check_cfa", "sid_ratio",
           "sid_exposure", "png_header"]
