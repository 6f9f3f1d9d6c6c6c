"""The classical-ISP baseline row: LibRaw (rawpy) AHD rendering of the same RAW inputs the models get.

Every RAW goes through one path: its Bayer mosaic, levels, white balance and colour matrix
are written to a temporary uncompressed DNG (:mod:`tflite_isp.dng`), which LibRaw renders
with ``use_camera_wb, no_auto_bright, output_bps=16, user_flip=0, adjust_maximum_thr=0`` and
the chosen demosaic (reference-raw-data.md section 6).

* ``rawpy`` splits (SID): levels, as-shot WB and the applied colour matrix come from the RAW
  file; the short exposure is amplified in the mosaic, ``black + (x - black) * ratio``
  clipped at white, i.e. the long exposure it stands for; gamma is the targets' own BT.709
  (2.222, 4.5). LibRaw's ``bright=ratio`` was measured and not used: it does multiply linear
  values (bright=2 matches a doubled DNG to 71 dB), but at SID ratios LibRaw's 16-bit
  integer pipeline keeps only ~65536/ratio levels (x300: 39.7 dB from the amplified DNG,
  1.6 % darker) and it clips after the colour matrix instead of at the raw white level.
* ``png`` splits (MAI 2021, Zurich): the PNG carries no metadata, so the levels come from the
  dataset (``sensor.json`` or the data), the colour matrix from ``sensor.json`` (else sRGB
  primaries are assumed) and the white balance from a gray-world estimate; sRGB gamma.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import rawpy

from tflite_isp.core.errors import fail
from tflite_isp.raw import dng, rawio
from tflite_isp.raw.bayer import COLOURS, base_pattern, colour_positions, is_quad, remosaic_quad
from tflite_isp.raw.unprocess import SRGB_TO_XYZ

SRGB_GAMMA = (2.4, 12.92)
BT709_GAMMA = (2.222, 4.5)  # LibRaw's default, the SID ground-truth recipe
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)  # as ColorMatrix1: a camera with sRGB primaries
FULL_HD_RAW = (1088, 1920)


def libraw_version() -> str:
    """LibRaw's version as ``0.22.2``."""

    return ".".join(map(str, rawpy.libraw_version))


@dataclass(frozen=True)
class Baseline:
    """Settings of the classical rendering, and the sentence the leaderboard shows for it."""

    demosaic: str = "AHD"

    def options(self, gamma) -> dict:
        """Keyword arguments of ``rawpy.RawPy.postprocess``."""

        return dict(use_camera_wb=True, no_auto_bright=True, output_bps=16, user_flip=0, adjust_maximum_thr=0.0,
                    gamma=tuple(gamma), demosaic_algorithm=getattr(rawpy.DemosaicAlgorithm, self.demosaic))

    def describe(self, split) -> str:
        """What this baseline does on ``split``: LibRaw version, demosaic, WB source, colour, gamma, brightness."""
        head = f"LibRaw {libraw_version()} {self.demosaic}"
        if is_quad(split.pattern):
            head += (f" of the {split.pattern} mosaic pixel-swap remosaiced to {base_pattern(split.pattern)} (middle "
                     "rows and columns of each 4x4 tile swapped; LibRaw has no Quad Bayer demosaic)")
        if split.raw_format == "rawpy":
            return (f"{head}, camera WB (as shot), the file's colour matrix, BT.709 gamma {BT709_GAMMA} as the "
                    "targets (SID GT recipe), short exposure amplified by the pair's ratio in the mosaic "
                    "(black + (x-black)*ratio, clipped at white)")
        colour = ("colour matrix xyz_to_cam from sensor.json" if sensor_matrix(split.root) is not None
                  else "camera assumed to have sRGB primaries (no xyz_to_cam in sensor.json)")
        white = ("white from sensor.json" if all(p.white > 0 for p in split.pairs)
                 else "white guessed per image (next 2^k-1 >= its max)")
        return (f"{head}, gray-world WB (PNG RAWs carry no as-shot WB), {colour}, {white}, "
                f"sRGB gamma {SRGB_GAMMA}, brightness ratio 1 (no auto-bright)")


@dataclass(frozen=True)
class Frame:
    """Everything that goes into the temporary DNG, and the gamma to render it with."""

    mosaic: np.ndarray  # uint16, H x W, even sides
    pattern: str
    black: tuple  # per colour, (R, Gr, Gb, B)
    white: int
    neutral: tuple  # camera-space white (R, G, B), green 1
    xyz_to_cam: np.ndarray
    gamma: tuple

# --- Pure pieces --------------------------------------------------------------------------


def _colour_planes(mosaic, pattern) -> dict:
    """Colour name -> its sub-sampled plane of the mosaic."""
    return {c: mosaic[dy::2, dx::2] for c, (dy, dx) in colour_positions(pattern).items()}


