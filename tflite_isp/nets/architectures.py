"""Model zoo: build a recipe's network at a fixed or dynamic input size."""
from __future__ import annotations

import inspect

import numpy as np

from tflite_isp.core.errors import fail
from tflite_isp.core.tf import keras
from tflite_isp.nets import colorize as _colorize
from tflite_isp.nets import csanet as _csanet
from tflite_isp.nets import enerzai as _enerzai
from tflite_isp.nets import isp_forever as _isp_forever
from tflite_isp.nets import microisp as _microisp
from tflite_isp.nets import noahtcv as _noahtcv
from tflite_isp.nets import norm as _norm
from tflite_isp.nets import punet as _punet
from tflite_isp.nets import pynet_v2 as _pynet_v2
from tflite_isp.nets import reparam as _reparam
from tflite_isp.nets import searchnet as _searchnet
from tflite_isp.nets import smallnet as _smallnet
from tflite_isp.nets import syenet as _syenet
from tflite_isp.nets import unet as _unet
from tflite_isp.nets.layers import CUSTOM_OBJECTS as _LAYERS
from tflite_isp.nets.layers import Normalise, PixelShuffle

CUSTOM_OBJECTS = {**_LAYERS, **_norm.CUSTOM_OBJECTS, **_reparam.CUSTOM_OBJECTS, **_syenet.CUSTOM_OBJECTS}

#: architecture name -> (builder(inputs, **settings), input_multiple(**settings))
ARCHITECTURES = {
    "smallnet": (_smallnet.smallnet, lambda **_: _smallnet.INPUT_MULTIPLE),
    "unet": (_unet.unet, _unet.input_multiple),
    "punet": (_punet.punet, lambda **_: _punet.INPUT_MULTIPLE),
    "csanet": (_csanet.csanet, lambda **_: _csanet.INPUT_MULTIPLE),
    "pynet_v2": (_pynet_v2.pynet_v2, lambda **_: _pynet_v2.INPUT_MULTIPLE),
    "syenet": (_syenet.syenet, lambda **_: _syenet.INPUT_MULTIPLE),
    "enerzai": (_enerzai.enerzai, lambda **_: _enerzai.INPUT_MULTIPLE),
    "isp_forever": (_isp_forever.isp_forever, _isp_forever.input_multiple),
    "noahtcv": (_noahtcv.noahtcv, lambda **_: _noahtcv.INPUT_MULTIPLE),
    "microisp": (_microisp.microisp, lambda **_: _microisp.INPUT_MULTIPLE),
    "colorize_ae": (_colorize.colorize_ae, lambda **_: _colorize.INPUT_MULTIPLE),
    "searchnet": (_searchnet.searchnet, _searchnet.input_multiple),
}
INPUT_CHANNELS = {"colorize_ae": 1}  # an L plane; every other architecture takes 4 packed RAW planes


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


def build(model_section: dict, *, height=None, width=None, batch=None, name=None, normalise=None,
          cfa=None) -> keras.Model:
    """Build the network: packed (batch, height, width, 4) -> (batch, 2*height, 2*width, 3), or a colourisation
    net's L (batch, height, width, 1) -> ab (batch, height, width, 2). ``cfa="quad"`` (a recipe's ``input.cfa``)
    takes 16 Quad Bayer planes and returns (batch, 4*height, 4*width, 3) (:func:`quad_head`).

    None leaves a dimension dynamic (``model_none`` style); fixed sizes give static shapes.
    ``normalise`` = dict(black=[4 or 16], white=w, clip=b) puts a Normalise layer first, so the model
    takes packed sensor values.
    """
    arch, settings = _split(model_section)
    builder, multiple = ARCHITECTURES[arch]
    m = multiple(**settings)
    for dim in (height, width):
        if dim is not None and dim % m:
            raise ValueError(f"packed size {dim} is not divisible by {m}, which {arch} needs")
    if cfa not in (None, "bayer", "quad"):
        raise ValueError(f"cfa must be 'bayer' or 'quad', not {cfa!r}")
    quad = cfa == "quad"
    if quad and arch in INPUT_CHANNELS:
        raise ValueError(f"{arch} does not take RAW, so it has no Quad Bayer form")
    channels = 16 if quad else INPUT_CHANNELS.get(arch, 4)
    inputs = keras.Input(shape=(height, width, channels), batch_size=batch, name="l" if channels == 1 else "raw")
    if normalise and quad and len(normalise["black"]) == 4:  # per colour -> per sub-site
        normalise = {**normalise, "black": [b for b in normalise["black"] for _ in range(4)]}
    x = Normalise(**normalise, name="normalise")(inputs) if normalise else inputs
    outputs = builder(x, **settings)
    if quad:
        outputs = quad_head(outputs)
    return keras.Model(inputs, outputs, name=name or arch)


