"""Model zoo: build a recipe's network at a fixed or dynamic input size."""
from __future__ import annotations

import inspect

from tflite_isp._tf import keras
from tflite_isp.nets import csanet as _csanet
from tflite_isp.nets import punet as _punet
from tflite_isp.nets import smallnet as _smallnet
from tflite_isp.nets import unet as _unet
from tflite_isp.nets.layers import CUSTOM_OBJECTS, Normalise, PixelShuffle

#: architecture name -> (builder(inputs, **settings), input_multiple(**settings))
ARCHITECTURES = {
    "smallnet": (_smallnet.smallnet, lambda **_: _smallnet.INPUT_MULTIPLE),
    "unet": (_unet.unet, _unet.input_multiple),
    "punet": (_punet.punet, lambda **_: _punet.INPUT_MULTIPLE),
    "csanet": (_csanet.csanet, lambda **_: _csanet.INPUT_MULTIPLE),
}


def _split(model_section: dict):
    settings = dict(model_section)
    arch = settings.pop("architecture", None)
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    known = inspect.signature(ARCHITECTURES[arch][0]).parameters
    for key in settings:
        if key not in known or key == "inputs":
            names = ", ".join(k for k in known if k != "inputs")
            raise ValueError(f"{arch} has no setting {key!r} (settings: {names})")
    return arch, settings


def input_multiple(model_section: dict) -> int:
    """Packed input height and width must be multiples of this."""
    arch, settings = _split(model_section)
    return ARCHITECTURES[arch][1](**settings)


def build(model_section: dict, *, height=None, width=None, batch=None, name=None, normalise=None) -> keras.Model:
    """Build the network: packed (batch, height, width, 4) -> (batch, 2*height, 2*width, 3).

    None leaves a dimension dynamic (``model_none`` style); fixed sizes give static shapes.
    ``normalise`` = dict(black=[4], white=w, clip=b) puts a Normalise layer first, so the model
    takes packed sensor values.
    """
    arch, settings = _split(model_section)
    builder, multiple = ARCHITECTURES[arch]
    m = multiple(**settings)
    for dim in (height, width):
        if dim is not None and dim % m:
            raise ValueError(f"packed size {dim} is not divisible by {m}, which {arch} needs")
    inputs = keras.Input(shape=(height, width, 4), batch_size=batch, name="raw")
    x = Normalise(**normalise, name="normalise")(inputs) if normalise else inputs
    outputs = builder(x, **settings)
    return keras.Model(inputs, outputs, name=name or arch)


def copy_weights(src: keras.Model, dst: keras.Model) -> keras.Model:
    """Copy weights layer by layer, by name (``dst`` may add weightless layers such as Normalise)."""
    for layer in dst.layers:
        if layer.weights:
            layer.set_weights(src.get_layer(layer.name).get_weights())
    return dst


__all__ = ["ARCHITECTURES", "CUSTOM_OBJECTS", "Normalise", "PixelShuffle", "build", "copy_weights", "input_multiple"]