def gray_world_neutral(mosaic, pattern, black) -> tuple:
    """Camera-space neutral (R, G, B), green 1: the mean of (x - black) per colour (gray-world assumption)."""
    planes = _colour_planes(np.asarray(mosaic, np.float64), pattern)
    means = {c: float(np.mean(planes[c] - b)) for c, b in zip(COLOURS, black)}
    green = (means["Gr"] + means["Gb"]) / 2
    if min(means["R"], means["B"], green) <= 0:
        return (1.0, 1.0, 1.0)  # no signal to estimate from: leave the camera's colours alone
    return tuple(float(np.clip(v / green, 1e-3, 1e3)) for v in (means["R"], green, means["B"]))


def guess_white(mosaic) -> int:
    """The smallest 2^k - 1 at or above the data's maximum (the bit depth guessed from the data)."""
    return int(2 ** max(1, int(np.max(mosaic)).bit_length()) - 1)


def amplify(mosaic, pattern, black, white, ratio) -> np.ndarray:
    """``black + (x - black) * ratio`` per colour, rounded, clipped to [0, white]: an exposure ``ratio`` x longer."""
    if ratio == 1:
        return np.asarray(mosaic, np.uint16)
    level = np.empty(np.shape(mosaic), np.float64)
    for c, (dy, dx) in colour_positions(pattern).items():
        level[dy::2, dx::2] = black[COLOURS.index(c)]
    out = level + (np.asarray(mosaic, np.float64) - level) * float(ratio)
    return np.clip(np.round(out), 0, white).astype(np.uint16)


def xyz_to_cam_from_rgb_cam(rgb_cam) -> np.ndarray:
    """A ColorMatrix1 that makes LibRaw apply ``rgb_cam`` (its camera -> sRGB matrix) again.

    LibRaw builds rgb_cam = inverse(row-normalised xyz_to_cam @ sRGB->XYZ). As it normalises
    the rows itself, they are scaled here to a largest magnitude of 1000, so the DNG's 1/10000
    rationals keep seven digits: a rewritten file renders to 82-122 dB of the original (72 dB
    with the matrix rounded at magnitude 1).
    """
    rgb_cam = np.asarray(rgb_cam, np.float64)[:3, :3]
    if not np.all(np.isfinite(rgb_cam)) or abs(np.linalg.det(rgb_cam)) < 1e-9:
        return XYZ_TO_SRGB
    m = np.linalg.inv(rgb_cam) @ np.linalg.inv(SRGB_TO_XYZ)
    return 1000.0 * m / np.abs(m).max(axis=1, keepdims=True)


