"""Writing uncompressed Bayer CFA DNGs that LibRaw (rawpy) reads back exactly.

The tag set was established by removing one tag at a time and reading back with rawpy
0.28 / LibRaw 0.22.2 (team notes, reference-raw-data.md section 5). Compressed DNGs are
not written: this LibRaw build cannot read Deflate and mis-decodes lossless JPEG.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from tflite_isp.core import atomic
from tflite_isp.core.errors import fail
from tflite_isp.raw.bayer import COLOURS, cfa_colour_mask, check_pattern, is_quad, layout, period

# TIFF field types
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _SRATIONAL, _DOUBLE = 1, 2, 3, 4, 5, 10, 12
_CFA_CODE = {"R": 0, "G": 1, "B": 2}
_D65 = 21
#: Fujifilm's X-Trans 6 x 6 colour filter, one string per row (for ``cfa_repeat``: a non-Bayer test file)
XTRANS = ("GGRGGB", "GGBGGR", "BRGRBG", "GGBGGR", "GGRGGB", "RBGBRG")


def _rationals(values, denominator: int):
    """Flatten numbers into (numerator, denominator) pairs with a fixed denominator."""
    return tuple(v for x in values for v in (int(round(float(x) * denominator)), denominator))


def _ascii(text: str) -> str:
    return str(text).encode("ascii", "replace").decode("ascii")


def _black_tags(black, pattern: str):
    """BlackLevel as one value, or per colour in CFA *position* order with BlackLevelRepeatDim (2, 2), or (4, 4)
    (16 values) for a Quad Bayer pattern."""
    black = np.atleast_1d(np.asarray(black, np.float64))
    if black.size not in (1, 4) or np.any(black != np.round(black)) or np.any(black < 0):
        raise ValueError(f"black must be one whole number or four (R, Gr, Gb, B), got {black.tolist()}")
    if black.size == 1:
        return [(50714, _SHORT, 1, int(black[0]), True)]
    by_colour = dict(zip(COLOURS, black.astype(int).tolist()))
    p = period(pattern)
    values = tuple(by_colour[c] for c in cfa_colour_mask(pattern, p, p).ravel())
    return [(50713, _SHORT, 2, (p, p), True), (50714, _SHORT, p * p, values, True)]


def _cfa_tags(pattern: str, cfa_repeat):
    """CFARepeatPatternDim and CFAPattern: the 2 x 2 Bayer ``pattern``, or ``cfa_repeat`` (rows of R/G/B letters)."""
    if cfa_repeat is None:
        return [(33421, _SHORT, 2, (2, 2), True), (33422, _BYTE, 4, bytes(_CFA_CODE[c] for c in pattern), True)]
    rows = [str(r).upper() for r in cfa_repeat]
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0] or any(set(r) - set(_CFA_CODE) for r in rows):
        raise ValueError(f"cfa_repeat must be equal-length rows of R, G, B letters, got {list(cfa_repeat)}")
    codes = bytes(_CFA_CODE[c] for r in rows for c in r)
    return [(33421, _SHORT, 2, (len(rows), len(rows[0])), True), (33422, _BYTE, len(codes), codes, True)]


def dng_tags(*, pattern, black, white, xyz_to_cam, as_shot_neutral, make, model,
             exposure_time=None, iso=None, orientation=1, cfa_repeat=None, noise_profile=None):
    """The extra TIFF tags (tifffile ``extratags`` tuples) of a minimal, complete CFA DNG.

    ``cfa_repeat`` (rows of R/G/B letters, e.g. :data:`XTRANS`) replaces the 2 x 2 ``pattern`` in the CFA tags;
    ``black`` must then be one value. A Quad Bayer ``pattern`` (``quad-RGGB``) writes its 4 x 4 layout.
    ``noise_profile`` is DNG's NoiseProfile: (S, O) pairs, one pair for all planes
    or one per colour plane, with variance = S * x + O for a signal x in [0, 1]."""
    pattern = check_pattern(pattern)
    if cfa_repeat is None and is_quad(pattern):
        return dng_tags(pattern=pattern, black=black, white=white, xyz_to_cam=xyz_to_cam,
                        as_shot_neutral=as_shot_neutral, make=make, model=model, exposure_time=exposure_time,
                        iso=iso, orientation=orientation, cfa_repeat=layout(pattern), noise_profile=noise_profile)
    quad = is_quad(pattern) and tuple(cfa_repeat) == layout(pattern)
    if cfa_repeat is not None and not quad and np.atleast_1d(np.asarray(black)).size != 1:
        raise ValueError("black must be one value with cfa_repeat (per-colour levels follow the 2 x 2 pattern)")
    xyz_to_cam = np.asarray(xyz_to_cam, np.float64)
    neutral = np.asarray(as_shot_neutral, np.float64)
    if xyz_to_cam.shape != (3, 3):
        raise ValueError(f"xyz_to_cam must be 3x3, got shape {xyz_to_cam.shape}")
    if neutral.shape != (3,) or np.any(neutral <= 0):
        raise ValueError(f"as_shot_neutral must be three positive numbers, got {neutral.tolist()}")
    if not 0 < int(white) <= 65535:
        raise ValueError(f"white level {white} outside 1..65535")
    tags = [
        (271, _ASCII, 0, _ascii(make), True),
        (272, _ASCII, 0, _ascii(model), True),
        (274, _SHORT, 1, int(orientation), True),  # Orientation (TIFF/EXIF: 1 upright, 3, 6, 8 rotated)
        *_cfa_tags(pattern, cfa_repeat),  # CFARepeatPatternDim, CFAPattern
        (50706, _BYTE, 4, bytes((1, 4, 0, 0)), True),  # DNGVersion: without it no colour matrix
        (50707, _BYTE, 4, bytes((1, 1, 0, 0)), True),  # DNGBackwardVersion
        (50708, _ASCII, 0, _ascii(f"{make} {model}"), True),  # UniqueCameraModel
        (50710, _BYTE, 3, bytes((0, 1, 2)), True),  # CFAPlaneColor
        (50711, _SHORT, 1, 1, True),  # CFALayout: rectangular
        *_black_tags(black, pattern),
        (50717, _LONG, 1, int(white), True),  # WhiteLevel
        (50721, _SRATIONAL, 9, _rationals(xyz_to_cam.ravel(), 10000), True),  # ColorMatrix1
        (50728, _RATIONAL, 3, _rationals(neutral, 1_000_000), True),  # AsShotNeutral
        (50778, _SHORT, 1, _D65, True),  # CalibrationIlluminant1
    ]
    if exposure_time is not None:
        tags.append((33434, _RATIONAL, 1, _rationals([exposure_time], 1_000_000), True))
    if iso is not None:
        tags.append((34855, _SHORT, 1, int(iso), True))  # ISOSpeedRatings
    if noise_profile is not None:
        values = tuple(float(v) for v in np.ravel(noise_profile))
        if len(values) not in (2, 6) or any(v < 0 for v in values):
            raise ValueError(f"noise_profile must be 2 or 6 non-negative numbers (S, O pairs), got {list(values)}")
        tags.append((51041, _DOUBLE, len(values), values, True))  # NoiseProfile
    return sorted(tags, key=lambda t: t[0])


def write_dng(path, mosaic_uint16, *, pattern, black, white, xyz_to_cam, as_shot_neutral,
              make="tflite_isp", model="synthetic", exposure_time=None, iso=None, orientation=1,
              cfa_repeat=None, noise_profile=None) -> Path:
    """Write an H x W uint16 Bayer (or Quad Bayer: ``pattern="quad-RGGB"``) mosaic as an uncompressed CFA DNG,
    atomically.

    ``black`` is one value or four in (R, Gr, Gb, B) colour order; ``xyz_to_cam`` is the
    XYZ(D65) -> camera ColorMatrix1; ``as_shot_neutral`` the camera-space white (R, G, B).
    ``cfa_repeat`` (rows of R/G/B letters, e.g. :data:`XTRANS`) writes another colour filter
    than the 2 x 2 ``pattern`` (LibRaw reads a 6 x 6 one as X-Trans); default: the Bayer ``pattern``.
    """

    path = Path(path)
    raw = np.asarray(mosaic_uint16)
    p = period(pattern)
    if raw.ndim != 2 or raw.dtype != np.uint16 or raw.shape[0] % p or raw.shape[1] % p:
        raise ValueError(f"mosaic must be a 2-D uint16 array with sides multiples of {p}, got {raw.dtype} "
                         f"{raw.shape}")
    tags = dng_tags(pattern=pattern, black=black, white=white, xyz_to_cam=xyz_to_cam,
                    as_shot_neutral=as_shot_neutral, make=make, model=model,
                    exposure_time=exposure_time, iso=iso, orientation=orientation, cfa_repeat=cfa_repeat,
                    noise_profile=noise_profile)
    if path.is_dir():
        raise fail(path, "is a folder, expected a .dng file name")
    if not path.parent.is_dir():
        raise fail(path.parent, "no such folder to write the DNG into")
    try:
        with atomic.replacing(path) as tmp:
            tifffile.imwrite(tmp, raw, photometric="cfa", extratags=tags, software="tflite_isp", metadata=None)
    except OSError as err:
        raise fail(path, f"cannot write DNG ({err.strerror or err})") from None
    return path