def quad_head(rgb):
    """A Quad Bayer model's last stage: the architecture, run on the 16 quarter-resolution planes, writes RGB at
    half resolution; one 3x3 conv to 12 channels and a 2x pixel shuffle bring it to full resolution."""
    x = keras.layers.Conv2D(12, 3, padding="same", name="quad_up_conv")(rgb)
    return PixelShuffle(2, name="quad_up")(x)


def copy_weights(src: keras.Model, dst: keras.Model, *, missing_ok: bool = False, fuse: bool = False) -> keras.Model:
    """Copy weights layer by layer, by name (``dst`` may add weightless layers such as Normalise).

    ``missing_ok`` leaves ``dst`` layers that ``src`` lacks as initialised; ``fuse`` turns each re-parameterised
    block of ``src`` into its single conv (``dst`` being the deploy form); a shape mismatch is a ValueError.
    """
    names = {layer.name for layer in src.layers}
    for layer in dst.layers:
        if not layer.weights or (missing_ok and layer.name not in names):
            continue
        if layer.name not in names:
            raise ValueError(f"the source model has no layer {layer.name!r}")
        source = src.get_layer(layer.name)
        values = _reparam.deploy_weights(source) if fuse else source.get_weights()
        bn = f"{layer.name}_bn"
        if fuse and bn in names and bn not in {x.name for x in dst.layers}:  # the deploy form dropped its BN
            norm = src.get_layer(bn)
            kernel, bias = values
            if isinstance(source, keras.layers.Conv2DTranspose):  # its output channels are kernel axis 2
                kernel = np.swapaxes(kernel, 2, 3)
            kernel, bias = _reparam.fold_batch_norm(kernel, bias, *norm.get_weights(), norm.epsilon)
            if isinstance(source, keras.layers.Conv2DTranspose):
                kernel = np.swapaxes(kernel, 2, 3)
            values = [kernel.astype(np.float32), bias.astype(np.float32)]
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if [tuple(v.shape) for v in values] != shapes:
            raise ValueError(f"layer {layer.name!r} has weights {[tuple(v.shape) for v in values]} in the source "
                             f"but {shapes} here (another architecture or width?)")
        layer.set_weights(values)
    return dst


def deploy_form(model_section: dict) -> dict:
    """The recipe section of the network to ship: a re-parameterised (``reparam``) model's fused form; a
    colourisation net's without its batch norms (folded into the convs, so QAT sees what the file runs)."""
    if model_section.get("reparam"):
        return {**model_section, "reparam": False}
    if model_section.get("architecture") == "colorize_ae" and model_section.get("batch_norm", True):
        return {**model_section, "batch_norm": False}
    return dict(model_section)


def fuse_weights(trained: keras.Model, deployed: keras.Model) -> keras.Model:
    """Copy ``trained`` into its deploy form by layer name, fusing each re-parameterised block into its conv and
    each ``<conv>_bn`` batch norm that the deploy form lacks into ``<conv>``."""
    return copy_weights(trained, deployed, fuse=True)


def load(path) -> keras.Model:
    """A saved ``.keras`` model with the project's layers; a file Keras cannot read is a one-line error."""

    try:
        return keras.models.load_model(str(path), custom_objects=CUSTOM_OBJECTS, compile=False)
    except Exception as err:  # Keras raises many types for a foreign or damaged file
        raise fail(path, f"cannot load the Keras model ({type(err).__name__}: {str(err).splitlines()[0]})") \
            from None


__all__ = ["ARCHITECTURES", "CUSTOM_OBJECTS", "Normalise", "PixelShuffle", "build", "copy_weights", "deploy_form",
           "fuse_weights", "input_multiple", "load", "quad_head"]
