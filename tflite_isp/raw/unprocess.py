"""Unprocessing sRGB photos into linear Bayer RAW, and sensor noise models (pure NumPy).

Step by step after Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR
2019, arXiv:1811.11127; google-research ``unprocessing/unprocess.py``, Apache-2.0), written
anew here. The low-light model is the Gaussian+Poisson baseline of Wei et al., "A
Physics-based Noise Formation Model for Extreme Low-light Raw Denoising" (CVPR 2020;
github.com/Vandermode/ELD ``noise.py``), with their released (MIT) Sony A7S II
calibration. Every random draw takes an explicit ``np.random.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflite_isp.raw.bayer import cfa_colour_mask, period

#: XYZ -> camera matrices of the four Darmstadt Noise Dataset cameras (Brooks' random_ccm).
DND_XYZ_TO_CAM = np.array(
    [
        [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
        [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
        [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
        [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.5181]],
    ]
)

#: Linear sRGB -> XYZ, D65 white.
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)

#: Sony ILCE-7SM2 (SID's camera) XYZ(D65) -> camera, dcraw/RawTherapee camconst.json / 10000.
SONY_A7S2_XYZ_TO_CAM = np.array([[5838, -1430, -246], [-3497, 11477, 2297], [-748, 1885, 5778]]) / 10000.0


@dataclass(frozen=True)
class EldCamera:
    """ELD calibrated noise parameters: K range (DN/e-) and (slope, bias, sigma) lines in log space."""

    k_min: float
    k_max: float
    g_scale: tuple  # Gaussian read-noise sigma (DN) vs K
    r_scale: tuple  # row-noise sigma (DN) vs K


#: Vandermode/ELD camera_params/release/SonyA7S2_params.npy (MIT). K_max / K_min = 64,
#: i.e. ISO 100 .. 6400 if K is proportional to ISO (our reading, used only for labels).
SONY_A7S2 = EldCamera(k_min=0.09392, k_max=6.01063, g_scale=(0.5407, 1.2182, 0.2675), r_scale=(0.5275, -0.5917, 0.2943))


# --- Tone and colour --------------------------------------------------------------------

def smoothstep(x):
    """The global tone curve Brooks assume a camera applies: 3x^2 - 2x^3."""
    x = np.clip(x, 0.0, 1.0)
    return 3.0 * x**2 - 2.0 * x**3


def inverse_smoothstep(x):
    """Exact inverse of :func:`smoothstep` on [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * x) / 3.0)


def gamma_expansion(x):
    """Undo a 1/2.2 display gamma (floored at 1e-8 so the power stays finite)."""
    return np.maximum(x, 1e-8) ** 2.2


def gamma_compression(x):
    """Forward 1/2.2 display gamma, the inverse of :func:`gamma_expansion`."""
    return np.maximum(x, 1e-8) ** (1.0 / 2.2)


def apply_ccm(image, ccm):
    """Multiply every pixel of an H x W x 3 image by the 3 x 3 matrix ``ccm``."""
    return np.einsum("ij,...j->...i", np.asarray(ccm, image.dtype), image)


def rgb_to_cam(xyz_to_cam):
    """Linear sRGB -> camera matrix from an XYZ -> camera one, rows normalised so white stays white."""
    m = np.asarray(xyz_to_cam, np.float64) @ SRGB_TO_XYZ
    return m / m.sum(axis=1, keepdims=True)


def random_ccm(rng: np.random.Generator):
    """Brooks' random sRGB -> camera matrix: a convex mix of the four DND XYZ -> camera matrices."""
    weights = rng.uniform(1e-8, 1e8, size=len(DND_XYZ_TO_CAM))
    xyz_to_cam = np.tensordot(weights / weights.sum(), DND_XYZ_TO_CAM, axes=1)
    return rgb_to_cam(xyz_to_cam)


def random_gains(rng: np.random.Generator):
    """Brooks' random (rgb_gain, red_gain, blue_gain): brightness and white-balance gains."""
    rgb_gain = 1.0 / rng.normal(0.8, 0.1)
    red_gain = rng.uniform(1.9, 2.4)
    blue_gain = rng.uniform(1.5, 1.9)
    return rgb_gain, red_gain, blue_gain


def safe_invert_gains(image, rgb_gain, red_gain, blue_gain):
    """Divide out white balance and brightness, sparing near-white pixels so highlights stay saturated."""
    gains = np.array([1.0 / red_gain, 1.0, 1.0 / blue_gain]) / rgb_gain
    gray = image.mean(axis=-1, keepdims=True)
    mask = (np.maximum(gray - 0.9, 0.0) / 0.1) ** 2
    safe = np.maximum(mask + (1.0 - mask) * gains, gains)
    return image * safe.astype(image.dtype)


