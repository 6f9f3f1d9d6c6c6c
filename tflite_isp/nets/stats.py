"""Parameter and multiply-accumulate counts of a fixed-shape Keras model."""
from __future__ import annotations

import numpy as np

from tflite_isp.core.tf import keras
from tflite_isp.nets.reparam import RepConv2D

L = keras.layers


def _hw(shape):
    return int(np.prod([d for d in shape[1:-1]]))


def layer_macs(layer) -> int:
    """MACs of one layer for one image (batch 1); 0 for layers without multiplies worth counting."""
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return _hw(layer.output.shape) * layer.input.shape[-1] * layer.depth_multiplier * kh * kw
    if isinstance(layer, L.Conv2DTranspose):
        kh, kw = layer.kernel_size
        return _hw(layer.input.shape) * layer.input.shape[-1] * layer.filters * kh * kw
    if isinstance(layer, L.SeparableConv2D):
        kh, kw = layer.kernel_size
        cin = layer.input.shape[-1]
        return _hw(layer.output.shape) * cin * (layer.depth_multiplier * kh * kw + layer.filters)
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        return _hw(layer.output.shape) * kh * kw * layer.input.shape[-1] // layer.groups * layer.filters
    if isinstance(layer, RepConv2D):  # training form: every branch, then the 1x1 mix
        twins = 2 if layer.batch_norm else 1
        wide, taps = layer.filters * layer.rep_scale, twins * sum(kh * kw for kh, kw in layer.shapes)
        mix = twins * len(layer.shapes) * wide * layer.filters
        return _hw(layer.output.shape) * (taps * layer.input.shape[-1] * wide + mix)
    if isinstance(layer, L.Dense):
        return int(np.prod(layer.output.shape[1:-1] or [1])) * layer.input.shape[-1] * layer.units
    return 0


def count_macs(model) -> int:
    """Total MACs for one forward pass at the model's static input size."""
    if any(d is None for d in model.input_shape[1:]):
        raise ValueError("MACs need a fixed input size: build the model with height and width")
    return int(sum(layer_macs(layer) for layer in model.layers))


def count_params(model) -> int:
    return int(model.count_params())
