"""``--mixed_precision bfloat16|float16``: tf_keras's mixed policy while the trained model is built, float32
outputs (so every loss is float32), loss scaling for float16, and the float32 network that model.keras holds.

Keras keeps float32 master variables under a mixed policy, so checkpoints and best weights hold float32 values; only
the layers' compute dtype changes. The policy is global in tf_keras: ``policy`` sets it for the build and restores
the previous one, so one process training twice (tests, benchmarks) is not left in a mixed policy.
"""
from __future__ import annotations

import contextlib

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras
from tflite_isp.nets import architectures

POLICIES = {"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def check(name: str | None) -> None:
    if name is not None and name not in POLICIES:
        raise UserError(f"--mixed_precision must be one of {', '.join(POLICIES)}, not {name!r}")


@contextlib.contextmanager
def policy(name: str | None):
    """The global Keras policy for ``name`` (None: float32) while the block runs; the previous one afterwards."""
    check(name)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICIES.get(name, "float32"))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def is_mixed(model) -> bool:
    return any(layer.compute_dtype != layer.variable_dtype for layer in _flat_layers(model))


def _flat_layers(model):
    for layer in model.layers:
        yield layer
        inner = getattr(layer, "layer", None)  # a pruning wrapper's layer
        if inner is not None:
            yield inner


def float32_outputs(model):
    """``model`` with each output cast to float32 by a weightless layer (the model itself when already float32)."""
    if not is_mixed(model):
        return model
    outputs = model.outputs
    cast = [keras.layers.Activation("linear", dtype="float32", name=f"float32_output{i or ''}")(out)
            for i, out in enumerate(outputs)]
    return keras.Model(model.inputs, cast if len(cast) > 1 else cast[0], name=model.name)


def wrap_optimizer(optimizer, name: str | None):
    """float16 trains through a dynamic loss scale (its range underflows small gradients); bfloat16 needs none."""
    return keras.mixed_precision.LossScaleOptimizer(optimizer) if name == "float16" else optimizer


def scaled(optimizer, loss):
    """The loss the tape differentiates (scaled under float16); ``unscaled`` undoes it on the gradients."""
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.get_scaled_loss(loss)
    return loss


def unscaled(optimizer, grads):
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.get_unscaled_gradients(grads)
    return grads


def float32_model(model, recipe):
    """The recipe's network built under the float32 policy with ``model``'s weights (``model`` itself when it is
    float32 already): model.keras and what export and score read stay float32."""
    if not is_mixed(model):
        return model
    with policy(None):
        target = architectures.build(recipe.model, name=recipe.name, cfa=recipe.input.cfa)
    return architectures.copy_weights(model, target)
