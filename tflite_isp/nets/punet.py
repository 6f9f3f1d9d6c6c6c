"""PUNET, the MAI 2021 Learned Smartphone ISP baseline (MediaTek-NeuroPilot/mai21-learned-smartphone-isp).

A U-Net modified from PyNET: four encoder levels of two 3x3 convs (LeakyReLU 0.2), a
bottleneck of four blocks with two residual adds, 3x3 stride-2 transposed convs, an extra
transposed conv to full resolution and a tanh head scaled to 0.58*tanh + 0.5.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import conv3x3

L = keras.layers
_INIT = dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01, seed=1),
             bias_initializer=keras.initializers.Constant(0.01))


def _conv(x, c, name, separable):
    return L.LeakyReLU(0.2, name=f"{name}_lrelu")(conv3x3(x, c, separable=separable, name=name, **_INIT))


def _up(x, c, name):
    x = L.Conv2DTranspose(c, 3, strides=2, padding="same", use_bias=False, name=name,
                          kernel_initializer=_INIT["kernel_initializer"])(x)
    return L.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def punet(inputs, *, base=16, width_multiplier=1.0, separable=False):
    """Packed RAW -> RGB at twice the packed resolution (5,725,199 parameters at base 16).

    ``width_multiplier`` scales every width (base x multiplier, at least 4); ``separable`` makes every 3x3 conv
    but the first depthwise-separable (the transposed convs stay full)."""
    b = max(4, int(round(base * width_multiplier)))

    def _block(x, c, name):
        return _conv(_conv(x, c, f"{name}a", separable), c, f"{name}b", separable)

    c1 = _block(inputs, b, "enc1")
    c2 = _block(L.MaxPool2D(2, name="pool1")(c1), 2 * b, "enc2")
    c3 = _block(L.MaxPool2D(2, name="pool2")(c2), 4 * b, "enc3")
    c4 = _block(L.MaxPool2D(2, name="pool3")(c3), 8 * b, "enc4")
    d1 = _block(L.MaxPool2D(2, name="pool4")(c4), 16 * b, "mid1")
    d2 = L.Add(name="mid2_add")([_block(d1, 16 * b, "mid2"), d1])
    d3 = L.Add(name="mid3_add")([_block(d2, 16 * b, "mid3"), d2])
    d4 = _block(d3, 16 * b, "mid4")
    u4 = _block(L.Concatenate(name="cat4")([c4, _up(d4, 8 * b, "up4")]), 8 * b, "dec4")
    u3 = _block(L.Concatenate(name="cat3")([c3, _up(u4, 4 * b, "up3")]), 4 * b, "dec3")
    u2 = _block(L.Concatenate(name="cat2")([_block(c2, 2 * b, "skip2"), _up(u3, 2 * b, "up2")]), 2 * b, "dec2")
    u1 = _block(L.Concatenate(name="cat1")([_block(c1, b, "skip1"), _up(u2, b, "up1"), c1]), b, "dec1")
    x = _up(u1, b // 4, "up0")
    x = L.Conv2D(3, 3, padding="same", name="out", **_INIT)(x)
    x = L.Activation("tanh", name="out_tanh")(x)
    return L.Rescaling(0.58, offset=0.5, name="out_scale")(x)


INPUT_MULTIPLE = 16
