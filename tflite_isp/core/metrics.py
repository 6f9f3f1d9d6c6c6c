"""Fidelity metrics on [0, 1] RGB images: the project's one definition of PSNR and SSIM.

Predictions are clipped to [0, 1] first, as the MAI 2021 scorer did. SSIM is ``tf.image.ssim``'s:
11 x 11 Gaussian window (sigma 1.5), k1 0.01, k2 0.03, population covariance, averaged over the
VALID region and the channels (scikit-image's Gaussian SSIM agrees to 2e-5; tested). Training
uses the batched TensorFlow functions; scoring the per-image ones below, which average TF's
SSIM map exactly.

Aggregation over a set is where references differ most (reference-raw-data.md section 8):
:func:`mean_psnr` averages per-image PSNR (the headline here, and PyNET's and MAI's
``inference_tflite.py``), :func:`pooled_psnr` takes the PSNR of the MSE pooled over all pixels
(MAI 2021's ``train_model.py`` validation).
"""
from __future__ import annotations

import numpy as np

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03


# --- TensorFlow, per image of a batch (training and validation) ---------------------------

def psnr(y_true, y_pred):
    """Per-image PSNR in dB (batch,)."""
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    return tf.image.psnr(y_true, tf.clip_by_value(y_pred, 0.0, 1.0), max_val=1.0)


def ssim(y_true, y_pred):
    """Per-image SSIM (batch,): tf.image.ssim's map averaged in float64 (see :func:`image_ssim`)."""
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    index_map = tf.image.ssim(y_true, tf.clip_by_value(y_pred, 0.0, 1.0), max_val=1.0, filter_size=SSIM_WINDOW,
                              filter_sigma=SSIM_SIGMA, k1=SSIM_K1, k2=SSIM_K2, return_index_map=True)
    return tf.cast(tf.reduce_mean(tf.cast(index_map, tf.float64), axis=[-2, -1]), tf.float32)


# --- NumPy, one H x W x 3 image (scoring) ---------------------------------------------------

def squared_error(output: np.ndarray, target: np.ndarray) -> tuple:
    """(sum of squared errors, pixel count) of a clipped prediction: the pieces pooled PSNR adds up."""
    diff = np.clip(np.asarray(output, np.float64), 0.0, 1.0) - np.asarray(target, np.float64)
    return float(np.sum(diff * diff)), diff.size


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error on a [0, 1] scale (inf for a perfect match)."""
    return float("inf") if mse <= 0 else float(10.0 * np.log10(1.0 / mse))


def image_psnr(output: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of one image, prediction clipped to [0, 1]."""
    sse, n = squared_error(output, target)
    return psnr_of_mse(sse / n)


def image_ssim(output: np.ndarray, target: np.ndarray) -> float:
    """SSIM of one RGB image in [0, 1] (prediction clipped): ``tf.image.ssim``'s per-pixel map, averaged in float64.

    Not ``tf.image.ssim``'s scalar: it reduces the map over height and width in float32 along
    a strided axis, which drifts on large images (+0.0013 at 960 x 544, +0.011 at Full HD on a
    noisy pair, against the exact mean of its own map; tested). On small images the two agree
    to 1e-6.
    """
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    x = np.clip(np.asarray(output, np.float32), 0.0, 1.0)
    y = np.asarray(target, np.float32)
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"SSIM needs two H x W x C images of one shape, got {x.shape} and {y.shape}")
    if min(x.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got {x.shape[:2]}")
    index_map = tf.image.ssim(y, x, max_val=1.0, filter_size=SSIM_WINDOW, filter_sigma=SSIM_SIGMA, k1=SSIM_K1,
                              k2=SSIM_K2, return_index_map=True)
    return float(np.mean(index_map.numpy(), dtype=np.float64))


def mean_psnr(per_image) -> float:
    """Mean of per-image PSNRs: the headline figure."""
    return float(np.mean(per_image))


def pooled_psnr(errors) -> float:
    """PSNR of the MSE pooled over all pixels of all images, from (sse, count) pairs (MAI 2021 validation)."""
    sse = sum(e for e, _ in errors)
    n = sum(c for _, c in errors)
    return psnr_of_mse(sse / n)


__all__ = ["psnr", "ssim", "squared_error", "psnr_of_mse", "image_psnr", "image_ssim", "mean_psnr", "pooled_psnr"]
