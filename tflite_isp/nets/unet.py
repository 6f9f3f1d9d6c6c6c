"""SID U-Net (Chen et al., CVPR 2018), with a width multiplier, a depthwise-separable switch and
per-layer channel counts (what structured channel pruning leaves).

Encoder: two 3x3 convs + LeakyReLU(0.2) per level, 2x2 max-pool. Decoder: 2x2 stride-2
transposed conv (no bias, linear), concatenate with the skip, two 3x3 convs. Head: 1x1 conv
to 12 channels and pixel shuffle x2 -> RGB at full sensor resolution.

``batch_norm`` (as SID reproduction studies train it; off in the paper's code): every 3x3 conv loses its bias and
gets a BatchNormalization before the LeakyReLU; the converter folds each into its conv. ``dropout`` > 0 puts one
Dropout after the bottleneck's second conv (identity at inference, absent from a converted file).
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle, conv3x3

L = keras.layers


def _conv(x, channels, separable, name, batch_norm=False):
    x = conv3x3(x, channels, separable=separable, name=name, use_bias=not batch_norm)
    if batch_norm:
        x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def scaled_widths(widths, width_multiplier: float):
    """Channel counts after the width multiplier (at least 4 each)."""
    return [max(4, int(round(w * width_multiplier))) for w in widths]


def layer_widths(widths, width_multiplier=1.0, channels=None) -> dict:
    """Output channels of every prunable layer by name (conv{L}a/b, up{L}); ``channels`` overrides."""
    widths = scaled_widths(widths, width_multiplier)
    n = len(widths)
    out = {}
    for level, c in enumerate(widths, start=1):
        out[f"conv{level}a"] = out[f"conv{level}b"] = c
    for level, c in enumerate(reversed(widths[:-1]), start=n + 1):
        out[f"up{level}"] = out[f"conv{level}a"] = out[f"conv{level}b"] = c
    for name, c in (channels or {}).items():
        if name not in out:
            raise ValueError(f"unet has no layer {name!r} to set channels of (layers: {', '.join(out)})")
        if not isinstance(c, int) or c < 1:
            raise ValueError(f"channels of {name} must be a positive integer, not {c!r}: "
                             "a layer cannot lose every filter")
        out[name] = c
    return out


def encoder(inputs, *, widths, separable, width_of, batch_norm=False, dropout=0.0):
    """Levels 1..n: returns the bottleneck and the skips (finest first)."""
    x, skips = inputs, []
    for level in range(1, len(widths)):
        x = _conv(x, width_of[f"conv{level}a"], separable, f"conv{level}a", batch_norm)
        x = _conv(x, width_of[f"conv{level}b"], separable, f"conv{level}b", batch_norm)
        skips.append(x)
        x = L.MaxPool2D(2, padding="same", name=f"pool{level}")(x)
    n = len(widths)
    x = _conv(x, width_of[f"conv{n}a"], separable, f"conv{n}a", batch_norm)
    x = _conv(x, width_of[f"conv{n}b"], separable, f"conv{n}b", batch_norm)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    return x, skips


def decoder(x, skips, *, widths, separable, width_of, prefix="", batch_norm=False):
    """Up-sampling path and head; ``prefix`` names a second decoder on the same encoder."""
    for level, skip in enumerate(reversed(skips), start=len(widths) + 1):
        x = L.Conv2DTranspose(width_of[f"up{level}"], 2, strides=2, padding="same", use_bias=False,
                              name=f"{prefix}up{level}")(x)
        x = L.Concatenate(name=f"{prefix}concat{level}")([x, skip])
        x = _conv(x, width_of[f"conv{level}a"], separable, f"{prefix}conv{level}a", batch_norm)
        x = _conv(x, width_of[f"conv{level}b"], separable, f"{prefix}conv{level}b", batch_norm)
    x = L.Conv2D(12, 1, name=f"{prefix}head")(x)
    return PixelShuffle(2, name=f"{prefix}pixel_shuffle")(x)


def unet(inputs, *, widths=(32, 64, 128, 256, 512), width_multiplier=1.0, separable=False, channels=None,
         batch_norm=False, dropout=0.0):
    """Packed RAW -> RGB at twice the packed resolution (7,760,268 parameters at width 1; with ``batch_norm``
    7,769,100: 2,944 conv biases fewer, 4 x 2,944 BatchNormalization weights more, half of them non-trainable)."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"unet dropout must be in [0, 1), not {dropout!r}")
    width_of = layer_widths(widths, width_multiplier, channels)
    x, skips = encoder(inputs, widths=widths, separable=separable, width_of=width_of, batch_norm=batch_norm,
                       dropout=dropout)
    return decoder(x, skips, widths=widths, separable=separable, width_of=width_of, batch_norm=batch_norm)


def input_multiple(widths=(32, 64, 128, 256, 512), **_):
    """Packed height and width must be divisible by this (one 2x pool per level but the last)."""
    return 2 ** (len(widths) - 1)