def tile_to(mosaic, shape) -> np.ndarray:
    """Repeat a mosaic, mirrored in whole 2x2 blocks so the CFA phase holds, then crop to ``shape``."""
    h, w = mosaic.shape
    blocks = mosaic.reshape(h // 2, 2, w // 2, 2)
    flip_x = blocks[:, :, ::-1].reshape(h, w)
    row = np.concatenate([mosaic, flip_x], axis=1)
    flip_y = row.reshape(h // 2, 2, 2 * w)[::-1].reshape(h, 2 * w)
    tile = np.concatenate([row, flip_y], axis=0)
    reps = (-(-shape[0] // tile.shape[0]), -(-shape[1] // tile.shape[1]))
    return np.ascontiguousarray(np.tile(tile, reps)[: shape[0], : shape[1]])

# --- Reading the inputs -------------------------------------------------------------------


def as_bayer(mosaic, pattern) -> tuple:
    """(mosaic, pattern) LibRaw can demosaic: a Quad Bayer mosaic (cropped to multiples of 4) pixel-swap remosaiced
    to its base Bayer pattern (bayer.remosaic_quad; LibRaw has no 4x4 CFA demosaic), a Bayer one as it is."""
    if not is_quad(pattern):
        return mosaic, pattern
    h, w = mosaic.shape
    return remosaic_quad(mosaic[: h - h % 4, : w - w % 4], pattern)


def read_bayer_png(path) -> np.ndarray:
    """A 16-bit single-channel Bayer PNG as uint16 H x W, cropped to even size."""

    path = Path(path)
    if not path.is_file():
        raise fail(path, "no such file")
    try:
        raw = iio.imread(path, extension=".png")
    except Exception as err:  # imageio/PIL raise OSError, ValueError, SyntaxError or zlib.error on bad files
        raise fail(path, f"cannot decode the Bayer PNG ({type(err).__name__}: {err})") from None
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise fail(path, f"RAW PNG must be 16-bit single-channel Bayer, found {raw.dtype} {raw.shape}")
    h, w = raw.shape
    return raw[: h - h % 2, : w - w % 2]


def sensor_matrix(root):
    """``xyz_to_cam`` from ``<root>/sensor.json`` as a 3x3 array, or None where there is none."""
    path = Path(root) / "sensor.json"
    if not path.is_file():
        return None
    try:
        matrix = json.loads(path.read_text()).get("xyz_to_cam")
    except (ValueError, AttributeError) as err:
        raise fail(path, f"not a valid sensor.json ({err})") from None
    if matrix is None:
        return None
    matrix = np.asarray(matrix, np.float64)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise fail(path, f"xyz_to_cam must be a 3x3 matrix, found shape {matrix.shape}")
    return matrix


def _png_frame(pair, split) -> Frame:
    """A MAI/Zurich PNG RAW with the dataset's levels, gray-world WB and sensor.json colour."""
    mosaic, pattern = as_bayer(read_bayer_png(pair.raw), split.pattern)
    black = tuple(float(round(b)) for b in pair.black)
    white = int(round(pair.white)) if pair.white > 0 else guess_white(mosaic)
    if not max(black) < white <= 65535:
        raise fail(pair.raw, f"black level {max(black):g} and white level {white} leave no signal range")
    matrix = sensor_matrix(split.root)
    neutral = gray_world_neutral(mosaic, pattern, black)
    return Frame(amplify(mosaic, pattern, black, white, pair.ratio), pattern, black, white, neutral,
                 XYZ_TO_SRGB if matrix is None else matrix, SRGB_GAMMA)


def _rawpy_frame(pair) -> Frame:
    """A camera RAW with its own levels, as-shot WB and colour matrix, amplified by the pair's ratio."""

    raw = rawio.read_raw(pair.raw)
    with rawio._open(pair.raw) as handle:
        rgb_cam = np.array(handle.color_matrix, np.float64)
    white = int(round(raw.white))
    black = tuple(float(round(b)) for b in raw.black)
    neutral = (1.0 / raw.wb[0], 1.0, 1.0 / raw.wb[3])
    mosaic, pattern = as_bayer(raw.mosaic, raw.pattern)
    return Frame(amplify(mosaic, pattern, black, white, pair.ratio), pattern, black, white, neutral,
                 xyz_to_cam_from_rgb_cam(rgb_cam), BT709_GAMMA)


def frame(pair, split) -> Frame:
    """The mosaic, levels, white balance, colour matrix and gamma the baseline renders ``pair`` with."""
    return _rawpy_frame(pair) if split.raw_format == "rawpy" else _png_frame(pair, split)

# --- Rendering ----------------------------------------------------------------------------


def _write(fr: Frame, path, mosaic=None) -> Path:
    """Write ``fr`` (or another mosaic with its settings) as a DNG."""
    return dng.write_dng(path, fr.mosaic if mosaic is None else mosaic, pattern=fr.pattern, black=fr.black,
                         white=fr.white, xyz_to_cam=fr.xyz_to_cam, as_shot_neutral=fr.neutral,
                         model="classical baseline")


def _to_float(rgb) -> np.ndarray:
    """16-bit LibRaw output -> float32 in [0, 1], cropped to even size."""
    h, w, _ = rgb.shape
    return rgb[: h - h % 2, : w - w % 2].astype(np.float32) / np.float32(65535.0)


def render(pair, split, baseline: Baseline = Baseline()) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1], the same H x W as the RAW mosaic cropped to even size (the target's region)."""

    fr = frame(pair, split)
    with tempfile.TemporaryDirectory(prefix="tflite_isp-baseline-") as tmp:
        path = _write(fr, Path(tmp) / "frame.dng")
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(**baseline.options(fr.gamma))
    return _to_float(rgb)


def time_full_hd(pair, split, baseline: Baseline = Baseline(), repeats: int = 5) -> dict:
    """Median/p95 ms of one LibRaw rendering of a Full HD RAW (1088 x 1920) made from ``pair``'s mosaic.

    The mosaic is block-mirrored up to that size and written once as a DNG; after one untimed
    warm-up (which also decodes the file) ``postprocess`` is timed ``repeats`` times.
    """

    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    fr = frame(pair, split)
    times = []
    with tempfile.TemporaryDirectory(prefix="tflite_isp-baseline-") as tmp:
        path = _write(fr, Path(tmp) / "full_hd.dng", tile_to(fr.mosaic, FULL_HD_RAW))
        options = baseline.options(fr.gamma)
        with rawpy.imread(str(path)) as raw:
            raw.postprocess(**options)
            for _ in range(repeats):
                start = time.perf_counter()
                raw.postprocess(**options)
                times.append((time.perf_counter() - start) * 1000.0)
    threads = "OpenMP" if rawpy.flags.get("OPENMP") else "single-threaded"
    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    return {
        "median_ms": float(np.median(times)),
        "p95_ms": float(np.percentile(times, 95)),
        "repeats": repeats,
        "size": list(FULL_HD_RAW),
        "note": (f"LibRaw {libraw_version()} {baseline.demosaic} postprocess (16-bit output) of a "
                 f"{FULL_HD_RAW[1]}x{FULL_HD_RAW[0]} uncompressed DNG, the pair's mosaic mirrored to size; file decode "
                 f"excluded (one warm-up call); {threads} build, OMP_NUM_THREADS={omp}, {os.cpu_count()} CPUs"),
    }


__all__ = ["Baseline", "render", "time_full_hd", "frame", "gray_world_neutral", "guess_white", "amplify",
           "tile_to", "libraw_version"]
