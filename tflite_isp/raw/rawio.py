"""Camera RAW files through rawpy/LibRaw: the visible Bayer mosaic and its levels.

Side effects stay here (file reads); everything returned is plain arrays and numbers.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy

from tflite_isp.core.errors import fail
from tflite_isp.raw import bayer
from tflite_isp.raw.bayer import COLOURS, colour_positions
from tflite_isp.raw.cfa_tags import cfa_tags

#: File endings of camera RAW formats LibRaw reads (a folder's RAW files are the files with these).
RAW_SUFFIXES = (".dng", ".arw", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".raf", ".orf", ".rw2", ".pef", ".srw",
                ".raw", ".rwl", ".3fr", ".iiq", ".erf", ".kdc", ".dcr", ".mos", ".mrw", ".x3f", ".srf", ".sr2")
#: rawpy's colour indices (``color_desc`` b'RGBG'): 0 R, 1 G, 2 B, 3 second G.
_RAWPY_LETTER = {0: "R", 1: "G", 2: "B", 3: "G"}


@dataclass(frozen=True)
class RawFrame:
    """A visible Bayer or Quad Bayer mosaic with the levels needed to normalise it."""

    mosaic: np.ndarray  # uint16, H x W, both multiples of the CFA period (2, or 4 for Quad Bayer)
    pattern: str  # 'RGGB', 'BGGR', 'GRBG', 'GBRG' or their Quad Bayer forms ('quad-RGGB', ...)
    black: tuple  # per colour, in bayer.COLOURS order (R, Gr, Gb, B)
    white: float
    wb: tuple  # as-shot white-balance multipliers per colour (R, Gr, Gb, B), green = 1
    path: str = ""


@contextmanager
def _open(path):
    """rawpy handle; any LibRaw failure (also the lazy unpack of a truncated file) becomes a UserError."""
    path = Path(path)
    if not path.is_file():
        raise fail(path, "no such file")
    try:
        with rawpy.imread(str(path)) as raw:
            yield raw
    except rawpy.LibRawError as err:
        raise fail(path, f"rawpy cannot decode this file ({type(err).__name__}: {err})") from None


def raw_size(path) -> tuple:
    """(rows, columns, LibRaw flip, sensor pixels LibRaw decodes) of the mosaic :func:`read_raw` returns (visible
    area, sides multiples of the CFA period), from the file's header: the image itself is not decoded. Unreadable
    files are the same one-line error."""
    with _open(path) as raw:
        sizes = raw.sizes
        raw_pixels = int(sizes.raw_height) * int(sizes.raw_width)
        h, w, flip = int(sizes.height), int(sizes.width), int(sizes.flip)
    rows = cfa_tags(path)[0]
    p = bayer.period(bayer.pattern_from_layout(rows) or "RGGB") if rows else 2
    return h - h % p, w - w % p, flip, raw_pixels


def _tagged_cfa(path):
    """(Quad Bayer pattern or None, per-colour black or None) from the file's CFA tags, which LibRaw folds into a
    wrong 2 x 2 pattern for a 4 x 4 CFA; another CFA larger than 2 x 2 is a one-line error."""
    rows, black_rows = cfa_tags(path)
    if rows is None or (len(rows), len(rows[0])) == (2, 2):
        return None, None
    pattern = bayer.pattern_from_layout(rows)
    if pattern is None:
        raise fail(path, f"not a 2x2 Bayer or 4x4 Quad Bayer CFA (pattern {len(rows)}x{len(rows[0])}"
                         f"{', e.g. X-Trans' if len(rows) == 6 else ''})")
    black = None
    if black_rows is not None:
        levels = np.asarray(black_rows, np.float64)
        p = bayer.period(pattern)
        levels = np.tile(levels, (p // levels.shape[0] or 1, p // levels.shape[1] or 1))[:p, :p]
        mask = bayer.cfa_colour_mask(pattern, p, p)
        black = tuple(float(levels[mask == c].mean()) for c in COLOURS)
    return pattern, black


def read_raw(path) -> RawFrame:
    """Read the visible mosaic, CFA pattern, per-colour black, white level and camera WB."""
    quad, quad_black = _tagged_cfa(path) if Path(path).is_file() else (None, None)
    with _open(path) as raw:
        if raw.raw_type.name != "Flat" or raw.num_colors != 3:
            raise fail(path, f"not a Bayer sensor (raw type {raw.raw_type.name}, {raw.num_colors} colours)")
        if quad:
            return _read_quad(raw, path, quad, quad_black)
        cfa = np.asarray(raw.raw_pattern)
        if cfa.shape != (2, 2):
            raise fail(path, f"not a 2x2 Bayer or 4x4 Quad Bayer CFA (pattern {cfa.shape[0]}x{cfa.shape[1]}"
                             f"{', e.g. X-Trans' if cfa.shape[0] == 6 else ''})")
        pattern = "".join(_RAWPY_LETTER[int(i)] for i in cfa.ravel())
        if sorted(pattern) != ["B", "G", "G", "R"]:
            raise fail(path, f"unsupported CFA pattern {pattern}")
        where = colour_positions(pattern)
        per_index_black = np.asarray(raw.black_level_per_channel, np.float64)
        black = tuple(float(per_index_black[cfa[where[c]]]) for c in COLOURS)
        cam_wb = np.asarray(raw.camera_whitebalance, np.float64)
        wb = tuple(float(cam_wb[cfa[where[c]]] or cam_wb[1]) for c in COLOURS)
        green = wb[1] or 1.0
        mosaic = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
        white = float(raw.white_level)
    h, w = mosaic.shape
    mosaic = mosaic[: h - h % 2, : w - w % 2]
    return RawFrame(mosaic, pattern, black, white, tuple(v / green for v in wb), str(path))


def _read_quad(raw, path, pattern: str, black) -> RawFrame:
    """A Quad Bayer frame: LibRaw's pixels (exact) with the pattern and black levels of the file's tags."""
    if black is None:
        black = (float(np.mean(raw.black_level_per_channel)),) * 4
    cam_wb = np.asarray(raw.camera_whitebalance, np.float64)  # 0 R, 1 G, 2 B
    green = cam_wb[1] or 1.0
    wb = tuple(float((cam_wb[i] or green) / green) for i in (0, 1, 1, 2))
    mosaic = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
    h, w = mosaic.shape
    return RawFrame(mosaic[: h - h % 4, : w - w % 4], pattern, black, float(raw.white_level), wb, str(path))
