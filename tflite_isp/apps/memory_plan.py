"""The memory plan behind --max_memory: what a frame and a tile cost, measured against the process's own size."""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

from tflite_isp.apps.exported import Export
from tflite_isp.core.errors import UserError
from tflite_isp.run import flatbuffer, tiling
from tflite_isp.run.refit import refit as refit_file

TILE_SIDES = (2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32)  # packed pixels, largest first


MB = 2 ** 20


# --- Memory plan ---------------------------------------------------------------------------------------------------
# The plan is the process's own resident size before the frame is read (measured: imports, the export, LiteRT)
# plus the largest of the phases below, each counted from the arrays enhance really holds at that point. Bytes per
# packed pixel of the frame (one 2x2 Bayer quad: four output pixels):
MOSAIC_BPP = 8  # the uint16 mosaic


PACKED_BPP = 16  # the float32 packed model input


RGB_BPP = 48  # the stitched float32 RGB output (4 pixels x 3 x 4 bytes), over the padded frame


RGB8_BPP = 12  # the 8-bit RGB the JPEG is encoded from


PIL_BPP = 16  # Pillow's own copy of it while encoding (RGBX, 4 bytes a pixel)


RATIO_BPP = 56  # --ratio auto: ratio.view's float copies of the whole frame (packed, four channels, stacked RGB)


INTERPRETER_MB = 8  # one LiteRT interpreter beyond its tensors: XNNPACK's and the thread pool's own allocations


SLACK_MB, SLACK_FRACTION = 16, 0.04  # allocator rounding and fragmentation, the JPEG encoder, chunk temporaries


POINTER = 8  # bytes of one XNNPACK indirection-buffer entry


@dataclass(frozen=True)
class Plan:
    """The tiling enhance runs a frame with, and the peak resident memory it expects (MiB)."""

    tile: tuple
    margin: int
    exact: bool  # the overlap covers the receptive radius: stitching equals whole-frame inference
    estimate_mb: float  # planned peak RSS of the process
    base_mb: float  # the process before the frame (measured)
    tile_mb: float  # the tile's own share: the interpreter at this size and one call's buffers
    phases: dict  # MiB above the base of each phase, the tile's phase without the tile's share


def tile_bytes(export: Export, tile: tuple) -> int:
    """What running one tile costs: the refitted interpreter (see :func:`runtime_bytes`) and one call's buffers
    (the float window, its quantised copy and the float temporary that makes it, the output tensor's copy and its
    float version)."""

    model = flatbuffer.parse(refit(export, tile))
    inp, out = model.inputs[0], model.outputs[0]
    n_in, n_out = int(np.prod(inp.shape)), int(np.prod(out.shape))
    calls = n_in * (4 + 4 + np.dtype(inp.dtype).itemsize) + n_out * (np.dtype(out.dtype).itemsize + 4)
    return runtime_bytes(model, len(export.data)) + calls


def runtime_bytes(model, file_bytes: int) -> int:
    """A LiteRT interpreter with XNNPACK at the file's static shapes, as measured: the activations live at once
    (both LiteRT's arena and XNNPACK's workspace are planned by lifetime), the graph's input and output tensors, the
    weights twice (the file and XNNPACK's packed copy), and XNNPACK's indirection buffers: a pointer per kernel tap
    and output pixel of every convolution (other than 1x1 stride 1), pooling and transposed convolution. Those
    buffers, not the activations, are most of a full-resolution U-Net's memory: 9 taps x 8 bytes per output pixel
    of each 3x3 conv, 72 bytes a pixel for a layer whose int8 activation takes 8 (SID U-Net at width 0.25)."""
    def nbytes(t):
        return int(np.prod(t.shape)) * np.dtype(t.dtype).itemsize

    last = {}
    for i, op in enumerate(model.ops):
        for t in op.inputs:
            if t is not None and not t.is_constant:
                last[t.index] = i
    keep = {t.index for t in (*model.inputs, *model.outputs)}
    live, live_peak, indirection = {}, 0, 0
    for i, op in enumerate(model.ops):
        for t in (*op.inputs, *op.outputs):
            if t is not None and not t.is_constant:
                live.setdefault(t.index, nbytes(t))
        live_peak = max(live_peak, sum(live.values()))
        for k in [k for k in live if last.get(k, -1) <= i and k not in keep]:
            del live[k]
        indirection += _indirection_entries(op) * POINTER
    io = sum(nbytes(t) for t in (*model.inputs, *model.outputs))
    return live_peak + io + indirection + 2 * file_bytes + INTERPRETER_MB * MB


