"""How far an output pixel sees into the input, read off a .tflite graph: the overlap that makes tiles stitch exactly.

Pointwise ops are whitelisted; convolutions, pools, pads, resizes and the space/depth/batch rearrangements have exact
rules from their parameters; every other op makes the radius unbounded (the tiler then says the stitch is
approximate)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from tflite_isp.run.flatbuffer import OpInfo, TensorInfo, TFLiteModel

#: Elementwise ops (with broadcasting of constants) and ops within one pixel's channels.
POINTWISE_OPS = frozenset({
    "ABS", "ADD", "ADD_N", "CAST", "CEIL", "COS", "DEQUANTIZE", "DIV", "ELU", "EQUAL", "EXP", "FAKE_QUANT", "FLOOR",
    "FLOOR_DIV", "FLOOR_MOD", "GELU", "GREATER", "GREATER_EQUAL", "HARD_SWISH", "L2_NORMALIZATION", "LEAKY_RELU",
    "LESS", "LESS_EQUAL", "LOCAL_RESPONSE_NORMALIZATION", "LOG", "LOG_SOFTMAX", "LOGICAL_AND", "LOGICAL_NOT",
    "LOGICAL_OR", "LOGISTIC", "MAXIMUM", "MINIMUM", "MUL", "NEG", "NOT_EQUAL", "POW", "PRELU", "QUANTIZE", "RELU",
    "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "ROUND", "RSQRT", "SELECT", "SELECT_V2", "SIGN", "SIN", "SOFTMAX",
    "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SUB", "TANH"})


#: Pointwise when they work along non-spatial axes only (channels, batch); along height or width: unbounded.
AXIS_OPS = frozenset({"CONCATENATION", "SPLIT", "SPLIT_V", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD",
                      "REDUCE_ANY", "REDUCE_ALL", "ARG_MAX", "ARG_MIN"})


#: Pointwise when they keep (batch, height, width) as they are (a channel reshape, a per-pixel dense, a channel slice).
PIXEL_SHAPE_OPS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "FULLY_CONNECTED", "SLICE", "STRIDED_SLICE",
                             "TRANSPOSE"})


#: Outputs that depend on static shapes only, never on pixel values.
SHAPE_OPS = frozenset({"SHAPE", "RANK", "ZEROS_LIKE"})


@dataclass(frozen=True)
class Reach:
    """What a tensor reads along one axis: its pixel i (jump j input pixels per pixel) depends only on input pixels
    [i*j + lo[i % n], i*j + hi[i % n]], n = the denominator of j; ``lo`` None: unbounded."""

    jump: Fraction
    lo: tuple | None = None
    hi: tuple | None = None

    def radius(self) -> float:
        """How far an input pixel read can lie from the one each pixel belongs to (input pixel floor(i*j))."""
        if self.lo is None:
            return math.inf
        worst = Fraction(0)
        for p, (lo, hi) in enumerate(zip(self.lo, self.hi)):
            at = p * self.jump
            worst = max(worst, math.floor(at) - (at + lo), at + hi - math.floor(at))
        return float(worst)


def receptive_radius(model: TFLiteModel) -> float:
    """Worst-case receptive radius in input pixels (output pixel y of a scale-s output belongs to input pixel y // s);
    ``inf`` when unbounded: a global statistic, pixels moved across the image (a width concat, a transpose, a crop,
    an align-corners resize) or an op without a rule here. A tile margin this large gives exact stitching."""
    worst = 0.0
    for axis in (1, 2):
        state = _walk(model, axis)
        worst = max([worst] + [state[t.index].radius() for t in model.outputs if t.index in state])
    return worst


def input_multiple(model: TFLiteModel) -> int:
    """The largest total stride inside the net: packed input sides must be multiples of it (pooling grids)."""
    jumps = [r.jump for axis in (1, 2) for r in _walk(model, axis).values()]
    return round(max([1, *jumps]))


def _walk(model: TFLiteModel, axis: int) -> dict:
    """tensor index -> Reach along ``axis`` for every tensor computed from the model's inputs."""
    start = Reach(Fraction(1), (Fraction(0),), (Fraction(0),))
    state = {t.index: start for t in model.inputs}
    for op in model.ops:
        live = [(t, state[t.index]) for t in op.inputs if t is not None and t.index in state]
        if not live or op.name in SHAPE_OPS:
            continue
        reach = _step(op, live, axis)
        for t in op.outputs:
            state[t.index] = reach
    return state


def _step(op: OpInfo, live: list, axis: int) -> Reach:
    """The Reach of ``op``'s outputs: an index rule, the union of its inputs' (pointwise) or unbounded."""
    if op.name in INDEX_RULES:
        return _index_mapped(op, live, axis)
    jump = max(r.jump for _, r in live)
    if not _pointwise(op) or any(r.lo is None or r.jump != jump or t.shape[:3] != op.outputs[0].shape[:3]
                                 for t, r in live):
        return Reach(jump)  # an unknown op, a spatial broadcast or mixed grids
    lo = tuple(min(r.lo[p] for _, r in live) for p in range(jump.denominator))
    hi = tuple(max(r.hi[p] for _, r in live) for p in range(jump.denominator))
    return Reach(jump, lo, hi)


def _pointwise(op: OpInfo) -> bool:
    """True when each output pixel reads only the same pixel of its inputs."""
    if op.name in POINTWISE_OPS:
        return True
    if op.name in AXIS_OPS:
        axes, rank = _op_axes(op)
        return bool(axes) and rank >= 3 and all(a % rank not in (1, 2) for a in axes)
    if op.name in PIXEL_SHAPE_OPS:
        return _keeps_pixels(op)
    return False


def _op_axes(op: OpInfo) -> tuple:
    """(axes, rank) an axis op works along; no axes when they are not constants."""
    if op.name == "CONCATENATION":
        return (op.options.get("axis", 0),), len(op.outputs[0].shape)
    if op.name == "SPLIT":
        return op.inputs[0].values, len(op.inputs[1].shape)
    if op.name == "SPLIT_V":
        return op.inputs[2].values, len(op.inputs[0].shape)
    return (op.inputs[1].values if len(op.inputs) > 1 and op.inputs[1] is not None else ()), len(op.inputs[0].shape)


def _keeps_pixels(op: OpInfo) -> bool:
    """True when a reshape, dense, slice or transpose leaves (batch, height, width) as they are."""
    x, y = op.inputs[0], op.outputs[0]
    if op.name == "TRANSPOSE":
        return tuple(op.inputs[1].values[:3]) == (0, 1, 2)
    same = len(x.shape) >= 3 and len(y.shape) >= 3 and x.shape[:3] == y.shape[:3]
    if op.name == "STRIDED_SLICE":
        o, strides = op.options, op.inputs[3].values if len(op.inputs) > 3 and op.inputs[3] is not None else ()
        masks = o.get("ellipsis_mask") or o.get("new_axis_mask") or o.get("shrink_axis_mask")
        return same and tuple(strides[:3]) == (1, 1, 1) and not masks
    return same


def _index_mapped(op: OpInfo, live: list, axis: int) -> Reach:
    """``op``'s data input mapped through its index rule; any other input computed from the image: unbounded."""
    data = op.inputs[2 if op.name == "TRANSPOSE_CONV" else 0]
    jump = max(r.jump for _, r in live)
    if data is None or any(t.index != data.index for t, _ in live):
        return Reach(jump)
    src = live[0][1]
    q, span = INDEX_RULES[op.name](op, axis)
    if q is None:
        return Reach(jump)
    if span is None or src.lo is None:
        return Reach(src.jump * q)
    return _mapped(src, q, span)


def _mapped(src: Reach, q: Fraction, span) -> Reach:
    """``src`` through an index map; the map repeats, so one period of output pixels covers every phase."""
    jump, n_in = src.jump * q, len(src.lo)
    phases = jump.denominator
    lo, hi = [None] * phases, [None] * phases
    for o in range(math.lcm(phases, q.denominator * n_in)):
        first, last = span(o)
        if first > last:
            continue  # reads no input pixel (a transposed conv with a kernel smaller than its stride)
        reads = range(first, last + 1)
        low = min(m * src.jump + src.lo[m % n_in] for m in reads) - o * jump
        high = max(m * src.jump + src.hi[m % n_in] for m in reads) - o * jump
        p = o % phases
        lo[p] = low if lo[p] is None else min(lo[p], low)
        hi[p] = high if hi[p] is None else max(hi[p], high)
    own = [math.floor(p * jump) - p * jump for p in range(phases)]
    return Reach(jump, tuple(own[p] if v is None else v for p, v in enumerate(lo)),
                 tuple(own[p] if v is None else v for p, v in enumerate(hi)))


def _size(t: TensorInfo, axis: int):
    """A tensor's static size along ``axis``; None when dynamic or absent."""
    if len(t.shape) <= axis or (len(t.shape_signature) > axis and t.shape_signature[axis] == -1):
        return None
    return int(t.shape[axis])


def _same_before(n, k: int, stride: int) -> int:
    """TFLite's SAME padding before the first pixel of an n-pixel axis (n None: a multiple of the stride)."""
    n = n or stride
    return max((-(-n // stride) - 1) * stride + k - n, 0) // 2


def _window(op: OpInfo, axis: int, k: int, stride: int) -> tuple:
    """A window of k pixels every ``stride``: output pixel o reads [o*stride - before, o*stride - before + k - 1]."""
    before = _same_before(_size(op.inputs[0], axis), k, stride) if op.options.get("padding") == "SAME" else 0
    return Fraction(stride), lambda o: (o * stride - before, o * stride - before + k - 1)


def _conv_rule(op: OpInfo, axis: int) -> tuple:
    """CONV_2D, DEPTHWISE_CONV_2D: kernel from the weights (O|1, kh, kw, I|C), stride and dilation from the options."""
    hw = "hw"[axis - 1]
    k, dilation = op.inputs[1].shape[axis], op.options.get(f"dilation_{hw}_factor") or 1
    return _window(op, axis, (k - 1) * dilation + 1, op.options.get(f"stride_{hw}") or 1)


def _pool_rule(op: OpInfo, axis: int) -> tuple:
    """MAX/AVERAGE/L2_POOL_2D: filter and stride from the options."""
    o = op.options
    k, stride = (o["filter_height"], o["stride_h"]) if axis == 1 else (o["filter_width"], o["stride_w"])
    return _window(op, axis, k, stride)


def _transpose_conv_rule(op: OpInfo, axis: int) -> tuple:
    """TRANSPOSE_CONV (output_shape, weights, x): input pixel m writes output pixels m*stride - before + [0, k)."""
    stride, k = op.options["stride_h" if axis == 1 else "stride_w"], op.inputs[1].shape[axis]
    before = _same_before(_size(op.outputs[0], axis), k, stride) if op.options.get("padding") == "SAME" else 0
    return Fraction(1, stride), lambda o: (-(-(o + before - k + 1) // stride), (o + before) // stride)


def _depth_to_space_rule(op: OpInfo, axis: int) -> tuple:
    """DEPTH_TO_SPACE: output pixel o comes from pixel o // block."""
    b = op.options["block_size"]
    return Fraction(1, b), lambda o: (o // b, o // b)


def _space_to_depth_rule(op: OpInfo, axis: int) -> tuple:
    """SPACE_TO_DEPTH: output pixel o stacks pixels [o*block, o*block + block - 1]."""
    b = op.options["block_size"]
    return Fraction(b), lambda o: (o * b, o * b + b - 1)


def _space_to_batch_rule(op: OpInfo, axis: int) -> tuple:
    """SPACE_TO_BATCH_ND (x, block_shape, paddings): like SPACE_TO_DEPTH after the padding (the batch holds phases)."""
    block, pads = op.inputs[1].values, op.inputs[2].values
    if len(block) != 2 or len(pads) != 4:
        return None, None
    b, before = block[axis - 1], pads[2 * (axis - 1)]
    return Fraction(b), lambda o: (o * b - before, o * b - before + b - 1)


def _batch_to_space_rule(op: OpInfo, axis: int) -> tuple:
    """BATCH_TO_SPACE_ND (x, block_shape, crops): like DEPTH_TO_SPACE before the crop."""
    block, crops = op.inputs[1].values, op.inputs[2].values
    if len(block) != 2 or len(crops) != 4:
        return None, None
    b, before = block[axis - 1], crops[2 * (axis - 1)]
    return Fraction(1, b), lambda o: ((o + before) // b, (o + before) // b)


def _pad_rule(op: OpInfo, axis: int) -> tuple:
    """PAD, PADV2, MIRROR_PAD: a shift by the padding before; what fills the border never reaches an inner pixel."""
    pads = op.inputs[1].values
    if len(pads) != 2 * len(op.inputs[0].shape):
        return Fraction(1), None
    before = pads[2 * axis]
    return Fraction(1), lambda o: (o - before, o - before)


def _resize_rule(op: OpInfo, axis: int) -> tuple:
    """RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR by an integer factor up or down, as the TFLite kernels index;
    align_corners (the mapping depends on the image size) and fractional factors are unbounded."""
    n_in, n_out = _size(op.inputs[0], axis), _size(op.outputs[0], axis)
    if not n_in or not n_out:
        return None, None
    q = Fraction(n_in, n_out)
    if op.options.get("align_corners") or 1 not in (q.numerator, q.denominator):
        return q, None
    half = Fraction(1, 2) if op.options.get("half_pixel_centers") else Fraction(0)
    if op.name == "RESIZE_NEAREST_NEIGHBOR":
        return q, lambda o: (math.floor((o + half) * q),) * 2
    return q, lambda o: (math.floor((o + half) * q - half), math.ceil((o + half) * q - half))


INDEX_RULES = {
    "CONV_2D": _conv_rule, "DEPTHWISE_CONV_2D": _conv_rule, "TRANSPOSE_CONV": _transpose_conv_rule,
    "MAX_POOL_2D": _pool_rule, "AVERAGE_POOL_2D": _pool_rule, "L2_POOL_2D": _pool_rule,
    "DEPTH_TO_SPACE": _depth_to_space_rule, "SPACE_TO_DEPTH": _space_to_depth_rule,
    "SPACE_TO_BATCH_ND": _space_to_batch_rule, "BATCH_TO_SPACE_ND": _batch_to_space_rule,
    "PAD": _pad_rule, "PADV2": _pad_rule, "MIRROR_PAD": _pad_rule,
    "RESIZE_NEAREST_NEIGHBOR": _resize_rule, "RESIZE_BILINEAR": _resize_rule,
}
