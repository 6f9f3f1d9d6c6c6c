"""NOAHTCV's MAI 2021 Learned Smartphone ISP network (Ignatov et al., arXiv:2105.07809 §4), from the report's prose;
no code was published, so the decomposition, depths and widths are inferred (see models/noahtcv.toml).

1. Decomposition of the packed RAW: the colour (chroma/tone) part is a 2x2 average pool (a low-pass at half the
   packed size); the texture part is the input minus that low-pass brought back by bilinear upsampling.
2. Colour path: a two-level U-Net-like encoder-decoder on the half-size low-pass (patch-level information and
   tone mapping), brought to the packed size by a 2x2 stride-2 transposed conv.
3. Texture path: a 3x3 conv and residual blocks (conv-ReLU-conv plus the block's input) at the packed size.
4. Fusion: the two concatenated, a 3x3 conv (ReLU), a 1x1 conv to 12 channels and pixel shuffle x2 to RGB.
All kernels Xavier (glorot_uniform) initialised, as the report says.

Ops: AVERAGE_POOL_2D, RESIZE_BILINEAR, SUB, CONV_2D, MAX_POOL_2D, TRANSPOSE_CONV, CONCATENATION, ADD,
DEPTH_TO_SPACE.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle

L = keras.layers


def _conv(x, channels, name, kernel=3, activation="relu"):
    return L.Conv2D(channels, kernel, padding="same", activation=activation, kernel_initializer="glorot_uniform",
                    name=name)(x)


def _up(x, channels, name):
    return L.Conv2DTranspose(channels, 2, strides=2, padding="same", activation="relu",
                             kernel_initializer="glorot_uniform", name=name)(x)


def colour_path(low, width: int):
    """Two-level U-Net on the low-pass: widths width and 2 x width, one skip."""
    e1 = _conv(_conv(low, width, "colour1a"), width, "colour1b")
    e2 = L.MaxPool2D(2, name="colour_pool")(e1)
    e2 = _conv(_conv(e2, 2 * width, "colour2a"), 2 * width, "colour2b")
    d1 = L.Concatenate(name="colour_concat")([_up(e2, width, "colour_up1"), e1])
    d1 = _conv(_conv(d1, width, "colour3a"), width, "colour3b")
    return _up(d1, width, "colour_up0")  # half packed size -> packed size


def texture_path(texture, width: int, blocks: int):
    """A 3x3 conv then ``blocks`` residual blocks (conv-ReLU-conv + input) at the packed size."""
    x = _conv(texture, width, "texture_in")
    for i in range(1, blocks + 1):
        y = _conv(_conv(x, width, f"texture{i}a"), width, f"texture{i}b", activation=None)
        x = L.Add(name=f"texture{i}_add")([x, y])
    return x


def noahtcv(inputs, *, colour_width=16, texture_width=20, blocks=3, fuse_width=32):
    """Packed RAW -> RGB at twice the packed resolution (60,104 parameters with the defaults)."""
    low = L.AveragePooling2D(2, name="lowpass")(inputs)
    smooth = L.UpSampling2D(2, interpolation="bilinear", name="lowpass_up")(low)
    texture = L.Subtract(name="texture")([inputs, smooth])
    x = L.Concatenate(name="fuse_concat")([colour_path(low, colour_width),
                                           texture_path(texture, texture_width, blocks)])
    x = _conv(x, fuse_width, "fuse")
    x = _conv(x, 12, "head", kernel=1, activation=None)
    return PixelShuffle(2, name="pixel_shuffle")(x)


INPUT_MULTIPLE = 4  # the 2x2 low-pass, then one 2x pool inside the colour path
