"""Quantization-aware fine-tuning with tensorflow-model-optimization (tf_keras models only).

Every layer is annotated: tfmot's default 8-bit registry covers convolutions, activations,
pooling, Add and Concatenate; the project's own layers get a QuantizeConfig here. Pixel
shuffle only moves values, so it passes its input's quantisation through (an output
quantiser of its own would add an int8 -> int8 requantise after DEPTH_TO_SPACE); layers that
compute new values (Rescaling's affine map) quantise their output.
"""
from __future__ import annotations

import numpy as np

from tflite_isp.core.errors import fail
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import Normalise, PixelShuffle, SpaceToDepth
from tflite_isp.nets.norm import ChannelSlice, InstanceNorm, ReflectPad
from tflite_isp.nets.syenet import ChannelBias
from tflite_isp.train.finetune import fine_tune  # noqa: F401  (re-exported for export)


def _tfmot():
    import tensorflow_model_optimization as tfmot  # lazy: tfmot loads only for QAT and pruning

    return tfmot.quantization.keras


class OutputQuantizeConfig(_tfmot().QuantizeConfig):
    """No weights or input quantisers; one 8-bit asymmetric per-tensor quantiser on the output."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_tfmot().quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                           narrow_range=False)]

    def get_config(self):
        return {}


class PassThroughQuantizeConfig(OutputQuantizeConfig):
    """A layer that only rearranges values keeps its input's quantisation (like Reshape)."""

    def get_output_quantizers(self, layer):
        return []


#: the project's layers without a tfmot default, and how they quantise
CUSTOM_CONFIGS = {PixelShuffle: PassThroughQuantizeConfig, Normalise: OutputQuantizeConfig,
                  keras.layers.Rescaling: OutputQuantizeConfig, keras.layers.Multiply: OutputQuantizeConfig,
                  keras.layers.Subtract: OutputQuantizeConfig,
                  # tfmot has no PReLU entry; its alpha is a weight the converter quantises on its own
                  keras.layers.PReLU: OutputQuantizeConfig,
                  # mirror padding and channel slices only move values; instance norm computes new ones (its
                  # scale and offset stay float here, as PReLU's alpha)
                  ReflectPad: PassThroughQuantizeConfig, ChannelSlice: PassThroughQuantizeConfig,
                  SpaceToDepth: PassThroughQuantizeConfig,
                  InstanceNorm: OutputQuantizeConfig,
                  # a per-channel constant add; the converter quantises its bias like PReLU's alpha
                  ChannelBias: OutputQuantizeConfig}


def _scope():
    return _tfmot().quantize_scope({"OutputQuantizeConfig": OutputQuantizeConfig,
                                    "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
                                    "PixelShuffle": PixelShuffle, "Normalise": Normalise,
                                    "ReflectPad": ReflectPad, "ChannelSlice": ChannelSlice,
                                    "InstanceNorm": InstanceNorm,
                                    "ChannelBias": ChannelBias})


def annotate(model, source: str = "model"):
    """A copy of ``model`` (same weights) with every layer annotated for quantisation."""
    Q = _tfmot()
    registry = Q.default_8bit.Default8BitQuantizeRegistry()

    def annotate_layer(layer):
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        for cls, config in CUSTOM_CONFIGS.items():
            if type(layer) is cls:
                return Q.quantize_annotate_layer(layer, config())
        if registry.supports(layer):
            return Q.quantize_annotate_layer(layer)
        raise fail(source, f"layer {layer.name!r} ({type(layer).__name__}) cannot be annotated for "
                           "quantization-aware training: give its class a QuantizeConfig in tflite_isp/export/qat.py")

    if not getattr(model, "_is_graph_network", False):
        raise fail(source, f"QAT needs a functional tf_keras model, not {type(model).__name__}")
    return keras.models.clone_model(model, clone_function=annotate_layer)


def quantize(model, source: str = "model"):
    """The fake-quantised training model (weights copied from ``model``)."""
    annotated = annotate(model, source)
    with _scope():
        return _tfmot().quantize_apply(annotated)


def _without_activation(layer, inputs):
    activation = layer.activation
    layer.activation = keras.activations.linear
    try:
        return layer(inputs, training=False)
    finally:
        layer.activation = activation


def calibrate_ranges(qat_model, float_model, inputs) -> int:
    """Start every activation quantiser at the float model's observed range on ``inputs``.

    tfmot starts activation ranges at [-6, 6] (inputs at [0, 0]) and moves them by an EMA with
    decay 0.999 and no debiasing, so a short fine-tune would train against ranges that are
    still mostly the initial guess; weight ranges too stay at [-6, 6] until a training-mode
    call. Returns the number of activation ranges set.
    """

    Q = _tfmot()
    targets = []  # (min variable, max variable, (float layer name or None for the model input, pre-activation?))
    for layer in qat_model.layers:
        names = {v.name.split("/")[-1].split(":")[0]: v for v in layer.non_trainable_weights}
        for prefix in ("post_activation", "pre_activation", "output", "quantize_layer"):
            if f"{prefix}_min" in names:
                source = layer.layer.name if isinstance(layer, Q.QuantizeWrapperV2) else None
                targets.append((names[f"{prefix}_min"], names[f"{prefix}_max"], (source, prefix == "pre_activation")))
    keys = [k for _, _, k in targets if k[0]]
    probe = keras.Model(float_model.inputs, [float_model.get_layer(n).input if pre else float_model.get_layer(n).output
                                             for n, pre in keys])
    lo, hi = {}, {}
    for x in inputs:
        outs = probe(x, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for key, value in [((None, False), x), *zip(keys, outs)]:
            if key[1]:  # a fused activation's input range: the layer run without its activation
                value = _without_activation(float_model.get_layer(key[0]), value)
            value = np.asarray(value)
            lo[key] = min(lo.get(key, 0.0), float(value.min()))
            hi[key] = max(hi.get(key, 0.0), float(value.max()))
    for vmin, vmax, key in targets:
        vmin.assign(lo[key])
        vmax.assign(hi[key])
    qat_model(inputs[0], training=True)  # weight quantisers take their ranges from the weights in training mode
    return len(targets)


__all__ = ["CUSTOM_CONFIGS", "OutputQuantizeConfig", "PassThroughQuantizeConfig", "annotate", "calibrate_ranges",
           "fine_tune",
           "quantize"]
