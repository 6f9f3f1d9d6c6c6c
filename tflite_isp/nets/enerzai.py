"""ENERZAi Research's MAI 2021 Learned Smartphone ISP sub-network (Ignatov et al., arXiv:2105.07809 §4), from the
report's prose; no code was published, so widths and kernels are inferred (see models/enerzai.toml).

1. A DenseNet-like module at the packed resolution: every 3x3 conv (ReLU) sees the concatenation of the packed
   input and all earlier convs' outputs; the module's output is that whole concatenation.
2. One 3x3 stride-2 transposed conv (ReLU) to full sensor resolution.
3. One 3x3 conv to RGB and a sigmoid.

Ops: CONV_2D, CONCATENATION, TRANSPOSE_CONV, LOGISTIC.
"""
from tflite_isp.core.tf import keras

L = keras.layers


def dense_module(inputs, *, layers: int, growth: int, name: str = "dense"):
    """DenseNet-style: conv i sees concat(inputs, out_1 .. out_{i-1}); returns concat(inputs, out_1 .. out_n)."""
    features = [inputs]
    for i in range(1, layers + 1):
        x = features[0] if len(features) == 1 else L.Concatenate(name=f"{name}{i}_concat")(features)
        features.append(L.Conv2D(growth, 3, padding="same", activation="relu", name=f"{name}{i}")(x))
    return L.Concatenate(name=f"{name}_out")(features)


def enerzai(inputs, *, layers=3, growth=4, up_filters=4, up_kernel=3):
    """Packed RAW -> RGB at twice the packed resolution (1,567 parameters with the defaults)."""
    x = dense_module(inputs, layers=layers, growth=growth)
    x = L.Conv2DTranspose(up_filters, up_kernel, strides=2, padding="same", activation="relu", name="upsample")(x)
    return L.Conv2D(3, 3, padding="same", activation="sigmoid", name="out")(x)


INPUT_MULTIPLE = 1  # no pooling: the transposed conv doubles any size
