"""SearchNet: the one configurable network an architecture search samples from.

``levels`` 0 is a flat net (Smallnet/SYENet-like: ``depth`` 3x3 convs at one scale); 1..4 a U-Net with that many
2x2 max-pool steps. Every other setting picks one choice per axis (stem, conv kind, activation, up-sampling, skip
merge, attention, head). Every layer has a fixed name, so a re-parameterised training form and its deploy form
(``reparam`` False) share names and ``architectures.fuse_weights`` copies weights by name.
"""
from __future__ import annotations

import math

from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle, SpaceToDepth, conv3x3
from tflite_isp.nets.reparam import rep_conv

L = keras.layers

#: setting -> allowed values, for the settings that name a choice
CHOICES = {
    "stem": ("conv", "s2d"),
    "conv": ("full", "separable"),
    "activation": ("relu", "relu6", "leaky", "prelu"),
    "upsample": ("transpose", "d2s", "bilinear"),
    "merge": ("concat", "add"),
    "attention": ("none", "channel", "spatial"),
    "head": ("shuffle", "shuffle1x1"),
}
LEVELS, ALIGNS = (0, 1, 2, 3, 4), (4, 8, 16)


def _check(name, value, allowed):
    if isinstance(value, bool) != all(isinstance(a, bool) for a in allowed) or value not in allowed:
        raise ValueError(f"searchnet {name} must be one of {', '.join(map(repr, allowed))}, not {value!r}")


def validate(*, levels, stem, width, growth, align, depth, conv, reparam, activation, tanh_first, upsample, merge,
             attention, head):
    """A ValueError naming the first setting whose value is not allowed."""
    _check("levels", levels, LEVELS)
    _check("align", align, ALIGNS)
    _check("reparam", reparam, (False, True))
    _check("tanh_first", tanh_first, (False, True))
    for name, value in (("stem", stem), ("conv", conv), ("activation", activation), ("upsample", upsample),
                        ("merge", merge), ("attention", attention), ("head", head)):
        _check(name, value, CHOICES[name])
    for name, value in (("width", width), ("depth", depth)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"searchnet {name} must be a positive integer, not {value!r}")
    if isinstance(growth, bool) or not isinstance(growth, (int, float)) or not growth > 0:
        raise ValueError(f"searchnet growth must be a positive number, not {growth!r}")
    if reparam and conv != "full":
        raise ValueError(f"searchnet reparam needs conv 'full', not {conv!r}")


def level_widths(levels: int, width: int, growth: float, align: int) -> list:
    """Channels at each scale 0..levels: width * growth**level rounded up to a multiple of ``align``."""
    return [align * math.ceil(round(width * growth ** level / align, 6)) for level in range(levels + 1)]


def _activation(x, kind, name):
    if kind == "tanh":
        return L.Activation("tanh", name=f"{name}_tanh")(x)
    if kind == "relu":
        return L.ReLU(name=f"{name}_relu")(x)
    if kind == "relu6":
        return L.ReLU(max_value=6.0, name=f"{name}_relu6")(x)
    if kind == "leaky":
        return L.LeakyReLU(0.2, name=f"{name}_lrelu")(x)
    return L.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


class _Net:
    """The chosen settings, and the building blocks they shape."""

    def __init__(self, conv, reparam, activation, tanh_first, upsample, merge, attention):
        self.conv, self.reparam, self.activation = conv, reparam, activation
        self.tanh_next = tanh_first
        self.upsample, self.merge, self.attention = upsample, merge, attention

    def conv3(self, x, channels, name):
        """A 3x3 conv and its activation (tanh for the very first one when ``tanh_first``)."""
        if self.reparam:
            x = rep_conv(x, channels, 3, name=name, reparam=True)
        else:
            x = conv3x3(x, channels, separable=self.conv == "separable", name=name)
        kind = "tanh" if self.tanh_next else self.activation
        self.tanh_next = False
        return _activation(x, kind, name)

    def stage(self, x, channels, depth, prefix, tag):
        """``depth`` convs named ``{prefix}c1..``, then the stage's attention ``att_{tag}``."""
        for i in range(1, depth + 1):
            x = self.conv3(x, channels, f"{prefix}c{i}")
        return self.attend(x, f"att_{tag}")

    def attend(self, x, name):
        if self.attention == "none":
            return x
        c = int(x.shape[-1])
        if self.attention == "channel":  # squeeze-excite
            s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
            s = L.Conv2D(max(4, c // 4), 1, activation="relu", name=f"{name}_squeeze")(s)
            s = L.Conv2D(c, 1, name=f"{name}_excite")(s)
        else:
            s = L.Conv2D(1, 1, name=f"{name}_map")(x)
        s = L.Activation("sigmoid", name=f"{name}_sigmoid")(s)
        return L.Multiply(name=name)([x, s])

    def up(self, x, channels, level):
        """2x up-sampling to ``channels`` (the skip's) for decoder level ``level``."""
        name = f"up{level}"
        if self.upsample == "transpose":
            return L.Conv2DTranspose(channels, 2, strides=2, padding="same", name=name)(x)
        if self.upsample == "d2s":
            x = L.Conv2D(4 * channels, 1, name=name)(x)
            return PixelShuffle(2, name=f"{name}_shuffle")(x)
        x = L.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
        return L.Conv2D(channels, 1, name=name)(x)

    def join(self, x, skip, level):
        layer = L.Concatenate if self.merge == "concat" else L.Add
        return layer(name=f"merge{level}")([x, skip])


def searchnet(inputs, *, levels=0, stem="conv", width=16, growth=2.0, align=8, depth=2, conv="full", reparam=False,
              activation="relu", tanh_first=False, upsample="transpose", merge="concat", attention="none",
              head="shuffle"):
    """Packed RAW (B, H, W, C) -> RGB (B, 2H, 2W, 3); H and W multiples of :func:`input_multiple`."""
    validate(levels=levels, stem=stem, width=width, growth=growth, align=align, depth=depth, conv=conv,
             reparam=reparam, activation=activation, tanh_first=tanh_first, upsample=upsample, merge=merge,
             attention=attention, head=head)
    net = _Net(conv, reparam, activation, tanh_first, upsample, merge, attention)
    widths = level_widths(levels, width, growth, align)
    x = SpaceToDepth(2, name="stem_s2d")(inputs) if stem == "s2d" else inputs
    if levels == 0:
        x = net.stage(x, widths[0], depth, "", "body")
    else:
        skips = []
        for level in range(1, levels + 1):
            x = net.stage(x, widths[level - 1], depth, f"e{level}", f"e{level}")
            skips.append(x)
            x = L.MaxPool2D(2, name=f"pool{level}")(x)
        x = net.stage(x, widths[levels], depth, "bott_", "bott")
        for level in range(levels, 0, -1):
            x = net.join(net.up(x, widths[level - 1], level), skips[level - 1], level)
            x = net.stage(x, widths[level - 1], depth, f"d{level}", f"d{level}")
    scale = 4 if stem == "s2d" else 2
    if head == "shuffle":
        x = rep_conv(x, 3 * scale * scale, 3, name="head", reparam=reparam)
    else:
        x = L.Conv2D(3 * scale * scale, 1, name="head")(x)
    return PixelShuffle(scale, name="shuffle")(x)


def input_multiple(levels=0, stem="conv", **_):
    """Packed height and width must be divisible by this: one 2x pool per level, and the s2d stem's 2x."""
    _check("levels", levels, LEVELS)
    _check("stem", stem, CHOICES["stem"])
    return 2 ** levels * (2 if stem == "s2d" else 1)
