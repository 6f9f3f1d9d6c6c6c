"""Per-layer quantisation error (TFLite's QuantizationDebugger) and selective quantisation.

The debugger runs the float and the quantised graph side by side on debug inputs and dumps,
per quantised tensor, the error statistics. The ranking uses RMSE / scale: the error in units
of the tensor's quantisation step (about 0.29 for pure rounding noise, a uniform error over
one step); layers well above it lose information beyond rounding. LiteRT's guide flags > 0.7.
"""
from __future__ import annotations

import csv
import io
import math

FLAG_RATIO = 0.7


def _debugger(make_converter, inputs, denylisted_nodes=()):
    """``make_converter()`` gives a fresh converter: one converts only once."""
    from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylisted_nodes) or None)
    return tf.lite.experimental.QuantizationDebugger(
        converter=make_converter(), debug_dataset=lambda: ([x] for x in inputs), debug_options=options)


def layer_table(make_converter, inputs) -> list:
    """Rows per quantised tensor, worst first: op, tensor, rmse/scale, max error, scale, zero point."""
    debugger = _debugger(make_converter, inputs)
    debugger.run()
    buffer = io.StringIO()
    debugger.layer_statistics_dump(buffer)
    rows = []
    for r in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale, mse = float(r["scale"]), float(r["mean_squared_error"])
        rows.append({
            "op": r["op_name"], "tensor": r["tensor_name"], "elements": int(float(r["num_elements"])),
            "rmse_over_scale": math.sqrt(mse) / scale if scale else float("inf"),
            "max_abs_error": float(r["max_abs_error"]), "mean_error": float(r["mean_error"]),
            "scale": scale, "zero_point": int(float(r["zero_point"])),
        })
    rows.sort(key=lambda row: -row["rmse_over_scale"])
    return rows


def selective_model(make_converter, inputs, keep_float) -> bytes:
    """The quantised model with the ops that produce ``keep_float`` tensors left in float."""
    return _debugger(make_converter, inputs, keep_float).get_nondebug_quantized_model()


def format_table(rows, limit: int = 15) -> str:
    lines = [f"{'#':>3}  {'op':<18} {'rmse/scale':>10} {'max err':>10} {'scale':>10}  tensor",
             "-" * 100]
    for i, row in enumerate(rows[:limit], start=1):
        flag = " !" if row["rmse_over_scale"] > FLAG_RATIO else ""
        lines.append(f"{i:>3}  {row['op']:<18} {row['rmse_over_scale']:>10.3f} {row['max_abs_error']:>10.4g} "
                     f"{row['scale']:>10.4g}  {row['tensor'][:52]}{flag}")
    if len(rows) > limit:
        lines.append(f"     ... {len(rows) - limit} more tensors")
    lines.append(f"('!': rmse/scale > {FLAG_RATIO}, more than rounding noise)")
    return "\n".join(lines)


__all__ = ["FLAG_RATIO", "format_table", "layer_table", "selective_model"]
