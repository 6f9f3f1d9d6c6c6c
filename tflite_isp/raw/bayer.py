"""Bayer and Quad Bayer mosaics: CFA patterns, packing, levels, and phase-true augmentation.

Every function takes a NumPy array or a TensorFlow tensor (slicing, reshapes and
transposes dispatched on the argument's type), so the data pipeline and the tests share one
implementation. Channels are named by colour, not by position: ``Gr`` is the green on the
red rows, ``Gb`` the green on the blue rows. A packing *order* lists the four colours in
channel order, so one model sees the same colour in the same channel whatever the
camera's CFA phase.

A Quad Bayer pattern (``quad-RGGB`` etc.: each cell of the 2 x 2 Bayer tile a 2 x 2 block of one colour,
period 4) packs to 16 channels: each colour of the order expanded to its four sub-sites in reading order
(``R0`` top-left, ``R1`` top-right, ``R2`` bottom-left, ``R3`` bottom-right of its block).
"""
from __future__ import annotations

import numpy as np

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
QUAD_PATTERNS = tuple(f"quad-{p}" for p in PATTERNS)
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
    """The canonical spelling of a Bayer (``RGGB``) or Quad Bayer (``quad-RGGB``) pattern, else a ValueError."""
    text = str(pattern)
    if text[:5].lower() == "quad-" and text[5:].upper() in PATTERNS:
        return "quad-" + text[5:].upper()
    if text.upper() in PATTERNS:
        return text.upper()
    raise ValueError(f"CFA pattern {pattern!r} is not a 2x2 Bayer or 4x4 Quad Bayer pattern; expected one of "
                     f"{PATTERNS + QUAD_PATTERNS}")


def is_quad(pattern: str) -> bool:
    return check_pattern(pattern).startswith("quad-")


def period(pattern: str) -> int:
    """The CFA's repeat in pixels: 2 for Bayer, 4 for Quad Bayer."""
    return 4 if is_quad(pattern) else 2


def base_pattern(pattern: str) -> str:
    """The 2 x 2 Bayer pattern of colours (a Quad Bayer pattern's blocks)."""
    return check_pattern(pattern).removeprefix("quad-")


def cfa_kind(pattern: str) -> str:
    """``bayer`` or ``quad``: what a recipe's ``input.cfa`` must say to take this pattern."""
    return "quad" if is_quad(pattern) else "bayer"


def layout(pattern: str) -> tuple:
    """The pattern's colour letters as rows of one repeat, e.g. ``('RRGG', 'RRGG', 'GGBB', 'GGBB')``."""
    base = base_pattern(pattern)
    rows = (base[:2], base[2:])
    if not is_quad(pattern):
        return rows
    return tuple("".join(c * 2 for c in row) for row in rows for _ in range(2))


def pattern_from_layout(rows) -> str | None:
    """The Bayer or Quad Bayer pattern whose :func:`layout` is ``rows`` (e.g. DNG CFA tag rows), else None."""
    rows = tuple(str(r).upper() for r in rows)
    for name in PATTERNS + QUAD_PATTERNS:
        if layout(name) == rows:
            return name
    return None


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
    """Map colour name to its (row, col) offset inside the 2x2 CFA tile (a Quad Bayer pattern's: in blocks)."""
    pattern = base_pattern(pattern)
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


