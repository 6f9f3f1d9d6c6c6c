"""Read a .tflite flatbuffer directly: ops, versions, options, tensors and quantisation.

Uses the LiteRT schema bindings (``ai_edge_litert.schema_py_generated``), so nothing is run and no
interpreter is built; the delegate checker (``tflite_isp.compat``) works on what this module returns.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tflite_isp.core.errors import fail

FILE_IDENTIFIER = b"TFL3"


def _enum_names(cls) -> dict:
    """{value: NAME} of a generated schema enum class (its upper-case class attributes)."""
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


BUILTIN_OPS = _enum_names(schema.BuiltinOperator)
TENSOR_TYPES = _enum_names(schema.TensorType)
ACTIVATIONS = _enum_names(schema.ActivationFunctionType)
PADDINGS = _enum_names(schema.Padding)
MIRROR_PAD_MODES = _enum_names(schema.MirrorPadMode)
FC_WEIGHTS_FORMATS = _enum_names(schema.FullyConnectedOptionsWeightsFormat)

# Option fields holding enum values, by their snake_case name, and the enum that names them.
_ENUM_OPTIONS = {
    "fused_activation_function": ACTIVATIONS,
    "padding": PADDINGS,
    "quantized_bias_type": TENSOR_TYPES,
    "output_type": TENSOR_TYPES,
    "out_type": TENSOR_TYPES,
    "in_data_type": TENSOR_TYPES,
    "out_data_type": TENSOR_TYPES,
    "idx_out_type": TENSOR_TYPES,
    "weights_format": FC_WEIGHTS_FORMATS,
}
_ENUM_OPTIONS_BY_CLASS = {("MirrorPadOptionsT", "mode"): MIRROR_PAD_MODES}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main subgraph, with its quantisation parameters (empty tuples: not quantised)."""

    index: int
    name: str
    shape: tuple
    shape_signature: tuple  # -1 marks a dynamic dimension
    dtype: str  # 'float32', 'int8', 'uint8', 'int16', 'int32', 'float16', ...
    is_constant: bool  # backed by a non-empty buffer (weights, constant shapes)
    scales: tuple = ()
    zero_points: tuple = ()
    quantized_dimension: int = 0
    values: tuple = ()  # a small integer constant's values, flattened (paddings, axes, block shapes)

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def is_dynamic(self) -> bool:
        return -1 in self.shape_signature

    def to_dict(self) -> dict:
        d = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
             "shape_signature": list(self.shape_signature)}
        if self.scales:
            d["scale"] = list(self.scales) if self.per_channel else self.scales[0]
            d["zero_point"] = list(self.zero_points) if self.per_channel else self.zero_points[0]
        return d


@dataclass(frozen=True)
class OpInfo:
    """One operator in execution order: its name (builtin or custom code), version, tensors and options."""

    index: int
    name: str
    version: int
    inputs: tuple  # TensorInfo, or None for an omitted optional input (-1)
    outputs: tuple
    options: dict = field(default_factory=dict)
    custom: bool = False


@dataclass
class TFLiteModel:
    """What a .tflite file holds (main subgraph 0), as read from the flatbuffer."""

    path: str
    size_bytes: int
    ops: list
    inputs: list
    outputs: list
    subgraph_count: int
    description: str = ""
    min_runtime: str | None = None
    schema_version: int = 3

    def op_counts(self) -> dict:
        counts: dict = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return counts

    def op_versions(self) -> dict:
        versions: dict = {}
        for op in self.ops:
            versions.setdefault(op.name, set()).add(op.version)
        return {name: sorted(v) for name, v in versions.items()}

    @property
    def has_dynamic_shape(self) -> bool:
        """True when any model input has a dynamic (-1) dimension in its shape signature."""
        return any(t.is_dynamic for t in self.inputs)

    def to_dict(self) -> dict:
        """A JSON-friendly summary for a manifest: IO tensors and the op list."""
        counts, versions = self.op_counts(), self.op_versions()
        return {
            "path": self.path, "size_bytes": self.size_bytes, "subgraphs": self.subgraph_count,
            "description": self.description, "min_runtime": self.min_runtime,
            "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
            "dynamic_shape": self.has_dynamic_shape,
            "ops": [{"name": n, "versions": versions[n], "count": c} for n, c in counts.items()],
        }


