"""Bayer mosaics: CFA patterns, 4-channel packing, levels, and phase-true augmentation.

Every function takes a NumPy array or a TensorFlow tensor (slicing, reshapes and
transposes dispatched on the argument's type), so the data pipeline and the tests share one
implementation. Channels are named by colour, not by position: ``Gr`` is the green on the
red rows, ``Gb`` the green on the blue rows. A packing *order* lists the four colours in
channel order, so one model sees the same colour in the same channel whatever the
camera's CFA phase.
"""
from __future__ import annotations

import numpy as np

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
COLOURS = ("R", "Gr", "Gb", "B")

#: Named packing orders. ``canonical`` is Brooks et al.'s (R, Gr, Gb, B); ``sid`` is
#: cchen156's pack_raw for the RGGB Sony, positions (0,0),(0,1),(1,1),(1,0); ``mai21`` is
#: MediaTek's extract_bayer_channels, positions (1,1),(0,1),(0,0),(1,0) on RGGB (its code
#: calls the red-row green "Gb"; here it is Gr).
ORDERS = {
    "canonical": ("R", "Gr", "Gb", "B"),
    "sid": ("R", "Gr", "B", "Gb"),
    "mai21": ("B", "Gr", "R", "Gb"),
}


def check_pattern(pattern: str) -> str:
    pattern = pattern.upper()
    if pattern not in PATTERNS:
        raise ValueError(f"CFA pattern {pattern!r} is not a 2x2 Bayer pattern; expected one of {PATTERNS}")
    return pattern


def period(pattern: str) -> int:
    """The CFA's repeat in pixels: 2 for Bayer, 4 for Quad Bayer."""
    return 4 if str(pattern).lower().startswith("quad-") else 2


def check_order(order) -> tuple:
    """A packing order given by name (``mai21``) or as four colour names."""
    if isinstance(order, str):
        if order not in ORDERS:
            raise ValueError(f"unknown packing order {order!r}; expected one of {sorted(ORDERS)} or four of {COLOURS}")
        return ORDERS[order]
    order = tuple(order)
    if sorted(order) != sorted(COLOURS):
        raise ValueError(f"packing order {order!r} must list each of {COLOURS} once")
    return order


def colour_positions(pattern: str) -> dict:
    """Map colour name to its (row, col) offset inside the 2x2 CFA tile."""
    pattern = check_pattern(pattern)
    where = {c: divmod(i, 2) for i, c in enumerate(pattern) if c != "G"}
    greens = [divmod(i, 2) for i, c in enumerate(pattern) if c == "G"]
    red_row = where["R"][0]
    where["Gr"] = next(p for p in greens if p[0] == red_row)
    where["Gb"] = next(p for p in greens if p[0] != red_row)
    return where


def _transpose(x, perm):
    if isinstance(x, np.ndarray):
        return x.transpose(perm)
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    return tf.transpose(x, perm)


def _flip(x, axes):
    if isinstance(x, np.ndarray):
        return np.flip(x, axes)
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    return tf.reverse(x, axes)


def clip_range(x, lo, hi):
    """Clip a NumPy array or a tensor to [lo, hi]."""
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    return tf.clip_by_value(x, lo, hi)


