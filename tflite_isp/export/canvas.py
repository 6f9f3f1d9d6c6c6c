"""Model-size input canvases tiled from dataset images: calibration data and the fidelity set.

A fixed-shape export (Full HD packed 544 x 960 by default) needs inputs of exactly that size,
while training and validation images are often smaller (MAI 2021 trains on 256 x 256 patches,
the embedded set on 272 x 272). A canvas is a grid of equal cells, each a centre crop of one
image, and the remainder of the canvas mirrors the grid (symmetric padding) so no region is
blank. Images at least the canvas size take a whole canvas each. Every cell keeps its target,
so fidelity is scored per image on the cell's part of the output.
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np


@dataclasses.dataclass(frozen=True)
class Cell:
    """Where one image sits in a canvas (input coordinates) and its target (scale*h x scale*w x 3)."""

    y: int
    x: int
    h: int
    w: int
    target: np.ndarray
    scale: int = 2  # output pixels per input pixel: 2 for packed RAW, 1 for colourisation

@dataclasses.dataclass(frozen=True)
class Canvas:
    input: np.ndarray  # (1, H, W, C) float32, the model's normalised input (C = 4 packed RAW, 1 for L)
    cells: tuple


def cell_size(shapes, size, multiple: int = 1) -> tuple:
    """Common cell (h, w): the smallest image, capped at the canvas, rounded down to ``multiple``."""
    h = min(min(s[0] for s in shapes), size[0])
    w = min(min(s[1] for s in shapes), size[1])
    h, w = h // multiple * multiple, w // multiple * multiple
    if not h or not w:
        raise ValueError(f"images smaller than the model's input multiple {multiple}")
    return h, w


def _centre(a: np.ndarray, h: int, w: int, scale: int = 1) -> np.ndarray:
    oy, ox = (a.shape[0] - h * scale) // (2 * scale) * scale, (a.shape[1] - w * scale) // (2 * scale) * scale
    return a[oy:oy + h * scale, ox:ox + w * scale]


def tile(samples, size, multiple: int = 1) -> list:
    """[(input x (h, w, C), target (s*h, s*w, 3)), ...] -> canvases of ``size`` (H, W), in order."""
    samples = list(samples)
    if not samples:
        return []
    H, W = size
    ch, cw = cell_size([x.shape for x, _ in samples], size, multiple)
    rows, cols = H // ch, W // cw
    channels, scale = samples[0][0].shape[-1], samples[0][1].shape[0] // samples[0][0].shape[0]
    canvases = []
    for start in range(0, len(samples), rows * cols):
        group = samples[start:start + rows * cols]
        grid = np.zeros((rows * ch, cols * cw, channels), np.float32)
        cells = []
        for k, (x, target) in enumerate(group):
            y0, x0 = (k // cols) * ch, (k % cols) * cw
            grid[y0:y0 + ch, x0:x0 + cw] = _centre(x, ch, cw)
            cells.append(Cell(y0, x0, ch, cw, _centre(target, ch, cw, scale), scale))
        used_rows = -(-len(group) // cols)
        if used_rows < rows:  # an incomplete last canvas: mirror its filled rows down
            grid = grid[:used_rows * ch]
        pad = ((0, H - grid.shape[0]), (0, W - grid.shape[1]), (0, 0))
        canvases.append(Canvas(np.pad(grid, pad, mode="symmetric")[None], tuple(cells)))
    return canvases


def crop_output(output: np.ndarray, cell: Cell, scale: int | None = None) -> np.ndarray:
    """The cell's part of a model output (1, sH, sW, C) -> (sh, sw, C); ``scale=1`` crops the input instead."""
    s = cell.scale if scale is None else scale
    return output[0, s * cell.y:s * (cell.y + cell.h), s * cell.x:s * (cell.x + cell.w)]


def load_samples(split, spec, *, multiple: int, limit: int = 0, seed: int | None = None, max_size: int = 0):
    """Whole images of a split as (packed input, target) numpy pairs, via the training pipeline's
    own preprocessing. ``seed`` picks a random subset of ``limit`` images; otherwise the first."""
    from tflite_isp.data import pipeline  # lazy: TensorFlow loads only when this runs

    pairs = list(split.pairs)
    if seed is not None:
        random.Random(seed).shuffle(pairs)
    if limit:
        pairs = pairs[:limit]
    subset = dataclasses.replace(split, pairs=tuple(pairs))
    return [(x[0].numpy(), y[0].numpy())
            for x, y in pipeline.eval_dataset(subset, spec, multiple=multiple, max_size=max_size)]


__all__ = ["Canvas", "Cell", "cell_size", "crop_output", "load_samples", "tile"]
