"""PyNET-V2 Mobile (Ignatov et al., arXiv:2211.06263; MAI 2022 baseline), from gmalivenko/PyNET-v2 model.py.

Three levels at the packed resolution (32 channels), 1/2 (64) and 1/4 (128), reached by 2x2 stride-2 convs:

- level 3: residual groups (4 groups of 32 channels, 2 convs each) -> spatial attention -> channel attention;
- level 2: bilinear x2 + 3x3 conv (PReLU) of level 3, plus a 3x3 conv of the level-2 input; a 1x1 residual,
  residual groups (2 x 32, 3 convs each), channel attention;
- level 1: the same from level 2 (residual groups 4 x 8 then 2 x 16, one conv each); the head is a 1x1 conv to
  16 (PReLU), depth_to_space(2), a 3x3 conv to RGB and 0.58 * tanh + 0.5.

Residual groups split the channels, run each group through its own 3x3 convs (PReLU, a residual add each;
instance norm on every other group), concatenate them and fuse with a 1x1 conv, plus the block's input.
Spatial attention: 3x3 conv (PReLU) times sigmoid(depthwise 5x5). Channel attention: 3x3 conv (PReLU) times
sigmoid of 1x1 stride 3 -> 3x3 stride 3 (valid) -> global mean -> 1x1 (PReLU) -> 1x1. Every 'same' conv pads by
reflection (MIRROR_PAD). Every PReLU shares its slope over height and width (one per channel).

``pynet_v2_levels`` also returns the level-2 and level-3 heads (1x1 conv to 12, depth_to_space(2), 0.58 * tanh
+ 0.5, at 1/2 and 1/4 of the output size) that the reference trains level by level; the deployed model is
``pynet_v2``, the level-1 output alone, as the reference's final level-1 model.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle
from tflite_isp.nets.norm import ChannelSlice, InstanceNorm, ReflectPad
from tflite_isp.nets.punet import INITS

L = keras.layers

#: packed height and width must be multiples of this (two 2x2 stride-2 convs) ...
INPUT_MULTIPLE = 4
#: ... and at least this: level 3 (1/4) needs 7 pixels for its channel attention's two valid stride-3 convs
MIN_SIZE = 28


class _Builder:
    """Layer factory with the recipe's kernel initialiser and unique names."""

    def __init__(self, init: str):
        if init not in INITS:
            raise ValueError(f"pynet_v2 has no init {init!r} (known: {', '.join(INITS)})")
        self.init = init

    def conv(self, x, channels, kernel, name, *, strides=1, prelu=True, norm=False, pad=True, activation=None):
        if pad and kernel > 1:
            x = ReflectPad(kernel // 2, name=f"{name}_pad")(x)
        x = L.Conv2D(channels, kernel, strides=strides, padding="valid", activation=activation, name=name,
                     kernel_initializer=INITS[self.init]())(x)
        if norm:
            x = InstanceNorm(name=f"{name}_norm")(x)
        return L.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x) if prelu else x

    def residual_groups(self, x, groups, convs, name, norm=True):
        """Channel split into ``groups``; each: ``convs`` x (3x3 conv + PReLU + add); concat, 1x1, + input."""
        channels = x.shape[-1]
        parts = [x] if groups == 1 else _split(x, groups, name)
        outs = []
        for i, g in enumerate(parts):
            for k in range(convs):
                y = self.conv(g, channels // groups, 3, f"{name}_g{i}_c{k}", norm=norm and i % 2 == 0)
                g = L.Add(name=f"{name}_g{i}_c{k}_add")([y, g])
            outs.append(g)
        y = L.Concatenate(name=f"{name}_concat")(outs)
        y = self.conv(y, channels, 1, f"{name}_fuse", prelu=False)
        return L.Add(name=f"{name}_add")([y, x])

    def spatial_attention(self, x, name):
        u = self.conv(x, x.shape[-1], 3, f"{name}_conv")
        gate = ReflectPad(2, name=f"{name}_dw_pad")(u)
        gate = L.DepthwiseConv2D(5, padding="valid", activation="sigmoid", name=f"{name}_dw")(gate)
        y = L.Multiply(name=f"{name}_mul")([u, gate])
        return L.Add(name=f"{name}_add")([y, x])

    def channel_attention(self, x, name):
        c = x.shape[-1]
        u = self.conv(x, c, 3, f"{name}_conv")
        s = self.conv(u, c, 1, f"{name}_s1", strides=3)
        s = self.conv(s, c, 3, f"{name}_s2", strides=3, pad=False)
        s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_mean")(s)
        s = self.conv(s, c, 1, f"{name}_fc1")
        s = self.conv(s, c, 1, f"{name}_fc2", prelu=False, activation="sigmoid")
        y = L.Multiply(name=f"{name}_mul")([u, s])
        return L.Add(name=f"{name}_add")([y, x])

    def upsample(self, x, channels, name):
        x = L.UpSampling2D(2, interpolation="bilinear", name=f"{name}_resize")(x)
        return self.conv(x, channels, 3, name)

    def level_input(self, deep, skip, channels, name):
        """Bilinear-upsampled deeper level + a 3x3 conv of this level's features, then a 1x1 PReLU residual."""
        x = L.Add(name=f"{name}_merge")([self.conv(skip, channels, 3, f"{name}_skip"),
                                         self.upsample(deep, channels, f"{name}_up")])
        y = self.conv(x, channels, 1, f"{name}_res1x1")
        return L.Add(name=f"{name}_res1x1_add")([y, x])

    def aux_head(self, x, name):
        x = self.conv(x, 12, 1, name, prelu=False)
        x = PixelShuffle(2, name=f"{name}_shuffle")(x)
        return _tanh_head(x, name)


def _split(x, groups, name):
    """``groups`` equal channel slices (STRIDED_SLICE each)."""
    step = x.shape[-1] // groups
    return [ChannelSlice(step * i, step, name=f"{name}_split{i}")(x) for i in range(groups)]


def _tanh_head(x, name):
    x = L.Activation("tanh", name=f"{name}_tanh")(x)
    return L.Rescaling(0.58, offset=0.5, name=f"{name}_scale")(x)


def pynet_v2_levels(inputs, *, init="reference"):
    """(level-1 output at 2x, level-2 at 1x, level-3 at 1/2 the packed size), all RGB."""
    _check_size(inputs)
    b = _Builder(init)
    l1 = b.conv(inputs, 32, 3, "l1_in")
    l2 = b.conv(l1, 64, 2, "l2_down", strides=2, pad=False)
    l3 = b.conv(l2, 128, 2, "l3_down", strides=2, pad=False)

    x = b.residual_groups(l3, 4, 2, "l3_groups")
    x = b.spatial_attention(x, "l3_sam")
    l3 = b.channel_attention(x, "l3_cam")

    x = b.level_input(l3, l2, 64, "l2")
    x = b.residual_groups(x, 2, 3, "l2_groups")
    l2 = b.channel_attention(x, "l2_cam")

    x = b.level_input(l2, l1, 32, "l1")
    x = b.residual_groups(x, 4, 1, "l1_groups_a")
    x = b.residual_groups(x, 2, 1, "l1_groups_b")
    x = b.conv(x, 16, 1, "out_expand")
    x = PixelShuffle(2, name="out_shuffle")(x)
    out = _tanh_head(b.conv(x, 3, 3, "out", prelu=False), "out")
    return out, b.aux_head(l2, "aux_l2"), b.aux_head(l3, "aux_l3")


def pynet_v2(inputs, *, init="reference"):
    """Packed RAW -> RGB at twice the packed resolution (930,255 parameters)."""
    out, _, _ = pynet_v2_levels(inputs, init=init)
    return out


def _check_size(inputs):
    for dim in inputs.shape[1:3]:
        if dim is not None and dim < MIN_SIZE:
            raise ValueError(f"pynet_v2 needs a packed input of at least {MIN_SIZE} x {MIN_SIZE}, not {dim}")