def pack(mosaic, pattern: str, order="canonical"):
    """H x W mosaic -> H/2 x W/2 x 4, channels in ``order`` (H and W must be even)."""
    where = colour_positions(pattern)
    index = [2 * where[c][0] + where[c][1] for c in check_order(order)]
    # Reshape/transpose rather than four stride-2 slices: about 40 % less CPU in tf.data.
    if isinstance(mosaic, np.ndarray):
        h, w = mosaic.shape
        tiles = mosaic.reshape(h // 2, 2, w // 2, 2).transpose(0, 2, 1, 3).reshape(h // 2, w // 2, 4)
        return tiles[..., index]
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    size = tf.shape(mosaic) // 2
    tiles = tf.reshape(tf.transpose(tf.reshape(mosaic, [size[0], 2, size[1], 2]), [0, 2, 1, 3]),
                       [size[0], size[1], 4])
    return tf.gather(tiles, index, axis=-1)


def unpack(packed, pattern: str, order="canonical"):
    """Exact inverse of :func:`pack` (NumPy only)."""
    packed = np.asarray(packed)
    h, w, _ = packed.shape
    mosaic = np.empty((2 * h, 2 * w), packed.dtype)
    where = colour_positions(pattern)
    for ch, c in enumerate(check_order(order)):
        dy, dx = where[c]
        mosaic[dy::2, dx::2] = packed[..., ch]
    return mosaic


def cfa_colour_mask(pattern: str, height: int, width: int) -> np.ndarray:
    """H x W array of colour names (R, Gr, Gb, B) under each photosite."""
    mask = np.empty((height, width), dtype="<U2")
    for c, (dy, dx) in colour_positions(pattern).items():
        mask[dy::2, dx::2] = c
    return mask


def normalise(x, black, white, clip: bool = True):
    """(x - black) / (white - black), optionally clipped to [0, 1]; ``black`` may be per channel."""
    if isinstance(black, (int, float, list, tuple)):
        black = np.asarray(black, np.float32)
    y = (x - black) / (white - black)
    return clip_range(y, 0.0, 1.0) if clip else y


# --- Augmentation -------------------------------------------------------------------------
# The eight dihedral transforms (k = 0..7: k % 4 quarter turns counter-clockwise, after a
# transpose when k >= 4). Flipping or turning a mosaic moves its CFA phase (RGGB flipped
# left-right is GRBG), so flipping a packed tensor in place puts samples in a channel whose
# geometry no longer matches, and transposing swaps the two greens. The phase-true form:
# transform the mosaic, then crop one row/column where needed so the pattern is the
# original again, then pack with the original pattern. Output loses 2 pixels per side pair.

#: k -> (transpose first?, axes to reverse): each of the eight transforms as at most one
#: transpose and one reverse (negative-stride slices are several times slower in TF).
_DIHEDRAL = {0: (False, ()), 1: (True, (0,)), 2: (False, (0, 1)), 3: (True, (1,)),
             4: (True, ()), 5: (False, (0,)), 6: (True, (0, 1)), 7: (False, (1,))}


def model_input(mosaic, pattern: str, spec, black, white, ratio=1.0):
    """Mosaic (H x W, sensor values) -> the model's packed, normalised input (H/2 x W/2 x 4).

    ``black`` is per packed channel in the model's order. Low-light inputs are amplified by
    ``ratio`` before clipping, as SID does.
    """
    x = normalise(pack(mosaic, pattern, spec.order), black, white, clip=False) * ratio
    if spec.clip:
        x = clip_range(x, 0.0, 1.0)
    return x


def dihedral(x, k: int):
    """Apply dihedral transform ``k`` (0..7) to the two leading axes of ``x``.

    ``k % 4`` quarter turns counter-clockwise (as np.rot90), after a transpose when k >= 4.
    """
    transpose, axes = _DIHEDRAL[k]
    if transpose:
        x = _transpose(x, (1, 0) + tuple(range(2, len(x.shape))))
    return _flip(x, axes) if axes else x


def phase_offset(pattern: str, k: int) -> tuple:
    """(dy, dx) crop that restores ``pattern`` after dihedral transform ``k`` of the mosaic."""
    pattern = check_pattern(pattern)
    tile = np.tile(np.array(list(pattern)).reshape(2, 2), (2, 2))
    moved = dihedral(tile, k)
    for dy in (0, 1):
        for dx in (0, 1):
            if "".join(moved[dy:dy + 2, dx:dx + 2].ravel()) == pattern:
                return dy, dx
    raise AssertionError("unreachable: a 2x2 Bayer tile always has a matching phase")


def augment_mosaic(mosaic, target, k: int, pattern: str):
    """Dihedral transform ``k`` of a (mosaic, aligned target) pair, phase restored.

    Both inputs are H x W (x C); both outputs are (H-2) x (W-2) (x C) (axes swapped for
    transposes) and ``pack(out, pattern)`` has each colour in its own channel.
    """
    dy, dx = phase_offset(pattern, k)
    mosaic, target = dihedral(mosaic, k), dihedral(target, k)
    h, w = mosaic.shape[0] - 2, mosaic.shape[1] - 2
    return mosaic[dy:dy + h, dx:dx + w], target[dy:dy + h, dx:dx + w]


def augment_packed(packed, target, k: int, pattern: str, order="canonical"):
    """Phase-true augmentation of a packed tensor (NumPy): unpack, transform, re-pack.

    Returns a packed tensor one packed pixel smaller in each dimension and the matching
    target crop.
    """
    mosaic = unpack(packed, pattern, order)
    mosaic, target = augment_mosaic(mosaic, target, k, pattern)
    return pack(mosaic, pattern, order), target
