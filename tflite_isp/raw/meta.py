"""What a RAW file says about its camera and shot: make, model, ISO, exposure, CFA tags, DNG colour and noise tags.

LibRaw (rawpy) decodes pixels but exposes neither the make and model nor the DNG's ForwardMatrix and NoiseProfile,
and it folds a 4 x 4 CFARepeatPatternDim into a 2 x 2 pattern (measured with rawpy 0.28: a Quad Bayer DNG reads
back as ``[[0, 0], [1, 1]]``). TIFF-based RAW files (DNG, and most makers' own formats) carry these as TIFF tags,
read here with tifffile; the rest comes from rawpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflite_isp.core.errors import fail
from tflite_isp.raw import cfa_tags, rawio


@dataclass(frozen=True)
class FileMeta:
    """Camera and shot metadata of one RAW file (None where the file does not say)."""

    path: str
    make: str = ""
    model: str = ""
    iso: float | None = None
    exposure_time: float | None = None
    orientation: int = 1
    cfa: tuple | None = None  # rows of colour letters from the CFA tags, e.g. ("RG", "GB"); None: not in tags
    color_matrix: tuple | None = None  # DNG ColorMatrix1, XYZ -> camera, 3 x 3 rows
    libraw_matrix: tuple | None = None  # LibRaw's XYZ -> camera for the camera (rawpy rgb_xyz_matrix); None: all 0
    forward_matrix: tuple | None = None  # DNG ForwardMatrix1, white-balanced camera -> XYZ(D50), 3 x 3 rows
    as_shot_neutral: tuple | None = None
    noise_profile: tuple | None = None  # DNG NoiseProfile (S, O) pairs: variance = S * x + O on x in [0, 1]
    is_dng: bool = False

    @property
    def camera(self) -> str:
        return f"{self.make} {self.model}".strip()


def _rows(values, shape) -> tuple:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(values, np.float64).reshape(shape))


def _ratio_values(value) -> list:
    """TIFF (S)RATIONAL tag values as floats: tifffile gives a flat tuple of numerator, denominator pairs."""
    flat = np.asarray(value, np.float64).ravel()
    return (flat[0::2] / flat[1::2]).tolist() if flat.size % 2 == 0 else flat.tolist()


def _tiff_tags(path: Path) -> dict:
    """Tag code -> value of the RAW image's IFD (the CFA one where there are several), {} for a non-TIFF file."""
    import tifffile  # lazy: only files' metadata needs it

    try:
        with tifffile.TiffFile(path) as tif:
            tags = {t.code: t.value for t in tif.pages[0].tags.values()}
            exif = tags.get(34665)
            for page in tif.pages:  # DNGs may keep the RAW in a SubIFD and a preview in IFD0
                codes = {t.code: t.value for t in page.tags.values()}
                if 33422 in codes:
                    tags.update(codes)
            if isinstance(exif, dict):
                tags.update({tifffile.TIFF.TAGS.get(k, k) if isinstance(k, int) else k: v for k, v in exif.items()})
            return tags
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError):
        return {}


def read_meta(path) -> FileMeta:
    """Metadata of one RAW file; a file rawpy cannot open is the same one-line error as :func:`rawio.read_raw`."""
    path = Path(path)
    with rawio._open(path) as raw:
        other = raw.other
        iso = float(other.iso_speed) or None
        shutter = float(other.shutter_speed) or None
        flip = int(raw.sizes.flip)
        libraw = np.asarray(raw.rgb_xyz_matrix, np.float64)[:3]
    tags = _tiff_tags(path)

    def text(code):
        value = tags.get(code)
        return value.strip("\x00 ").strip() if isinstance(value, str) else ""

    def matrix(code):
        value = tags.get(code)
        return _rows(_ratio_values(value), (3, 3)) if value is not None and len(_ratio_values(value)) == 9 else None

    iso_tag = tags.get(34855, tags.get("ISOSpeedRatings"))
    if iso_tag is not None:
        iso = float(np.ravel(iso_tag)[0]) or iso
    exposure = tags.get(33434, tags.get("ExposureTime"))
    if exposure is not None:
        exposure = _ratio_values(exposure)[0]
    neutral = tags.get(50728)
    noise = tags.get(51041)
    return FileMeta(
        path=str(path), make=text(271), model=text(272), iso=iso, exposure_time=exposure or shutter,
        orientation=int(np.ravel(tags.get(274, 1))[0]) if 274 in tags else {0: 1, 3: 3, 5: 8, 6: 6}.get(flip, 1),
        cfa=cfa_tags.parse(tags)[0], color_matrix=matrix(50721), forward_matrix=matrix(50964),
        libraw_matrix=_rows(libraw, (3, 3)) if libraw.any() else None,
        as_shot_neutral=tuple(_ratio_values(neutral)) if neutral is not None else None,
        noise_profile=tuple(float(v) for v in np.ravel(noise)) if noise is not None else None,
        is_dng=50706 in tags,
    )


def require_camera(metas) -> str:
    """The one camera that all files come from, by make and model; files from two cameras are a one-line error."""
    cameras = {}
    for m in metas:
        cameras.setdefault(m.camera, m.path)
    if len(cameras) > 1:
        (a, pa), (b, pb) = list(cameras.items())[:2]
        raise fail(pb, f"is from another camera ({b or 'unknown camera'}) than {Path(pa).name} "
                       f"({a or 'unknown camera'}); a sensor profile describes one camera")
    return next(iter(cameras), "")
