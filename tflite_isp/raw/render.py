"""Classical LibRaw rendering of a camera RAW: SID's ground-truth recipe, and the baseline a learned ISP is held to.

A Quad Bayer file is first remosaiced to its base Bayer pattern (:func:`bayer.remosaic_quad`, a pixel swap) and
rendered from a temporary DNG: LibRaw has no 4 x 4 CFA demosaic.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import rawpy

from tflite_isp.raw import bayer, dng, meta, rawio


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
    frame = rawio.read_raw(path)
    if bayer.is_quad(frame.pattern):
        return _render_quad(path, frame, settings)
    with rawio._open(path) as raw:
        rgb = raw.postprocess(**settings)
    h, w, _ = rgb.shape
    return rgb[: h - h % 2, : w - w % 2].astype(np.float32) / 65535.0


def _render_quad(path, frame: rawio.RawFrame, settings: dict) -> np.ndarray:
    """A Quad Bayer file remosaiced to Bayer, with its levels, colour matrix and as-shot white, through LibRaw."""
    m = meta.read_meta(path)
    mosaic, pattern = bayer.remosaic_quad(frame.mosaic, frame.pattern)
    neutral = m.as_shot_neutral or (1.0 / frame.wb[0], 1.0, 1.0 / frame.wb[3])
    with tempfile.TemporaryDirectory(prefix="tflite_isp-remosaic-") as tmp:
        bayer_dng = dng.write_dng(Path(tmp) / "bayer.dng", mosaic, pattern=pattern, black=list(frame.black),
                                  white=int(frame.white), xyz_to_cam=m.color_matrix or np.eye(3),
                                  as_shot_neutral=neutral)
        with rawio._open(bayer_dng) as raw:
            rgb = raw.postprocess(**settings)
    return rgb.astype(np.float32) / 65535.0
