"""PUNET, the MAI 2021 Learned Smartphone ISP baseline (MediaTek-NeuroPilot/mai21-learned-smartphone-isp).

A U-Net modified from PyNET: four encoder levels of two 3x3 convs (LeakyReLU 0.2), a
bottleneck of four blocks with two residual adds, 3x3 stride-2 transposed convs, an extra
transposed conv to full resolution and a tanh head scaled to 0.58*tanh + 0.5.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import conv3x3

L = keras.layers

#: kernel initialisers by recipe name (``[model] init``); each layer gets its own unseeded instance, so every
#: kernel is a fresh draw from the global seed that ``keras.utils.set_random_seed`` (train's ``--seed``) sets.
#: "reference" is model.py's truncated normal, std 0.01 (the reference passes seed=1 to every layer, which
#: makes every kernel of one shape identical; the draw is kept, the shared seed is not).
INITS = {
    "reference": lambda: keras.initializers.TruncatedNormal(stddev=0.01),
    "he_normal": lambda: keras.initializers.HeNormal(),
    "glorot_uniform": lambda: keras.initializers.GlorotUniform(),
}


def _kernel_init(init: str):
    if init not in INITS:
        raise ValueError(f"punet has no init {init!r} (known: {', '.join(INITS)})")
    return INITS[init]()


def _conv(x, c, name, separable, init):
    x = conv3x3(x, c, separable=separable, name=name, kernel_initializer=_kernel_init(init),
                bias_initializer=keras.initializers.Constant(0.01))
    return L.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def _up(x, c, name, init):
    x = L.Conv2DTranspose(c, 3, strides=2, padding="same", use_bias=False, name=name,
                          kernel_initializer=_kernel_init(init))(x)
    return L.LeakyReLU(0.2, name=f"{name}_lrelu")(x)


def punet(inputs, *, base=16, width_multiplier=1.0, separable=False, init="reference"):
    """Packed RAW -> RGB at twice the packed resolution (5,725,199 parameters at base 16).

    ``width_multiplier`` scales every width (base x multiplier, at least 4); ``separable`` makes every 3x3 conv
    but the first depthwise-separable (the transposed convs stay full). ``init`` names the kernel initialiser
    (``INITS``); biases start at 0.01 as in the reference."""
    _kernel_init(init)  # an unknown name fails before any layer is made
    b = max(4, int(round(base * width_multiplier)))

    def _block(x, c, name):
        return _conv(_conv(x, c, f"{name}a", separable, init), c, f"{name}b", separable, init)

    c1 = _block(inputs, b, "enc1")
    c2 = _block(L.MaxPool2D(2, name="pool1")(c1), 2 * b, "enc2")
    c3 = _block(L.MaxPool2D(2, name="pool2")(c2), 4 * b, "enc3")
    c4 = _block(L.MaxPool2D(2, name="pool3")(c3), 8 * b, "enc4")
    d1 = _block(L.MaxPool2D(2, name="pool4")(c4), 16 * b, "mid1")
    d2 = L.Add(name="mid2_add")([_block(d1, 16 * b, "mid2"), d1])
    d3 = L.Add(name="mid3_add")([_block(d2, 16 * b, "mid3"), d2])
    d4 = _block(d3, 16 * b, "mid4")
    u4 = _block(L.Concatenate(name="cat4")([c4, _up(d4, 8 * b, "up4", init)]), 8 * b, "dec4")
    u3 = _block(L.Concatenate(name="cat3")([c3, _up(u4, 4 * b, "up3", init)]), 4 * b, "dec3")
    u2 = _block(L.Concatenate(name="cat2")([_block(c2, 2 * b, "skip2"), _up(u3, 2 * b, "up2", init)]), 2 * b, "dec2")
    u1 = _block(L.Concatenate(name="cat1")([_block(c1, b, "skip1"), _up(u2, b, "up1", init), c1]), b, "dec1")
    x = _up(u1, b // 4, "up0", init)
    x = L.Conv2D(3, 3, padding="same", name="out", kernel_initializer=_kernel_init(init),
                 bias_initializer=keras.initializers.Constant(0.01))(x)
    x = L.Activation("tanh", name="out_tanh")(x)
    return L.Rescaling(0.58, offset=0.5, name="out_scale")(x)


INPUT_MULTIPLE = 16
