"""Magnitude pruning with tensorflow-model-optimization: wrap, step, strip.

Convolution and dense kernels are wrapped with ``prune_low_magnitude`` (a polynomial schedule
from 0 to the target sparsity); layers tfmot does not know (pixel shuffle, Normalise) stay as
they are. The zeros only pay off where a runtime exploits them (XNNPACK's sparse inference,
compressed downloads); structured channel pruning (:mod:`tflite_isp.channel_prune`) removes MACs.
"""
from __future__ import annotations

import numpy as np

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras

PRUNED_TYPES = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)


def _pruned(layer) -> bool:
    """Full convolutions and dense layers (depthwise kernels are too small to be worth it)."""
    return isinstance(layer, PRUNED_TYPES) and not isinstance(layer, keras.layers.DepthwiseConv2D)


def _sparsity():
    import tensorflow_model_optimization as tfmot  # lazy: tfmot loads only for QAT and pruning

    return tfmot.sparsity.keras


def check(sparsity: float) -> None:
    if not 0.0 < sparsity < 1.0:
        raise UserError(f"--prune_sparsity must be between 0 and 1 (exclusive), not {sparsity}")


def wrap(model, *, sparsity: float, begin_step: int, end_step: int):
    """A copy of ``model`` (same weights) whose kernels are pruned to ``sparsity`` by ``end_step``."""
    check(sparsity)
    S = _sparsity()
    end_step = max(end_step, begin_step + 1)
    schedule = S.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=begin_step,
                                 end_step=end_step, frequency=max(1, (end_step - begin_step) // 20))

    def clone(layer):
        if _pruned(layer):
            return S.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


def is_wrapped(model) -> bool:
    return any(type(layer).__name__ == "PruneLowMagnitude" for layer in model.layers)


class StepUpdater:
    """The pruning step counter a custom training loop must advance (tfmot's UpdatePruningStep)."""

    def __init__(self, model):
        self.callback = _sparsity().UpdatePruningStep()
        self.callback.set_model(model)
        self.callback.on_train_begin()

    def before_step(self) -> None:
        self.callback.on_train_batch_begin(batch=-1)

    def end_epoch(self) -> None:
        self.callback.on_epoch_end(batch=-1)


def strip(model):
    """The plain Keras model with the masks baked into its weights (what export converts)."""
    return _sparsity().strip_pruning(model)


def kernel_sparsity(model) -> float:
    """Fraction of zero weights over the pruned layer types' kernels."""
    zeros = total = 0
    for layer in model.layers:
        if _pruned(layer):
            k = np.asarray(layer.kernel)
            zeros += int(np.sum(k == 0))
            total += k.size
    return zeros / total if total else 0.0
