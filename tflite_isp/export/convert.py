"""Keras model -> ``.tflite`` bytes at one precision, following ``converters/precisions.toml``.

The model is traced through a ``tf.function`` with a fixed input signature (batch 1 and a
fixed size by default): a dynamic batch turns TRANSPOSE_CONV output shapes into run-time
tensors that NNAPI rejects, and leaves dilated convolutions unfused (reference §10.3).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tflite_isp.core.errors import UserError, fail

INPUT_NAME = "raw"


@dataclass(frozen=True)
class Precision:
    """One conversion recipe (a table of ``converters/precisions.toml``)."""

    name: str
    summary: str
    optimizations: tuple = ()
    supported_types: tuple = ()
    supported_ops: tuple = ()
    fallback_ops: tuple = ()
    representative: bool = False
    qat: bool = False
    io_types: tuple = ("float32",)

    @property
    def integer(self) -> bool:
        return self.representative


def converters_dir():
    """The checkout's ``converters/`` folder, else the copy installed as package data."""
    checkout = Path(__file__).resolve().parents[2] / "converters"
    if (checkout / "precisions.toml").is_file():
        return checkout
    return resources.files("tflite_isp.builtin_converters")


def precisions() -> dict:
    """name -> Precision, in the order the recipes file lists them."""
    table = tomllib.loads((converters_dir() / "precisions.toml").read_text())
    return {name: Precision(name=name, **{k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()})
            for name, entry in table.items()}


def _dtype(name: str):
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    return {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}[name]


def concrete_function(model, shape):
    """The model traced at ``shape`` (batch, H, W, C); None entries stay dynamic."""
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    spec = tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)
    return tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)


def refuse_unfused(model, source="model") -> None:
    """A re-parameterisable block in training form must be fused (recipe ``reparam = true``) before it ships."""
    from tflite_isp.nets.reparam import unfused_layers  # lazy: TensorFlow loads only when this runs

    unfused = unfused_layers(model)
    if unfused:
        raise fail(source, f"layer {unfused[0]!r} is an unfused re-parameterisation block ({len(unfused)} in all): "
                           "export a run whose recipe sets [model] reparam = true, which fuses them")


def converter_for(model, shape, precision: Precision, *, representative=None, io_type: str | None = None,
                  allow_float_ops: bool = False, per_channel: bool = True):
    """A configured ``tf.lite.TFLiteConverter`` (also what QuantizationDebugger needs)."""
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    refuse_unfused(model, getattr(model, "name", "model"))
    io_type = io_type or precision.io_types[0]
    if io_type not in precision.io_types:
        valid = ", ".join(precision.io_types)
        raise UserError(f"--io_type {io_type} is not valid for {precision.name} (valid: {valid})")
    if precision.representative and representative is None:
        raise UserError(f"{precision.name} needs a representative dataset")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function(model, shape)], model)
    converter.optimizations = [getattr(tf.lite.Optimize, o) for o in precision.optimizations]
    converter.target_spec.supported_types = [getattr(tf, t) for t in precision.supported_types]
    ops = precision.supported_ops + (precision.fallback_ops if allow_float_ops else ())
    if ops:
        converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in ops]
    if precision.representative:
        converter.representative_dataset = representative
        converter.inference_input_type = converter.inference_output_type = _dtype(io_type)
    converter._experimental_disable_per_channel = not per_channel
    return converter


_UNSUPPORTED_16X8 = re.compile(r"not yet supported for op: '(\w+)'")


def convert(model, shape, precision: Precision, **options) -> bytes:
    """Convert; failures become one-line errors that name the ops at fault."""
    converter = converter_for(model, shape, precision, **options)
    try:
        return converter.convert()
    except Exception as err:  # the converter raises ConverterError, RuntimeError or ValueError
        text = str(err)
        ops = sorted(set(_UNSUPPORTED_16X8.findall(text)))
        if ops:
            raise UserError(f"{precision.name}: {', '.join(ops)} cannot run with {precision.name} activations; "
                            f"pass --allow_float_ops to keep {'them' if len(ops) > 1 else 'it'} in float") from None
        lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()] or text.strip().splitlines()[-1:]
        raise UserError(f"{precision.name} conversion failed: {lines[0][:300] if lines else type(err).__name__}") \
            from None


def representative_from(inputs):
    """A converter ``representative_dataset`` callable over input arrays (re-iterable)."""
    def generate():
        for x in inputs:
            yield [x]
    return generate


__all__ = ["INPUT_NAME", "Precision", "concrete_function", "convert", "converter_for", "converters_dir", "precisions",
           "refuse_unfused", "representative_from"]