def site_positions(pattern: str, order="canonical") -> list:
    """(name, (row, col)) of every photosite of one CFA repeat, in packed channel order: the colours of ``order``,
    each a Quad Bayer pattern's four sub-sites (``R0``..``R3``, reading order within its block)."""
    where = colour_positions(pattern)
    order = check_order(order)
    if not is_quad(pattern):
        return [(c, where[c]) for c in order]
    return [(f"{c}{s}", (2 * where[c][0] + s // 2, 2 * where[c][1] + s % 2)) for c in order for s in range(4)]


def channel_names(pattern: str, order="canonical") -> list:
    """The packed channels' names: ``order`` for Bayer, 16 sub-site names (``B0``..``Gb3``) for Quad Bayer."""
    return [name for name, _ in site_positions(pattern, order)]


def pack(mosaic, pattern: str, order="canonical"):
    """H x W mosaic -> H/p x W/p x p*p (p = :func:`period`: 4 channels for Bayer, 16 for Quad Bayer), channels in
    ``order`` (see :func:`channel_names`); H and W must be multiples of p."""
    p = period(pattern)
    index = [p * dy + dx for _, (dy, dx) in site_positions(pattern, order)]
    # Reshape/transpose rather than p*p strided slices: about 40 % less CPU in tf.data.
    if isinstance(mosaic, np.ndarray):
        h, w = mosaic.shape
        tiles = mosaic.reshape(h // p, p, w // p, p).transpose(0, 2, 1, 3).reshape(h // p, w // p, p * p)
        return tiles[..., index]
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    size = tf.shape(mosaic) // p
    tiles = tf.reshape(tf.transpose(tf.reshape(mosaic, [size[0], p, size[1], p]), [0, 2, 1, 3]),
                       [size[0], size[1], p * p])
    return tf.gather(tiles, index, axis=-1)


def unpack(packed, pattern: str, order="canonical"):
    """Exact inverse of :func:`pack` (NumPy only)."""
    packed = np.asarray(packed)
    h, w, _ = packed.shape
    p = period(pattern)
    index = [p * dy + dx for _, (dy, dx) in site_positions(pattern, order)]
    tiles = packed[..., np.argsort(index)]
    return tiles.reshape(h, w, p, p).transpose(0, 2, 1, 3).reshape(h * p, w * p)


def cfa_colour_mask(pattern: str, height: int, width: int) -> np.ndarray:
    """H x W array of colour names (R, Gr, Gb, B) under each photosite."""
    p = period(pattern)
    tile = np.empty((p, p), dtype="<U2")
    for name, (dy, dx) in site_positions(pattern):
        tile[dy, dx] = name[:-1] if is_quad(pattern) else name
    return np.tile(tile, (-(-height // p), -(-width // p)))[:height, :width]


def per_channel_black(black, pattern: str):
    """Black levels given per colour in the packing order (4 values) -> one per packed channel (each repeated for
    a Quad Bayer colour's four sub-sites); a single number stays one."""
    if not is_quad(pattern):
        return black
    if isinstance(black, (int, float)) or (isinstance(black, np.ndarray) and black.ndim == 0):
        return black
    if isinstance(black, (list, tuple, np.ndarray)):
        return np.repeat(np.asarray(black, np.float32), 4)
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    return tf.repeat(black, 4) if black.shape.rank else black


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
# original again, then pack with the original pattern. Output loses one period (2 pixels for Bayer, 4 for Quad
# Bayer) per dimension.

#: k -> (transpose first?, axes to reverse): each of the eight transforms as at most one
#: transpose and one reverse (negative-stride slices are several times slower in TF).
_DIHEDRAL = {0: (False, ()), 1: (True, (0,)), 2: (False, (0, 1)), 3: (True, (1,)),
             4: (True, ()), 5: (False, (0,)), 6: (True, (0, 1)), 7: (False, (1,))}


def model_input(mosaic, pattern: str, spec, black, white, ratio=1.0):
    """Mosaic (H x W, sensor values) -> the model's packed, normalised input (H/p x W/p x p*p).

    ``black`` is per colour in the model's order (4 values; repeated for a Quad Bayer colour's sub-sites) or one
    number. Low-light inputs are amplified by ``ratio`` before clipping, as SID does.
    """
    black = per_channel_black(black, pattern)
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
    """(dy, dx) crop that restores ``pattern`` after dihedral transform ``k`` of the mosaic (each in 0..p-1)."""
    p = period(pattern)
    original = np.array([list(r) for r in layout(pattern)])
    moved = dihedral(np.tile(original, (2, 2)), k)
    for dy in range(p):
        for dx in range(p):
            if np.array_equal(moved[dy:dy + p, dx:dx + p], original):
                return dy, dx
    raise AssertionError("unreachable: a Bayer or Quad Bayer tile always has a matching phase")


def augment_mosaic(mosaic, target, k: int, pattern: str):
    """Dihedral transform ``k`` of a (mosaic, aligned target) pair, phase restored.

    Both inputs are H x W (x C); both outputs are (H-p) x (W-p) (x C), p the :func:`period` (axes swapped for
    transposes), and ``pack(out, pattern)`` has each colour in its own channel.
    """
    dy, dx = phase_offset(pattern, k)
    p = period(pattern)
    mosaic, target = dihedral(mosaic, k), dihedral(target, k)
    h, w = mosaic.shape[0] - p, mosaic.shape[1] - p
    return mosaic[dy:dy + h, dx:dx + w], target[dy:dy + h, dx:dx + w]


def augment_packed(packed, target, k: int, pattern: str, order="canonical"):
    """Phase-true augmentation of a packed tensor (NumPy): unpack, transform, re-pack.

    Returns a packed tensor one packed pixel smaller in each dimension and the matching
    target crop.
    """
    mosaic = unpack(packed, pattern, order)
    mosaic, target = augment_mosaic(mosaic, target, k, pattern)
    return pack(mosaic, pattern, order), target



# --- Remosaic -------------------------------------------------------------------------------
# The classical pixel-swap remosaic (the alternative to 16-channel packing, measured in benchmarks/quad.py): in
# every 4 x 4 tile swap the two middle rows and the two middle columns. RRGG/RRGG/GGBB/GGBB becomes
# RGRG/GBGB/RGRG/GBGB, the base Bayer pattern twice over, for all four phases. Each colour's 2 x 2 block spreads
# over its four Bayer sites in the tile: the block's outer corner stays, its two edge neighbours move 1 px (one
# along the row, one along the column), the inner corner 1 px diagonally; 4 of 16 samples stay, 8 move 1 px, 4 move
# sqrt(2) px. Gr and Gb stay apart (per-colour black levels stay true). For each colour this is the least total
# squared displacement onto its Bayer sites (tests/test_quad_remosaic.py checks by brute force). No interpolation:
# a permutation, so a flat colour field remosaics exactly and a Bayer demosaic sees each sample at most 1.4 px from
# where it was taken (that displacement is the method's error).
REMOSAIC_ORDER = (0, 2, 1, 3)  # the rows (and columns) of a 4 x 4 tile in remosaiced order


def remosaic_quad(mosaic, pattern: str) -> tuple:
    """Quad Bayer mosaic (H x W, NumPy, H and W multiples of 4) -> (the same-size Bayer mosaic, its Bayer pattern)
    by the pixel swap above: every output sample is one input sample of the same colour, moved at most 1.4 px."""
    pattern = check_pattern(pattern)
    if not is_quad(pattern):
        raise ValueError(f"remosaic_quad takes a Quad Bayer mosaic, not {pattern}")
    mosaic = np.asarray(mosaic)
    h, w = mosaic.shape
    if h % 4 or w % 4:
        raise ValueError(f"a Quad Bayer mosaic's sides must be multiples of 4, got {w}x{h}")
    tiles = mosaic.reshape(h // 4, 4, w // 4, 4)[:, REMOSAIC_ORDER][..., REMOSAIC_ORDER]
    return tiles.reshape(h, w), base_pattern(pattern)
