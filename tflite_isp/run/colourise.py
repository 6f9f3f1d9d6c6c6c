"""One sRGB image through a colourisation ``.tflite``: L in, ab out, back to sRGB (core.colour's convention).

A dynamic file runs on the whole image, padded (symmetric) to the net's input multiple. A fixed file runs once at
its own size: the L plane is resized to it and the predicted ab resized back and joined with the image's
full-resolution L. Chroma carries little detail, so this is the usual way a colouriser serves any frame size.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from tflite_isp.core import colour
from tflite_isp.run.tiling import padded_size, padded_window


def resize(planes: np.ndarray, size) -> np.ndarray:
    """(h, w, C) float32 -> (H, W, C), bilinear per plane (Pillow's float mode)."""
    if tuple(planes.shape[:2]) == tuple(size):
        return planes
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c])).resize(
        (int(size[1]), int(size[0])), Image.BILINEAR)) for c in range(planes.shape[-1])], axis=-1)


def predict_ab(run, l_in: np.ndarray, *, tile=None, multiple: int = 16) -> np.ndarray:
    """``run`` ((1, h, w, 1) -> (1, h, w, 2)) on an L plane (h, w, 1) -> ab (h, w, 2) in the model's scale."""
    h, w = l_in.shape[:2]
    if tile:
        return resize(run(resize(l_in, tile)[None])[0], (h, w))
    ph, pw = padded_size(h, None, multiple), padded_size(w, None, multiple)
    return run(padded_window(l_in, 0, 0, ph, pw)[None])[0][:h, :w]


def colourise(run, rgb: np.ndarray, l_scale: float, ab_scale: float, *, tile=None, multiple: int = 16) -> np.ndarray:
    """sRGB (h, w, 3) in [0, 1] -> the model's colouring of its L, sRGB (h, w, 3) in [0, 1]."""
    l_in = colour.model_input(np.asarray(rgb, np.float32), l_scale).astype(np.float32)
    ab = predict_ab(run, l_in, tile=tile, multiple=multiple)
    return np.clip(colour.render(l_in, ab, l_scale, ab_scale), 0.0, 1.0).astype(np.float32)


__all__ = ["colourise", "predict_ab", "resize"]
