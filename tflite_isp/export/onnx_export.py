"""Keras ISP net -> ONNX through tf2onnx, and a parity check of the file against the Keras model.

The model is wrapped in a ``tf.function`` with a fixed (1, H, W, 4) float32 signature named
``raw`` and converted with ``tf2onnx.convert.from_function`` (the route the deployment notes
recommend; ``from_keras`` is untested upstream with current Keras). The ONNX graph keeps the
Keras NHWC layout at its input and output; tf2onnx inserts the transposes around the NCHW
ONNX ops. ``tf.nn.depth_to_space`` (NHWC) becomes ONNX ``DepthToSpace`` in DCR mode, which is
the same element order; :func:`parity` confirms it numerically.
"""
from __future__ import annotations

import logging
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.tf import tf

INPUT_NAME = "raw"
OUTPUT_NAME = "rgb"

_NOISY_LOGGERS = ("tf2onnx", "onnx", "onnxruntime")


@contextmanager
def _quiet():
    """tf2onnx logs every conversion step at INFO; keep only warnings and errors while it runs."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _OpErrors(logging.Handler):
    """Collects tf2onnx's error lines (with continue_on_error it logs unsupported ops and goes on)."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages = []

    def emit(self, record):
        try:
            self.messages.append(record.getMessage().splitlines()[0])
        except Exception:  # noqa: BLE001 - a log record that cannot be formatted is not our failure
            pass


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _shape(value_info) -> tuple:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)


def _unconverted(model_proto) -> list:
    """Node op types that are not standard ONNX ops (tf2onnx leaves unsupported TF ops in place)."""
    import onnx  # lazy: the ONNX stack loads only for --onnx

    known_domains = {"", "ai.onnx"}
    bad = []
    for node in model_proto.graph.node:
        domain = node.domain or ""
        if domain not in known_domains or not onnx.defs.has(node.op_type, domain):
            bad.append(node.op_type if not domain else f"{domain}.{node.op_type}")
    return sorted(set(bad))


