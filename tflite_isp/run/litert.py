"""Run a ``.tflite`` file with the LiteRT interpreter (ai-edge-litert; XNNPACK on by default).

Inputs and outputs are float arrays in the model's normalised convention; quantised IO is
applied and removed here with the file's own scale and zero point, so callers never see it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from tflite_isp.core.errors import fail
from tflite_isp.run import flatbuffer

# XNNPACK refuses a quantised convolution whose requantisation scale (input scale x weight scale / output scale) is
# >= 256 (xnn_create_convolution2d_nhwc_qs8 and its deconvolution / fully-connected siblings), and ai-edge-litert
# 2.3 then, rather than running the op on its own kernels, aborts the process in allocate_tensors ("double free or
# corruption") or fails to prepare the delegate node; which of the two depends on the graph.
# Post-training calibration produces such a scale when a layer's output was all zero on every calibration image
# (a dead ReLU): its range collapses to ~1e-8.
XNNPACK_MAX_REQUANTIZATION = 256.0
QUANTISED_MAC_OPS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 2}  # activation


def _quantise(x: np.ndarray, detail: dict) -> np.ndarray:
    """round(x / scale + zero), clipped to the integer type: one float temporary, worked in place (the values are
    those of the plain expression; a large tile's input is tens of MiB, and each extra copy counts in the peak)."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    t = x / scale
    t += zero
    np.round(t, out=t)
    np.clip(t, info.min, info.max, out=t)
    return t.astype(dtype)


def _dequantise(y: np.ndarray, detail: dict) -> np.ndarray:
    """(y - zero) * scale as float32, in place in the one float copy (same values as the plain expression)."""
    if not np.issubdtype(y.dtype, np.integer):
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    out = y.astype(np.float32)
    out -= zero
    out *= scale
    return out


def xnnpack_refusals(model: flatbuffer.TFLiteModel) -> list:
    """[(op, requantisation scale)] for each quantised MAC op whose scale XNNPACK refuses (see above)."""
    found = []
    for op in model.ops:
        if op.name not in QUANTISED_MAC_OPS or len(op.inputs) < 2 or not op.outputs:
            continue
        x, w, y = op.inputs[QUANTISED_MAC_OPS[op.name]], op.inputs[1], op.outputs[0]
        if x is None or w is None or y is None or not (x.scales and w.scales and y.scales) or y.scales[0] <= 0:
            continue
        scale = x.scales[0] * max(w.scales) / y.scales[0]
        if scale >= XNNPACK_MAX_REQUANTIZATION:
            found.append((op, scale))
    return found


def check_loadable(model: flatbuffer.TFLiteModel, name: str) -> None:
    """A one-line UserError for a file LiteRT's default (XNNPACK) interpreter cannot load, naming the op (before
    LiteRT sees it: it may abort the whole process)."""
    refused = xnnpack_refusals(model)
    if refused:
        op, scale = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        out = op.outputs[0]
        raise fail(name, f"LiteRT cannot load it (it aborts or fails to prepare): XNNPACK refuses {op.name} "
                         f"#{op.index} ({out.name.split(';')[0]}){more}: requantisation scale {scale:.3g} >= 256, "
                         f"output scale {out.scales[0]:.2g} (a range collapsed in calibration: the layer output only "
                         f"zeros on the calibration images); calibrate on more images or retrain")


class Runner:
    """One loaded model: ``runner(x)`` maps a float (1, H, W, 4) input to the float output."""

    def __init__(self, model, threads: int = 2, name: str | None = None):
        kwargs = {"model_content": model} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
        self.name = name or ("<bytes>" if "model_content" in kwargs else str(model))
        if "model_path" in kwargs and not Path(model).is_file():
            raise fail(model, "file not found")
        self._shape = None
        check_loadable(flatbuffer.parse(bytes(model), self.name) if "model_content" in kwargs
                       else flatbuffer.read(model), self.name)
        try:
            self.interpreter = Interpreter(num_threads=threads, **kwargs)
            self.input = self.interpreter.get_input_details()[0]
            # A dynamic file is allocated at its first input's size: its placeholder 1 x 1 can be too small for
            # its ops (a reflect pad of 1, a chain of valid stride-3 convs) and fail to prepare.
            if -1 not in self.input["shape_signature"]:
                self._allocate()
        except (ValueError, RuntimeError) as err:
            raise fail(self.name, f"LiteRT cannot load it ({str(err).strip().splitlines()[0]})") from None
        self.output = self.interpreter.get_output_details()[0]

    def _allocate(self, shape=None):
        if shape is not None:
            self.interpreter.resize_tensor_input(self.input["index"], list(shape), strict=True)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._shape = tuple(self.input["shape"])

    @property
    def input_shape(self) -> tuple:
        """(1, H, W, C); -1 where the file's signature is dynamic."""
        return tuple(int(d) for d in self.input["shape_signature"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if tuple(x.shape) != self._shape:
            if any(int(a) != b and int(a) != -1 for a, b in zip(self.input["shape_signature"], x.shape)):
                raise ValueError(f"{self.name}: input shape {tuple(x.shape)} does not fit {self.input_shape}")
            try:
                self._allocate(x.shape)
            except (ValueError, RuntimeError) as err:
                raise fail(self.name, f"LiteRT cannot run it at {tuple(x.shape)} "
                                      f"({str(err).strip().splitlines()[0]})") from None
        self.interpreter.set_tensor(self.input["index"], _quantise(np.asarray(x, np.float32), self.input))
        self.interpreter.invoke()
        return _dequantise(self.interpreter.get_tensor(self.output["index"]), self.output)


__all__ = ["Runner"]