def op_macs(op: OpInfo) -> int:
    """Multiply-accumulates of one convolution-type op at its static shapes (0 for other ops).

    Weight layouts (TFLite schema): CONV_2D and TRANSPOSE_CONV (O, kh, kw, I), DEPTHWISE_CONV_2D
    (1, kh, kw, C*m), FULLY_CONNECTED (O, I). TRANSPOSE_CONV's inputs are (output_shape, weights, x).
    """
    def elements(t, drop_last=False):
        dims = t.shape[:-1] if drop_last else t.shape
        return int(np.prod(dims)) if dims else 1

    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1 and op.inputs[1]:
        weights, out = op.inputs[1], op.outputs[0]
        per_output = int(np.prod(weights.shape[1:])) if op.name != "DEPTHWISE_CONV_2D" else \
            int(np.prod(weights.shape[1:3]))
        return elements(out) * per_output
    if op.name == "TRANSPOSE_CONV" and len(op.inputs) > 2 and op.inputs[1] and op.inputs[2]:
        weights, x = op.inputs[1], op.inputs[2]
        return elements(x, drop_last=True) * int(np.prod(weights.shape))
    return 0


def count_macs(model: TFLiteModel) -> int | None:
    """Total MACs of one inference at the file's static input size; None for a dynamic-shape file."""
    if model.has_dynamic_shape:
        return None
    return sum(op_macs(op) for op in model.ops)


# --- Receptive radius --------------------------------------------------------------------------------------------
#
# Walked along each spatial axis (1: height, 2: width) through every tensor computed from the inputs. Pointwise ops
# (a whitelist) keep what their inputs read, ops with an index rule (windows, strides, scale changes, pads) map it,
# and every other op makes it unbounded: an op this walk does not know is never assumed to be local.



















# Index rules: (jump ratio q = output jump / input jump, span) where span(o) = (first, last) input pixels that output
# pixel o reads (along the axis, away from the borders); span None: unbounded (q None: the jump is unknown too).































DTYPE_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "uint32": 4, "float16": 2, "int16": 2,
               "uint16": 2, "int8": 1, "uint8": 1, "bool": 1}


def file_precision(model: TFLiteModel) -> str:
    """fp32, fp16, dynamic, int8 or int16x8, from the activation and weight types the file holds."""
    acts = {t.dtype for op in model.ops for t in op.outputs if not t.is_constant}
    consts = {t.dtype for op in model.ops for t in op.inputs if t is not None and t.is_constant}
    if "int16" in acts:
        return "int16x8"
    if acts & {"int8", "uint8"}:
        return "int8"
    if "float16" in consts:
        return "fp16"
    return "dynamic" if consts & {"int8", "uint8"} else "fp32"


def tensor_bytes(t: TensorInfo) -> int:
    """Bytes of one tensor at its static shape (a dynamic dimension counts as its placeholder, usually 1)."""
    return int(np.prod([max(int(d), 1) for d in t.shape], dtype=np.int64)) * DTYPE_BYTES.get(t.dtype, 4)


def activation_bytes(model: TFLiteModel, *, as_float: bool = False) -> int:
    """Bytes of every activation tensor (op outputs, not weights) at the file's static shapes, with no reuse
    between them; ``as_float`` counts each value as float32 (a quantised file resized at run time is not all
    taken by XNNPACK, and LiteRT's own kernels hold float copies). Score's whole-image memory estimate."""
    size = 0
    for op in model.ops:
        for t in op.outputs:
            if not t.is_constant:
                size += tensor_bytes(t) // DTYPE_BYTES.get(t.dtype, 4) * 4 if as_float else tensor_bytes(t)
    return size




def read(path) -> TFLiteModel:
    """Read and parse a .tflite file; a missing or malformed file raises a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise fail(path, "file not found")
    return parse(path.read_bytes(), str(path))


def parse(data: bytes, name: str = "<bytes>") -> TFLiteModel:
    """Parse the bytes of a .tflite flatbuffer (``name`` is used in error messages)."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise fail(name, "not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
        return _build(model, data, name)
    except Exception as err:  # noqa: BLE001 - flatbuffers raises IndexError/struct.error/... on damaged data
        raise fail(name, f"not a TFLite flatbuffer ({_first_line(err)}; truncated or damaged?)") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _build(model, data: bytes, name: str) -> TFLiteModel:
    if not model.subgraphs:
        raise ValueError("model has no subgraph")
    constant = _constant_buffers(model.buffers or [], len(data))
    graph = model.subgraphs[0]
    tensors = [_tensor(i, t, constant, model.buffers or []) for i, t in enumerate(graph.tensors or [])]
    ops = [_op(i, op, model.operatorCodes or [], tensors) for i, op in enumerate(graph.operators or [])]
    return TFLiteModel(
        path=name, size_bytes=len(data), ops=ops,
        inputs=[tensors[i] for i in _ints(graph.inputs)], outputs=[tensors[i] for i in _ints(graph.outputs)],
        subgraph_count=len(model.subgraphs), description=_text(model.description),
        min_runtime=_metadata_text(model, "min_runtime_version"), schema_version=int(model.version))


