"""sRGB <-> CIE L*a*b* (D65) and colour metrics: the colourisation task's one colour convention.

Every step is a small pure function on ``xp`` arrays: NumPy by default, or ``tf.experimental.numpy`` where the
same formula runs inside a TensorFlow graph (the training loop's validation), so the data pipeline, the scorer and
the stream runner all convert with one definition. Constants are scikit-image's (``rgb2lab``: sRGB primaries,
D65 white, 2-degree observer), which the tests check against.

A colourisation model reads L* / ``l_scale`` (1 channel) and writes (a*, b*) / ``ab_scale`` (2 channels, tanh
range); both scales are recorded in the recipe and the export manifest (:func:`model_input`, :func:`render`).
"""
from __future__ import annotations

import numpy as np

XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
RGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_RGB)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_EPSILON, _KAPPA = 0.008856, 7.787  # CIE's linear segment near black, as scikit-image writes it


def srgb_to_linear(rgb, xp=np):
    """Undo the sRGB transfer curve (values in [0, 1])."""
    return xp.where(rgb <= 0.04045, rgb / 12.92, xp.power((xp.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4))


def linear_to_srgb(linear, xp=np):
    """Apply the sRGB transfer curve; out-of-gamut values are clipped to [0, 1] first."""
    linear = xp.clip(linear, 0.0, 1.0)
    return xp.where(linear <= 0.0031308, linear * 12.92,
                    1.055 * xp.power(xp.maximum(linear, 0.0031308), 1 / 2.4) - 0.055)


def _f(t, xp):
    return xp.where(t > _EPSILON, xp.power(xp.maximum(t, _EPSILON), 1 / 3), _KAPPA * t + 16 / 116)


def _f_inverse(f, xp):
    return xp.where(f > 0.2068966, f ** 3, (f - 16 / 116) / _KAPPA)


def rgb_to_lab(rgb, xp=np):
    """sRGB in [0, 1] (..., 3) -> L* in [0, 100], a*, b* (..., 3)."""
    xyz = xp.matmul(srgb_to_linear(rgb, xp), XYZ_FROM_RGB.T.astype(np.float32)) / WHITE_D65.astype(np.float32)
    fx, fy, fz = _f(xyz[..., 0], xp), _f(xyz[..., 1], xp), _f(xyz[..., 2], xp)
    return xp.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def lab_to_rgb(lab, xp=np):
    """L*a*b* (..., 3) -> sRGB in [0, 1]; colours outside the sRGB gamut are clipped, as scikit-image does."""
    fy = (lab[..., 0] + 16) / 116
    fx, fz = fy + lab[..., 1] / 500, xp.maximum(fy - lab[..., 2] / 200, 0.0)
    xyz = xp.stack([_f_inverse(fx, xp), _f_inverse(fy, xp), _f_inverse(fz, xp)], axis=-1) * WHITE_D65.astype(
        np.float32)
    return linear_to_srgb(xp.matmul(xyz, RGB_FROM_XYZ.T.astype(np.float32)), xp)

# --- The model's input and output -----------------------------------------------------------


def model_input(rgb, l_scale: float, xp=np):
    """What a colourisation model reads: L* / l_scale of an sRGB image, (..., 1)."""
    return rgb_to_lab(rgb, xp)[..., :1] / l_scale


def model_target(rgb, ab_scale: float, xp=np):
    """What it is trained to write: (a*, b*) / ab_scale, (..., 2)."""
    return rgb_to_lab(rgb, xp)[..., 1:] / ab_scale


def render(l_in, ab_out, l_scale: float, ab_scale: float, xp=np):
    """The model's input L and output ab back to sRGB in [0, 1] (..., 3)."""
    return lab_to_rgb(xp.concatenate([l_in * l_scale, ab_out * ab_scale], axis=-1), xp)


def grey(rgb, xp=np):
    """The grey baseline: the image's own L* with a* = b* = 0 (what a model that learnt nothing shows)."""
    lab = rgb_to_lab(rgb, xp)
    return lab_to_rgb(xp.concatenate([lab[..., :1], xp.zeros_like(lab[..., 1:])], axis=-1), xp)

# --- Metrics (NumPy, one H x W x 3 image) ---------------------------------------------------


def colourfulness(rgb) -> float:
    """Hasler & Suesstrunk (2003) colourfulness on 0-255 sRGB: sigma_rgyb + 0.3 mu_rgyb. A grey image
    scores 0; their scale calls about 33 'moderately' and about 59 'quite' colourful."""
    rgb = np.asarray(rgb, np.float64) * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def delta_e2000(rgb_true, rgb_pred) -> float:
    """Mean CIEDE2000 colour difference between two sRGB images (scikit-image's ``deltaE_ciede2000``)."""
    from skimage.color import deltaE_ciede2000  # lazy: scikit-image only where colour is scored

    return float(np.mean(deltaE_ciede2000(rgb_to_lab(np.asarray(rgb_true, np.float64)),
                                          rgb_to_lab(np.clip(np.asarray(rgb_pred, np.float64), 0, 1)))))


__all__ = ["rgb_to_lab", "lab_to_rgb", "model_input", "model_target", "render", "grey", "colourfulness",
           "delta_e2000"]
