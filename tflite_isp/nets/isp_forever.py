"""isp_forever's MAI 2021 Learned Smartphone ISP network (Ignatov et al., arXiv:2105.07809 §4), from the report's
prose ("a truncated U-Net with a channel-attention module"); no code was published, so the depth, widths, the
attention's place and the head are inferred (see models/isp_forever.toml).

Read as the SID U-Net cut to ``len(widths)`` levels (SID and PUNET have five): two 3x3 convs (LeakyReLU 0.2) per
level, 2x2 max-pool; squeeze-and-excitation channel attention on the bottleneck; 2x2 stride-2 transposed convs,
concatenated skips; a 1x1 conv to 12 channels and pixel shuffle x2 to full resolution.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle

L = keras.layers


def _conv(x, channels, name):
    x = L.Conv2D(channels, 3, padding="same", name=name)(x)
    return L.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def channel_attention(x, *, reduction: int, name: str = "attention"):
    """Squeeze (global mean) -> 1x1 conv (ReLU) -> 1x1 conv (sigmoid) -> per-channel scale of ``x``."""
    channels = x.shape[-1]
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(x)
    s = L.Conv2D(max(1, channels // reduction), 1, activation="relu", name=f"{name}_down")(s)
    s = L.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_up")(s)
    return L.Multiply(name=f"{name}_scale")([x, s])


def isp_forever(inputs, *, widths=(10, 20, 36), reduction=4):
    """Packed RAW -> RGB at twice the packed resolution (43,001 parameters with the defaults)."""
    x, skips = inputs, []
    for level, c in enumerate(widths[:-1], start=1):
        x = _conv(_conv(x, c, f"conv{level}a"), c, f"conv{level}b")
        skips.append(x)
        x = L.MaxPool2D(2, name=f"pool{level}")(x)
    n = len(widths)
    x = _conv(_conv(x, widths[-1], f"conv{n}a"), widths[-1], f"conv{n}b")
    x = channel_attention(x, reduction=reduction)
    for level, (c, skip) in enumerate(zip(reversed(widths[:-1]), reversed(skips)), start=n + 1):
        x = L.Conv2DTranspose(c, 2, strides=2, padding="same", use_bias=False, name=f"up{level}")(x)
        x = L.Concatenate(name=f"concat{level}")([x, skip])
        x = _conv(_conv(x, c, f"conv{level}a"), c, f"conv{level}b")
    x = L.Conv2D(12, 1, name="head")(x)
    return PixelShuffle(2, name="pixel_shuffle")(x)


def input_multiple(widths=(10, 20, 36), **_):
    """Packed height and width must be divisible by this (one 2x pool per level but the last)."""
    return 2 ** (len(widths) - 1)
