"""MicroISP (Ignatov et al., "MicroISP: Processing 32MP Photos on Mobile Devices with Deep Learning", arXiv
2211.06770), as in aiff22/MicroISP model.py (its export_to_tflite.py converts it at 1500 x 2000 x 4).

Three independent branches, one per output colour, each two stages of the same shape:

1. Seven 3x3 convs of ``features`` channels (bias, PReLU shared over H and W). Conv 0 of every group of
   three is kept as a skip; after convs 2 and 5 an attention vector multiplies the features and the skip is
   added back.
2. Attention: 1x1 stride-3 conv, then three 3x3 stride-3 convs (all VALID, each with a PReLU), a global
   average pool, 1x1 conv + PReLU, 1x1 conv + sigmoid: one weight per channel, from the whole image.
3. Head: 3x3 conv to 4 channels and tanh. Stage 2 takes stage 1's tanh output (not the RAW) as its input;
   its head is followed by 0.58 x + 0.5 and depth_to_space(2), giving one full-resolution colour plane.

The three planes are concatenated to RGB. The attention's VALID stride-3 convs need a packed size of at least
``MIN_SIZE`` (79): smaller inputs leave nothing to pool. Their global pool also makes the output depend on the
whole image, so tiles differ from the full frame at their borders and in tone.
Train it in a tf.function (as train does): TF 2.20's eager oneDNN gradient of the 1x1 stride-3 conv corrupts
the heap. Ops: CONV_2D, PRELU, MEAN, LOGISTIC, MUL, ADD, TANH, DEPTH_TO_SPACE, CONCATENATION.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle

L = keras.layers

INPUT_MULTIPLE = 1  # every main-path conv is stride 1, SAME; the attention's stride-3 convs only floor
MIN_SIZE = 79       # packed: ceil(79 / 3) = 27 -> 9 -> 3 -> 1 after the attention's four stride-3 convs

#: kernel initialisers by recipe name (``[model] init``), one unseeded instance per layer so ``--seed`` sets
#: every draw. "reference" is model.py's normal with std 1e-3 (biases zero there and here).
INITS = {
    "reference": lambda: keras.initializers.RandomNormal(stddev=1e-3),
    "he_normal": lambda: keras.initializers.HeNormal(),
    "glorot_uniform": lambda: keras.initializers.GlorotUniform(),
}


def _kernel_init(init: str):
    if init not in INITS:
        raise ValueError(f"microisp has no init {init!r} (known: {', '.join(INITS)})")
    return INITS[init]()


def _conv(x, channels, kernel, name, init, strides=1, padding="same"):
    return L.Conv2D(channels, kernel, strides=strides, padding=padding, name=name,
                    kernel_initializer=_kernel_init(init))(x)


def _prelu(x, name):
    return L.PReLU(shared_axes=[1, 2], name=name)(x)


def attention(x, *, features, hidden, name, init):
    """Per-channel weights in (0, 1) from a strided, globally pooled summary of ``x``: (B, 1, 1, features)."""
    a = _prelu(_conv(x, features, 1, f"{name}_down0", init, strides=3, padding="valid"), f"{name}_down0_prelu")
    for k in (1, 2, 3):
        a = _conv(a, features, 3, f"{name}_down{k}", init, strides=3, padding="valid")
        a = _prelu(a, f"{name}_down{k}_prelu")
    a = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(a)
    a = _prelu(_conv(a, hidden, 1, f"{name}_hidden", init), f"{name}_hidden_prelu")
    a = _conv(a, features, 1, f"{name}_gate", init)
    return L.Activation("sigmoid", name=f"{name}_sigmoid")(a)


def stage(x, *, features, convs, skip_every, name, init):
    """A stage's body: ``convs`` 3x3 PReLU convs with attention and a residual skip every ``skip_every``."""
    skip = None
    for j in range(convs):
        x = _prelu(_conv(x, features, 3, f"{name}_conv{j}", init), f"{name}_conv{j}_prelu")
        if j % skip_every == 0:
            skip = x
        elif j % skip_every == skip_every - 1:
            gate = attention(x, features=features, hidden=features, name=f"{name}_att{j}", init=init)
            x = L.Multiply(name=f"{name}_att{j}_mul")([x, gate])
            x = L.Add(name=f"{name}_skip{j}")([x, skip])
    x = _conv(x, 4, 3, f"{name}_out", init)  # 4 = 2 x 2: one colour at twice the packed resolution
    return L.Activation("tanh", name=f"{name}_tanh")(x)


def microisp(inputs, *, features=4, convs=7, skip_every=3, init="he_normal"):
    """Packed RAW -> RGB at twice the packed resolution (13,560 parameters with the defaults)."""
    _kernel_init(init)  # an unknown name fails before any layer is made
    for dim in inputs.shape[1:3]:
        if dim is not None and dim < MIN_SIZE:
            raise ValueError(f"microisp needs packed sizes of at least {MIN_SIZE} (its attention's four stride-3 "
                             f"convs leave nothing to pool below that), not {dim}")
    planes = []
    for colour in "rgb":
        x = inputs
        for s in (1, 2):
            x = stage(x, features=features, convs=convs, skip_every=skip_every, name=f"{colour}{s}", init=init)
        x = L.Rescaling(0.58, offset=0.5, name=f"{colour}_scale")(x)
        planes.append(PixelShuffle(2, name=f"{colour}_pixel_shuffle")(x))
    return L.Concatenate(name="rgb")(planes)
