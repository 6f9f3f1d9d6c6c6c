"""Fidelity metrics on [0, 1] images, per image (TensorFlow ops, used in training and validation).

SSIM is ``tf.image.ssim`` (11x11 Gaussian, sigma 1.5, k1 0.01, k2 0.03), the MAI 2021
convention; predictions are clipped to [0, 1] first, as the challenge scorer did.
"""
from tflite_isp._tf import tf


def psnr(y_true, y_pred):
    """Per-image PSNR in dB (batch,)."""
    return tf.image.psnr(y_true, tf.clip_by_value(y_pred, 0.0, 1.0), max_val=1.0)


def ssim(y_true, y_pred):
    """Per-image SSIM (batch,), as tf.image.ssim computes it."""
    return tf.image.ssim(y_true, tf.clip_by_value(y_pred, 0.0, 1.0), max_val=1.0)