def _indirection_entries(op) -> int:
    out = op.outputs[0] if op.outputs else None
    if out is None or len(out.shape) != 4:
        return 0
    pixels = int(np.prod(out.shape[:3]))
    opts = op.options or {}
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        kh, kw = op.inputs[1].shape[1:3]
        one_by_one = (kh, kw) == (1, 1) and opts.get("stride_h", 1) == 1 and opts.get("stride_w", 1) == 1
        return 0 if one_by_one else pixels * kh * kw
    if op.name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return pixels * int(opts.get("filter_height", 1)) * int(opts.get("filter_width", 1))
    if op.name == "TRANSPOSE_CONV":
        kh, kw = op.inputs[1].shape[1:3]
        sh, sw = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
        return pixels * -(-kh // sh) * -(-kw // sw)
    return 0


def frame_phases(packed_hw: tuple, padded_hw: tuple | None = None, raw_pixels: int | None = None,
                 ratio_auto: bool = False) -> dict:
    """MiB each phase of one frame holds besides the process (the tile's phase without the tile's own share):
    read (LibRaw's decoded sensor image and our mosaic), ratio (``--ratio auto``), input (mosaic and packed input),
    tiles (packed input and stitched output), write (float output and its 8-bit copy), jpeg (8-bit copy and
    Pillow's). ``padded_hw``: the frame padded to the tiling (default: as is)."""
    p = packed_hw[0] * packed_hw[1]
    padded = (padded_hw or packed_hw)[0] * (padded_hw or packed_hw)[1]
    raw_pixels = raw_pixels or 4 * p
    phases = {"read": 2 * raw_pixels + MOSAIC_BPP * p, "input": (MOSAIC_BPP + PACKED_BPP) * p,
              "tiles": PACKED_BPP * p + RGB_BPP * padded, "write": RGB_BPP * padded + RGB8_BPP * p,
              "jpeg": (RGB8_BPP + PIL_BPP) * p}
    if ratio_auto:
        phases["ratio"] = (MOSAIC_BPP + RATIO_BPP) * p
    return {k: v / MB for k, v in phases.items()}


def peak_mb(base_mb: float, phases: dict, tile_mb: float) -> float:
    """The planned peak: the base, the largest phase (the tile's share in the tiles phase), with slack."""
    top = max(max(v for k, v in phases.items() if k != "tiles"), phases["tiles"] + tile_mb)
    return base_mb + SLACK_MB + (1 + SLACK_FRACTION) * top


def refit(export: Export, tile: tuple) -> bytes:

    return export.data if tuple(tile) == tuple(export.tile) else refit_file(export.data, *tile)


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


def plan(export: Export, packed_hw: tuple, budget_mb: float, base_mb: float, *, raw_pixels: int | None = None,
         ratio_auto: bool = False, tile_scale: float = 1.0, smaller_than: tuple | None = None, where=None) -> Plan:
    """The largest tile whose planned peak fits ``budget_mb`` with an overlap of at least the receptive radius
    (stitching then equals whole-frame inference), else the largest that fits; else a one-line error. ``base_mb``
    is the process's resident size before the frame; ``tile_scale`` multiplies every tile's share and
    ``smaller_than`` leaves out tiles not smaller than that one (a re-plan after a tile measured more than
    planned)."""
    options = []
    for tile in tile_candidates(export, packed_hw):
        if smaller_than and tile[0] * tile[1] >= smaller_than[0] * smaller_than[1]:
            continue
        margin = margin_for(export, tile)
        whole = all(t >= n for t, n in zip(tile, packed_hw))
        if not whole and min(tile) - 2 * margin < export.multiple:
            continue  # no room left inside the overlap
        padded = tuple(tiling.padded_size(n, t, export.multiple) for n, t in zip(packed_hw, tile))
        k = export.spec.scale // 2  # the phases count 2x2 Bayer cells: a Quad Bayer packed pixel is 2x2 of them
        phases = frame_phases(tuple(k * n for n in packed_hw), tuple(k * n for n in padded), raw_pixels, ratio_auto)
        tile_mb = tile_scale * tile_bytes(export, tile) / MB
        options.append(Plan(tuple(tile), margin, whole or margin >= export.radius,
                            peak_mb(base_mb, phases, tile_mb), base_mb, tile_mb, phases))
    fits = [o for o in options if o.estimate_mb <= budget_mb]
    if not fits:
        if options:
            o = options[-1]
            need = (f"even {o.tile[0]}x{o.tile[1]} tiles need ~{o.estimate_mb:.0f} MiB (this process "
                    f"{base_mb:.0f} MiB, frame buffers {o.phases['tiles']:.0f} MiB, the tile {o.tile_mb:.0f} MiB)")
        else:
            need = "it needs a tile larger than its overlap"
        frame = f"this {export.spec.scale * packed_hw[1]}x{export.spec.scale * packed_hw[0]} frame"
        raise UserError((f"{where}: " if where else "") + f"--max_memory {budget_mb:g} MiB is too small for {frame} "
                        f"through {export.folder}: {need}")
    return next((o for o in fits if o.exact), fits[0])


def release_free_memory() -> None:
    """Hand the C allocator's free memory back to the system (glibc ``malloc_trim``; nothing elsewhere), so the
    resident size measured next is what the process holds, not what earlier frames freed."""

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def margin_for(export: Export, tile: tuple) -> int:
    """The overlap per side: the receptive radius (exact stitching), at most a quarter of the tile."""
    return tiling.exact_margin(export.radius, tile)