def _constant_buffers(buffers, file_size: int) -> set:
    """Indices of buffers holding data, inline or (models > 2 GB) at an offset after the flatbuffer."""
    found = set()
    for i, buf in enumerate(buffers):
        if buf.offset > 1:
            if buf.offset + buf.size > file_size:
                raise ValueError(f"buffer {i} ends past the end of the file")
            found.add(i)
        elif buf.data is not None and len(buf.data) > 0:
            found.add(i)
    return found


def _small_ints(t, buffers) -> tuple:
    """The values of a small inline int32/int64 constant (at most 64 of them); () for any other tensor."""
    dtype = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}.get(t.type)
    data = buffers[t.buffer].data if dtype is not None and 0 < t.buffer < len(buffers) else None
    if data is None or not 0 < len(data) <= 64 * np.dtype(dtype).itemsize:
        return ()
    return tuple(int(v) for v in np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype))


def _tensor(index: int, t, constant: set, buffers) -> TensorInfo:
    shape = tuple(_ints(t.shape))
    signature = tuple(_ints(t.shapeSignature)) if t.shapeSignature is not None else shape
    q = t.quantization
    scales = tuple(float(s) for s in _list(q.scale)) if q is not None else ()
    zeros = tuple(int(z) for z in _list(q.zeroPoint)) if q is not None else ()
    return TensorInfo(
        index=index, name=_text(t.name), shape=shape, shape_signature=signature,
        dtype=TENSOR_TYPES.get(t.type, f"type{t.type}").lower(), is_constant=t.buffer in constant,
        scales=scales, zero_points=zeros, quantized_dimension=int(q.quantizedDimension) if q is not None else 0,
        values=_small_ints(t, buffers))


def _op(index: int, op, opcodes, tensors) -> OpInfo:
    code = opcodes[op.opcodeIndex]
    builtin = max(code.deprecatedBuiltinCode, code.builtinCode)  # the schema's rule for the two fields
    custom = builtin == schema.BuiltinOperator.CUSTOM
    name = _text(code.customCode) if custom else BUILTIN_OPS.get(builtin, f"BUILTIN_{builtin}")
    options = _options(op.builtinOptions) or _options(op.builtinOptions2)
    return OpInfo(
        index=index, name=name, version=int(code.version), custom=custom, options=options,
        inputs=tuple(tensors[i] if i >= 0 else None for i in _ints(op.inputs)),
        outputs=tuple(tensors[i] for i in _ints(op.outputs)))


def _options(obj) -> dict:
    """A builtin-options object as a plain dict: snake_case keys, enum values by name, lists as lists."""
    if obj is None:
        return {}
    out = {}
    for key, value in vars(obj).items():
        snake = _snake(key)
        names = _ENUM_OPTIONS_BY_CLASS.get((type(obj).__name__, key)) or _ENUM_OPTIONS.get(snake)
        if names is not None and isinstance(value, (int, np.integer)):
            value = names.get(int(value), int(value))
        elif isinstance(value, (np.ndarray, list, tuple)):
            value = [v.item() if isinstance(v, np.generic) else v for v in value]
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif not isinstance(value, (bool, int, float, str)) and value is not None:
            continue  # nested tables (rare in builtin options) are left out
        out[snake] = value
    return out


def _snake(name: str) -> str:
    """camelCase -> snake_case, keeping one-letter words apart (dilationWFactor -> dilation_w_factor)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _metadata_text(model, key: str):
    for meta in model.metadata or []:
        if _text(meta.name) == key and meta.buffer < len(model.buffers or []):
            raw = model.buffers[meta.buffer].data
            return bytes(np.asarray(raw, dtype=np.uint8)).rstrip(b"\0").decode("utf-8", "replace") or None
    return None


def _list(v) -> list:
    return [] if v is None else list(v)


def _ints(v) -> list:
    return [int(x) for x in _list(v)]


def _text(v) -> str:
    if v is None:
        return ""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
