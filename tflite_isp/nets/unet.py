"""SID U-Net (Chen et al., CVPR 2018), with a width multiplier and a depthwise-separable switch.

Encoder: two 3x3 convs + LeakyReLU(0.2) per level, 2x2 max-pool. Decoder: 2x2 stride-2
transposed conv (no bias, linear), concatenate with the skip, two 3x3 convs. Head: 1x1 conv
to 12 channels and pixel shuffle x2 -> RGB at full sensor resolution.
"""
from tflite_isp._tf import keras
from tflite_isp.nets.layers import PixelShuffle

L = keras.layers


def _conv(x, channels, separable, name):
    if separable and x.shape[-1] > 4:
        x = L.DepthwiseConv2D(3, padding="same", name=f"{name}_dw")(x)
        x = L.Conv2D(channels, 1, name=f"{name}_pw")(x)
    else:
        x = L.Conv2D(channels, 3, padding="same", name=name)(x)
    return L.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def _block(x, channels, separable, name):
    x = _conv(x, channels, separable, f"{name}a")
    return _conv(x, channels, separable, f"{name}b")


def scaled_widths(widths, width_multiplier: float):
    """Channel counts after the width multiplier (at least 4 each)."""
    return [max(4, int(round(w * width_multiplier))) for w in widths]


def unet(inputs, *, widths=(32, 64, 128, 256, 512), width_multiplier=1.0, separable=False):
    """Packed RAW -> RGB at twice the packed resolution (7,760,268 parameters at width 1)."""
    widths = scaled_widths(widths, width_multiplier)
    x, skips = inputs, []
    for level, c in enumerate(widths[:-1], start=1):
        x = _block(x, c, separable, f"conv{level}")
        skips.append(x)
        x = L.MaxPool2D(2, padding="same", name=f"pool{level}")(x)
    x = _block(x, widths[-1], separable, f"conv{len(widths)}")
    for level, (c, skip) in enumerate(zip(reversed(widths[:-1]), reversed(skips)), start=len(widths) + 1):
        x = L.Conv2DTranspose(c, 2, strides=2, padding="same", use_bias=False, name=f"up{level}")(x)
        x = L.Concatenate(name=f"concat{level}")([x, skip])
        x = _block(x, c, separable, f"conv{level}")
    x = L.Conv2D(12, 1, name="head")(x)
    return PixelShuffle(2, name="pixel_shuffle")(x)


def input_multiple(widths=(32, 64, 128, 256, 512), **_):
    """Packed height and width must be divisible by this (one 2x pool per level but the last)."""
    return 2 ** (len(widths) - 1)