def mosaic(rgb, pattern: str):
    """H x W x 3 linear camera RGB -> H x W Bayer or Quad Bayer mosaic keeping one colour per photosite."""
    rgb = np.asarray(rgb)
    p = period(pattern)
    tile = np.vectorize({"R": 0, "Gr": 1, "Gb": 1, "B": 2}.get)(cfa_colour_mask(pattern, p, p))
    h, w = rgb.shape[:2]
    channel = np.tile(tile, (-(-h // p), -(-w // p)))[:h, :w]
    return np.take_along_axis(rgb, channel[..., None], axis=-1)[..., 0]


def unprocess(srgb, rgb2cam, gains, *, tone=True):
    """Brooks' chain for one sRGB image in [0, 1]: linear camera RGB in [0, 1], before mosaicking.

    ``gains`` is ``(rgb_gain, red_gain, blue_gain)``; ``tone=False`` skips the inverse tone curve.
    """
    x = np.asarray(srgb, np.float32)
    if tone:
        x = inverse_smoothstep(x)
    x = gamma_expansion(x)
    x = apply_ccm(x, rgb2cam)
    x = safe_invert_gains(x, *gains)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


# --- Noise: Brooks (normalised [0,1] raw) -----------------------------------------------

def brooks_noise_levels(rng: np.random.Generator):
    """Brooks' random (shot, read) variances on [0, 1] raw: log-uniform shot, read on a log-linear line."""
    log_shot = rng.uniform(np.log(1e-4), np.log(1.2e-2))
    log_read = 2.18 * log_shot + 1.20 + rng.normal(0.0, 0.26)
    return float(np.exp(log_shot)), float(np.exp(log_read))


def add_heteroscedastic_noise(x, shot, read, rng: np.random.Generator):
    """x + N(0, shot*x + read): the Gaussian approximation of Poisson-Gaussian sensor noise."""
    variance = np.maximum(shot * x + read, 0.0)
    return (x + rng.standard_normal(x.shape) * np.sqrt(variance)).astype(np.float32)


# --- Noise: ELD low-light capture (DN) --------------------------------------------------

def _log_line(log_k, line, rng):
    slope, bias, sigma = line
    return float(np.exp(slope * log_k + bias + rng.normal(0.0, sigma)))


def sample_eld_noise(rng: np.random.Generator, camera: EldCamera = SONY_A7S2):
    """One camera setting: system gain K (log-uniform) with read and row sigmas (DN) from ELD's lines."""
    log_k = rng.uniform(np.log(camera.k_min), np.log(camera.k_max))
    return {
        "K": float(np.exp(log_k)),
        "read_sigma": _log_line(log_k, camera.g_scale, rng),
        "row_sigma": _log_line(log_k, camera.r_scale, rng),
    }


def iso_for_gain(k: float, camera: EldCamera = SONY_A7S2) -> int:
    """Nominal ISO label for system gain K, taking K_min as ISO 100 and K proportional to ISO."""
    return int(round(100.0 * k / camera.k_min))


def lowlight_capture(clean_dn, ratio, rng: np.random.Generator, *, noise=None, black=512, white=16383):
    """A short exposure of a clean long-exposure mosaic, as uint16 DN with the black pedestal.

    ``clean_dn`` is the black-subtracted H x W signal of the long exposure; the short one
    collects ``1/ratio`` of it. ELD's Gaussian+Poisson baseline plus row noise:
    D = K * Poisson(y/K) + N(0, read) + N(0, row) per row, rounded to whole DN.
    ``noise`` is a :func:`sample_eld_noise` dict (drawn here when None).
    """
    noise = noise or sample_eld_noise(rng)
    k = noise["K"]
    y = np.maximum(np.asarray(clean_dn, np.float64) / ratio, 0.0)
    electrons = rng.poisson(y / k)  # photon shot noise lives in electrons, not DN
    dn = k * electrons + rng.normal(0.0, noise["read_sigma"], y.shape)
    dn = dn + rng.normal(0.0, noise["row_sigma"], (y.shape[0], 1))  # one offset per sensor row
    return np.clip(np.round(dn + black), 0, white).astype(np.uint16)


def to_dn(x, black, white):
    """Normalised raw in [0, 1] (noise may overshoot) -> whole DN with the black pedestal, clipped to [0, white]."""
    return np.clip(np.round(black + np.asarray(x, np.float64) * (white - black)), 0, white).astype(np.uint16)
