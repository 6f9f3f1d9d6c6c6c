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
from tflite_isp.raw.bayer import COLOURS, colour_positions

#: rawpy's colour indices (``color_desc`` b'RGBG'): 0 R, 1 G, 2 B, 3 second G.
_RAWPY_LETTER = {0: "R", 1: "G", 2: "B", 3: "G"}


@dataclass(frozen=True)
class RawFrame:
    """A visible Bayer mosaic with the levels needed to normalise it."""

    mosaic: np.ndarray  # uint16, H x W, both even
    pattern: str  # 'RGGB', 'BGGR', 'GRBG' or 'GBRG'
    black: tuple  # per colour, in bayer.COLOURS order (R, Gr, Gb, B)
    white: float
    wb: tuple  # as-shot white-balance multipliers per colour (R, Gr, Gb, B), green = 1
    path: str = ""


@contextmanager
def _open(path):
    """rawpy handle; any LibRaw failure (also the lazy unpack of a truncated file) becomes a UserError."""
    import rawpy

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
    area, even sides), from the file's header: the image itself is not decoded. Unreadable files are the same
    one-line error."""
    with _open(path) as raw:
        sizes = raw.sizes
        raw_pixels = int(sizes.raw_height) * int(sizes.raw_width)
        h, w, flip = int(sizes.height), int(sizes.width), int(sizes.flip)
    return h - h % 2, w - w % 2, flip, raw_pixels


def read_raw(path) -> RawFrame:
    """Read the visible mosaic, CFA pattern, per-colour black, white level and camera WB."""
    with _open(path) as raw:
        if raw.raw_type.name != "Flat" or raw.num_colors != 3:
            raise fail(path, f"not a Bayer sensor (raw type {raw.raw_type.name}, {raw.num_colors} colours)")
        cfa = np.asarray(raw.raw_pattern)
        if cfa.shape != (2, 2):
            raise fail(path, f"not a 2x2 Bayer CFA (pattern {cfa.shape[0]}x{cfa.shape[1]}, e.g. X-Trans)")
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


def srgb_settings(*, demosaic: str = "AHD", gamma=(2.222, 4.5)) -> dict:
    """Every LibRaw postprocess setting :func:`render_srgb` uses, by name (JSON-friendly: a cache key's part)."""
    return {"use_camera_wb": True, "no_auto_bright": True, "output_bps": 16, "user_flip": 0,
            "adjust_maximum_thr": 0.0, "gamma": [float(g) for g in gamma], "demosaic_algorithm": str(demosaic)}


def render_srgb(path, *, demosaic: str = "AHD", gamma=(2.222, 4.5)) -> np.ndarray:
    """Classical LibRaw rendering, float32 H x W x 3 in [0, 1].

    The SID ground-truth recipe: camera white balance, no auto-brightening, 16-bit output,
    default BT.709 gamma; plus a fixed orientation and white level so results are repeatable.
    """

    settings = srgb_settings(demosaic=demosaic, gamma=gamma)
    settings.update(gamma=tuple(settings["gamma"]), demosaic_algorithm=getattr(rawpy.DemosaicAlgorithm, demosaic))
    with _open(path) as raw:
        rgb = raw.postprocess(**settings)
    h, w, _ = rgb.shape
    return rgb[: h - h % 2, : w - w % 2].astype(np.float32) / 65535.0
