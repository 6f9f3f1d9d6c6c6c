"""Smallnet (dh_isp, MAI 2021 winner): three 3x3 convs at packed scale, then pixel shuffle."""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle


def smallnet(inputs, *, filters=(16, 16, 12), activations=("tanh", "relu", "relu")):
    """4-channel packed RAW -> RGB at twice the packed resolution (4,652 parameters)."""
    if filters[-1] != 12:
        raise ValueError("Smallnet's last conv must have 12 channels (3 colours x 2x2 pixel shuffle)")
    if len(filters) != len(activations):
        raise ValueError(f"smallnet needs one activation per conv, got {len(filters)} filters and "
                         f"{len(activations)} activations")
    x = inputs
    for i, (f, act) in enumerate(zip(filters, activations, strict=True)):
        x = keras.layers.Conv2D(f, 3, padding="same", activation=act, name=f"conv{i + 1}")(x)
    return PixelShuffle(2, name="pixel_shuffle")(x)


INPUT_MULTIPLE = 1
