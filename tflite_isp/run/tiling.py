"""Whole images through a fixed-size model: overlapping tiles, stitched without seams.

A fixed-shape ``.tflite`` (Full HD packed 544 x 960 by default) sees images of any size:
smaller ones are padded (symmetric, bottom and right) to the tile, larger ones are cut into
tiles that overlap by ``2 * margin`` packed pixels. Each output pixel comes from the one tile
in which it lies farthest from an edge (the cut runs through the middle of each overlap), so
with a margin at least the network's receptive radius the stitched image equals the untiled
one: no blending, no seams. Tile origins stay on multiples of the network's input multiple
(its total pooling stride), so every tile sees the same pooling grid as the whole image would.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_MARGIN = 32  # packed pixels per side (64 RAW pixels)
UNBOUNDED_MARGIN = 64  # for a net whose receptive field is the whole image (global pooling): never exact


def exact_margin(radius: float, tile) -> int:
    """The overlap per side for a net of receptive ``radius`` (packed px): the radius, so stitching equals
    whole-frame inference, at most a quarter of the tile (as :func:`axis_spans` allows)."""
    radius = radius if math.isfinite(radius) else UNBOUNDED_MARGIN
    return int(min(math.ceil(radius), min(tile) // 4))


@dataclass(frozen=True)
class Span:
    """One tile along one axis: it reads [start, start + size) and keeps [keep_from, keep_to)."""

    start: int
    keep_from: int
    keep_to: int


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def axis_spans(length: int, size: int, margin: int, multiple: int = 1) -> list:
    """Tiles of ``size`` covering ``length`` (already >= size), overlapping by at least ``2 * margin``."""
    if length <= size:
        return [Span(0, 0, length)]
    margin = min(margin, size // 4)
    stride = max((size - 2 * margin) // multiple * multiple, multiple)
    starts = list(range(0, length - size, stride)) + [length - size]
    spans = []
    for k, start in enumerate(starts):
        keep_from = 0 if k == 0 else (start + starts[k - 1] + size) // 2
        keep_to = length if k == len(starts) - 1 else (starts[k + 1] + start + size) // 2
        spans.append(Span(start, keep_from, keep_to))
    return spans


def padded_size(length: int, tile: int | None, multiple: int) -> int:
    """The image length after padding: at least one tile, and a whole number of ``multiple``."""
    return max(round_up(length, multiple), tile or 0)


def run_tiled(run, packed: np.ndarray, tile=None, *, margin: int = DEFAULT_MARGIN, multiple: int = 1,
              scale: int = 2) -> np.ndarray:
    """``run`` ((1, th, tw, C) -> (1, scale*th, scale*tw, 3)) over a packed image (h, w, C) -> (scale*h, scale*w, 3).

    ``tile`` is the model's fixed (th, tw); None runs the whole (padded) image at once, for
    dynamic-shape files. The output is clipped to [0, 1].
    """
    h, w = packed.shape[:2]
    th, tw = tile if tile else (None, None)
    if tile and (th % multiple or tw % multiple):
        raise ValueError(f"tile {th}x{tw} is not a multiple of the model's input multiple {multiple}")
    ph, pw = padded_size(h, th, multiple), padded_size(w, tw, multiple)
    th, tw = th or ph, tw or pw
    out = None
    for ys in axis_spans(ph, th, margin, multiple):
        for xs in axis_spans(pw, tw, margin, multiple):
            y = run(padded_window(packed, ys.start, xs.start, th, tw)[None])[0]
            if out is None:
                out = np.empty((scale * ph, scale * pw, y.shape[-1]), np.float32)
            rows = slice(scale * ys.keep_from, scale * ys.keep_to)
            cols = slice(scale * xs.keep_from, scale * xs.keep_to)
            out[rows, cols] = y[scale * (ys.keep_from - ys.start):scale * (ys.keep_to - ys.start),
                                scale * (xs.keep_from - xs.start):scale * (xs.keep_to - xs.start)]
            del y  # before the next tile's output exists: one tile output alive at a time
    out = out[:scale * h, :scale * w]
    return np.clip(out, 0.0, 1.0, out=out)  # in place: a full frame's float output is the largest buffer


def _symmetric(index: np.ndarray, n: int) -> np.ndarray:
    """Indices past ``n`` mirrored as ``np.pad(mode="symmetric")`` mirrors them (edge sample repeated)."""
    index = np.mod(index, 2 * n)
    return np.where(index < n, index, 2 * n - 1 - index)


def padded_window(image: np.ndarray, y: int, x: int, th: int, tw: int) -> np.ndarray:
    """``image`` padded (bottom and right, symmetric) as far as needed, window [y, y+th) x [x, x+tw): a view where
    the window lies inside the image, else a copy of the window only (never of the whole padded frame)."""
    h, w = image.shape[:2]
    if y + th <= h and x + tw <= w:
        return image[y:y + th, x:x + tw]
    rows, cols = _symmetric(np.arange(y, y + th), h), _symmetric(np.arange(x, x + tw), w)
    return image[rows[:, None], cols[None, :]]


def kept_margin(length: int, size: int, margin: int, multiple: int = 1):
    """The least distance (packed px) from a kept pixel to the cut edge of its tile along one axis of padded
    ``length``; None when the axis takes one tile (no cut)."""
    spans = axis_spans(length, size, margin, multiple)
    if len(spans) == 1:
        return None
    gaps = [s.keep_from - s.start for s in spans[1:]] + [s.start + size - s.keep_to for s in spans[:-1]]
    return min(gaps)


def describe(shape, tile, *, margin: int, radius: float, multiple: int = 1) -> str:
    """How a fixed-size file of input ``tile`` (th, tw) sees one image of packed ``shape`` (h, w), against running
    the whole image (padded to the input multiple) at once:

    - ``whole image``: the image is exactly one tile;
    - ``fixed canvas``: one tile, the image mirror-padded into it (pixels within ``radius`` of the padded edges see
      the mirror, not the net's border handling);
    - ``tiled, exact``: cuts at least ``radius`` from every kept pixel, so the stitched output is the whole-image one;
    - ``tiled, inexact by N px``: the cuts come N packed px too close (``radius`` minus the kept margin);
    - ``tiled, inexact (global receptive field)``: a net that pools the whole image is never exact under tiling;
    - ``tiled on a mirror-padded canvas, cuts ...``: larger than the tile along one axis, smaller along the other.
    """
    padded = any(padded_size(n, t, multiple) > round_up(n, multiple) for n, t in zip(shape, tile))
    cuts = [k for k in (kept_margin(padded_size(n, t, multiple), t, margin, multiple) for n, t in zip(shape, tile))
            if k is not None]
    if not cuts:
        return "fixed canvas" if padded else "whole image"
    least = min(cuts)
    if not math.isfinite(radius):
        how = "inexact (global receptive field)"
    elif least >= radius:
        how = "exact"
    else:
        how = f"inexact by {math.ceil(radius - least)} px"
    return f"tiled on a mirror-padded canvas, cuts {how}" if padded else f"tiled, {how}"


def tile_count(shape, tile, *, margin: int = DEFAULT_MARGIN, multiple: int = 1) -> int:
    """How many model runs one image of packed ``shape`` (h, w) takes."""
    if not tile:
        return 1
    ph, pw = (padded_size(n, t, multiple) for n, t in zip(shape, tile))
    return len(axis_spans(ph, tile[0], margin, multiple)) * len(axis_spans(pw, tile[1], margin, multiple))


__all__ = ["DEFAULT_MARGIN", "UNBOUNDED_MARGIN", "Span", "axis_spans", "describe", "exact_margin", "kept_margin",
           "padded_window", "run_tiled", "tile_count"]