# long function: tf2onnx's conversion steps and their one-line error translations, in order.
def to_onnx(model, path, *, height: int, width: int, opset: int = 17) -> dict:
    """Convert ``model`` (packed RAW (1, H, W, 4) float32 -> (1, 2H, 2W, 3), or a colourisation net's L
    (1, H, W, 1) -> ab (1, H, W, 2)) to an ONNX file at ``path``.

    The file is written atomically (never half-written; nothing is left behind on failure).
    Returns {"opset", "input": {"name", "shape"}, "output": {"name", "shape"}, "size_bytes",
    "ops": {op_type: count, ...} sorted by op type}. Any conversion failure is a one-line UserError.
    """
    import onnx  # lazy: the ONNX stack loads only for --onnx
    import tf2onnx
    from tf2onnx import constants as tf2onnx_constants  # lazy: the ONNX stack loads only for --onnx

    path = Path(path)
    height, width, opset = int(height), int(width), int(opset)
    if not path.parent.is_dir():
        raise fail(path, f"cannot write ONNX file: folder {path.parent} does not exist")
    if path.is_dir():
        raise fail(path, "cannot write ONNX file: this is a folder")
    supported = sorted(tf2onnx_constants.OPSET_TO_IR_VERSION)
    if opset not in supported:
        raise fail(path, f"ONNX opset {opset} is not supported by tf2onnx {tf2onnx.__version__} "
                         f"(supported: {supported[0]}..{supported[-1]})")
    if height <= 0 or width <= 0:
        raise fail(path, f"input size must be positive, not {height}x{width}")

    channels = 1 if model.input_shape[-1] == 1 else 4  # an L plane, else packed RAW (another count fails the trace)
    spec = [tf.TensorSpec((1, height, width, channels), tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=spec)
    def serve(raw):
        return {OUTPUT_NAME: model(raw, training=False)}

    # Trace first: a model that does not accept (1, H, W, C) fails here with a readable Keras error.
    try:
        concrete = serve.get_concrete_function(*spec)
    except Exception as err:  # noqa: BLE001 - Keras raises ValueError/TypeError/InvalidArgumentError
        raise fail(path, f"model does not accept a (1, {height}, {width}, {channels}) float32 input: "
                         f"{_first_line(err)}") from None
    expected = (1, 2 * height, 2 * width, 3) if channels == 4 else (1, height, width, 2)
    got = tuple(concrete.structured_outputs[OUTPUT_NAME].shape.as_list())
    if got != expected:
        raise fail(path, f"model maps (1, {height}, {width}, {channels}) to {got}, expected {expected}")

    collector = _OpErrors()
    tf2onnx_logger = logging.getLogger("tf2onnx")
    tf2onnx_logger.addHandler(collector)
    try:
        with _quiet():
            model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    except Exception as err:  # noqa: BLE001 - tf2onnx raises many kinds; report one line
        reason = collector.messages[0] if collector.messages else _first_line(err)
        raise fail(path, f"tf2onnx conversion failed: {reason}") from None
    finally:
        tf2onnx_logger.removeHandler(collector)

    bad = _unconverted(model_proto)
    if bad:
        detail = f" ({collector.messages[0]})" if collector.messages else ""
        raise fail(path, f"tf2onnx could not convert op(s) {', '.join(bad)} to ONNX opset {opset}{detail}")
    try:
        onnx.checker.check_model(model_proto)
    except onnx.checker.ValidationError as err:
        raise fail(path, f"converted ONNX model is invalid: {_first_line(err)}") from None

    graph = model_proto.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise fail(path, f"converted ONNX model has {len(graph.input)} inputs and {len(graph.output)} outputs, "
                         "expected 1 and 1")
    in_shape, out_shape = _shape(graph.input[0]), _shape(graph.output[0])
    if in_shape != (1, height, width, channels):
        raise fail(path, f"converted ONNX input has shape {in_shape}, expected (1, {height}, {width}, {channels})")
    if out_shape != expected:
        raise fail(path, f"converted ONNX output has shape {out_shape}, expected {expected}")

    data = model_proto.SerializeToString()
    try:
        atomic.write_bytes(path, data)
    except OSError as err:
        raise fail(path, f"cannot write ONNX file: {err.strerror or err}") from None

    ops = Counter(node.op_type for node in graph.node)
    return {
        "opset": opset,
        "input": {"name": graph.input[0].name, "shape": list(in_shape)},
        "output": {"name": graph.output[0].name, "shape": list(out_shape)},
        "size_bytes": len(data),
        "ops": dict(sorted(ops.items())),
    }


def parity(path, model, inputs) -> dict:
    """Run the ONNX file with onnxruntime (CPU) on each image of ``inputs`` (n, H, W, 4) and compare
    with ``model(x, training=False)``: {"max_abs_diff", "mean_abs_diff", "images"}."""
    import onnxruntime as ort  # lazy: the ONNX stack loads only for --onnx

    path = Path(path)
    if not path.is_file():
        raise fail(path, "ONNX file not found")
    x = np.asarray(inputs, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 4) or x.shape[0] < 1:
        raise UserError(f"parity inputs must have shape (n, H, W, 4) (or 1 channel, L) with n >= 1, not {x.shape}")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        with _quiet():
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph types
        raise fail(path, f"onnxruntime cannot load the file: {_first_line(err)}") from None
    feed = session.get_inputs()[0]
    fixed = tuple(feed.shape)
    if fixed[1:] != tuple(x.shape[1:]) and all(isinstance(d, int) for d in fixed[1:]):
        raise fail(path, f"ONNX input {feed.name} has shape {fixed}; parity inputs are {x.shape}")

    maxima, total, count = [], 0.0, 0
    for i in range(x.shape[0]):
        one = x[i:i + 1]
        got = session.run(None, {feed.name: one})[0]
        want = np.asarray(model(one, training=False), dtype=np.float32)
        if got.shape != want.shape:
            raise fail(path, f"ONNX output shape {got.shape} differs from the Keras model's {want.shape}")
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        maxima.append(diff.max())  # NaN propagates through np.max below (Python max() would drop it)
        total += float(diff.sum())
        count += diff.size
    return {"max_abs_diff": float(np.max(maxima)), "mean_abs_diff": total / count, "images": int(x.shape[0])}


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "parity", "to_onnx"]
