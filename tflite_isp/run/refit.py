"""A fixed-shape .tflite rewritten for another input size: what tiling runs (static shapes keep every op delegated)."""
from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from tflite_isp.run.flatbuffer import FILE_IDENTIFIER


def refit(data: bytes, height: int, width: int) -> bytes:
    """A fixed-shape ``.tflite`` rewritten for a (1, height, width, C) input: same ops, weights and quantisation.

    Dims 1 and 2 of every non-constant 4-D tensor and the constant ``output_shape`` of every TRANSPOSE_CONV scale
    by height / H and width / W of the file's own input (the file refitted to its own size is byte-identical).
    Unlike resizing a dynamic-shape file at run time, every op keeps static shapes, so XNNPACK takes the same
    graph at any size.
    """

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    graph = model.subgraphs[0]
    h0, w0 = (int(d) for d in graph.tensors[graph.inputs[0]].shape[1:3])

    def scaled(shape):
        n, h, w, c = (int(d) for d in shape)
        if (h * height) % h0 or (w * width) % w0:
            raise ValueError(f"cannot refit {h}x{w} by {height}/{h0} x {width}/{w0}: use a multiple of the input")
        return np.asarray([n, h * height // h0, w * width // w0, c], np.int32)

    def constant(tensor):
        return model.buffers[tensor.buffer].data is not None and len(model.buffers[tensor.buffer].data) > 0

    transpose = {i for i, code in enumerate(model.operatorCodes)
                 if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.TRANSPOSE_CONV}
    for op in graph.operators:
        if op.opcodeIndex in transpose:
            buffer = model.buffers[graph.tensors[op.inputs[0]].buffer]
            shape = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), np.int32)
            buffer.data = np.frombuffer(scaled(shape).tobytes(), np.uint8)
    for tensor in graph.tensors:
        if tensor.shape is not None and len(tensor.shape) == 4 and not constant(tensor):
            tensor.shape = scaled(tensor.shape)
            if tensor.shapeSignature is not None and len(tensor.shapeSignature):
                tensor.shapeSignature = scaled(tensor.shapeSignature)
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
