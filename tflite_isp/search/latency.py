"""Latency predicted from a device's per-op table (``converters/latency/<device>.json``, written by ``profile``):
``overhead + graph_scale * sum of each op's cost`` from its op type's fitted model.

Cost model (per op key and precision), all coefficients >= 0:
``ms = a*GMAC + b*Mpix_out + b'*Mpix_out_thin + c*MB_in + d*MB_out + e*MB_beyond_cache + f``
(non-negative least squares over the single-op probes, rows weighted by 1/measured so the fit minimises relative
error). Thin convolutions are bound by per-pixel work and memory traffic, not MACs (the Mpix and byte terms); wide
ones by MACs; the per-byte cost rises once tensors outgrow the last-level cache (a breakpoint chosen by
leave-one-out error). Ops without MACs use the byte terms and the constant. The per-graph terms (scale, overhead)
are fitted on several-op probe chains: in a whole graph each op reads what the previous one just wrote, which
single-op probes do not see. Linear models rather than interpolation among probes: they extrapolate to shapes
between and beyond the grid, and the NNLS keeps every term physical.
"""
from __future__ import annotations

import json
import platform
import re
from pathlib import Path

import numpy as np

from tflite_isp.core.errors import UserError, fail
from tflite_isp.export.convert import converters_dir
from tflite_isp.run import flatbuffer

FORMAT = 1
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")
MAC_FEATURES = ("gmac", "mpix", "mpix_thin", "mb_in", "mb_out", "mb_over", "op")
BYTE_FEATURES = ("mb_in", "mb_out", "mb_over", "op")
MULTI_OP = ("chain", "graph")  # probes of several ops (a chain, a whole network): no op type's guideline row
FREE_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")  # metadata only in XNNPACK and LiteRT: no probe, cost 0
IDENTITY_KEYS = ("kind", "cpu_model", "arch", "isa", "model", "soc", "delegate", "host")


def table_dir() -> Path:
    return Path(converters_dir()) / "latency"


def default_table_path(device_name: str) -> Path:
    """``converters/latency/<device>.json``."""
    return table_dir() / f"{device_name}.json"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "unknown"


def local_device(threads: int = 2) -> dict:
    """This machine as a table records it: CPU model, ISA flags, architecture, threads, LiteRT version."""
    from tflite_isp.run.stream_loop import machine  # lazy: reads /proc/cpuinfo only when asked

    m = machine()
    return {"kind": "local", "cpu_model": m["cpu_model"], "arch": m["arch"] or platform.machine(), "isa": m["isa"],
            "threads": threads, "logical_cores": m["logical_cores"], "runtime": f"ai-edge-litert {m['ai_edge_litert']}"}


def device_name(description: dict) -> str:
    """A table's file stem: ``cpu-<model>-<n>t`` locally, ``adb-<phone>-<delegate>``, ``jetson-<model>``."""
    kind = description.get("kind")
    if kind == "local":
        return f"cpu-{slug(description['cpu_model'])}-{description.get('threads', 2)}t"
    if kind == "adb":
        return f"adb-{slug(description.get('model') or description.get('serial'))}-{description.get('delegate')}"
    return f"{kind}-{slug(description.get('model') or description.get('host'))}"


def describe(description: dict) -> str:
    if description.get("kind") == "local":
        return f"{description.get('cpu_model')} ({description.get('arch')}, {description.get('threads')} threads)"
    return f"{description.get('kind')}:{description.get('model') or description.get('host')}"


# --- Ops -----------------------------------------------------------------------------------------------------------

def op_key(op: flatbuffer.OpInfo) -> str:
    """The op's cost-model key: its type, the kernel size for convolutions, and the activation precision."""
    name = op.name
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV") and len(op.inputs) > 1:
        w = op.inputs[1]
        if w is not None and len(w.shape) == 4:
            name = f"{name}_{w.shape[1]}x{w.shape[2]}"
    outs = [t for t in op.outputs if t is not None]
    dtype = outs[0].dtype if outs else "float32"
    if op.name == "DEQUANTIZE":
        dtype = op.inputs[0].dtype if op.inputs and op.inputs[0] is not None else dtype
    return f"{name}/{'int8' if dtype in ('int8', 'uint8') else 'int16' if dtype == 'int16' else 'fp32'}"


def op_features(op: flatbuffer.OpInfo, cache_mb: float = 0.0) -> dict:
    """GMAC, output Mpixels, and those again for inputs of <= 4 channels (MAC ops: XNNPACK wastes most SIMD lanes
    on such thin inputs, so a 4-channel stem conv costs like a 16-channel one); MB read (non-constant inputs), MB
    written, MB beyond ``cache_mb`` (streamed from DRAM: per-byte cost rises past the last-level cache); 1."""
    mb_in = sum(flatbuffer.tensor_bytes(t) for t in op.inputs if t is not None and not t.is_constant) / 1e6
    mb_out = sum(flatbuffer.tensor_bytes(t) for t in op.outputs if t is not None) / 1e6
    feats = {"mb_in": mb_in, "mb_out": mb_out, "mb_over": max(0.0, mb_in + mb_out - cache_mb), "op": 1.0}
    if op.name in MAC_OPS:
        feats["gmac"] = flatbuffer.op_macs(op) / 1e9
        out = op.outputs[0]
        feats["mpix"] = float(np.prod(out.shape[:-1])) / 1e6 if out is not None and len(out.shape) > 1 else 0.0
        x = op.inputs[2] if op.name == "TRANSPOSE_CONV" and len(op.inputs) > 2 else op.inputs[0]
        feats["mpix_thin"] = feats["mpix"] if x is not None and x.shape and x.shape[-1] <= 4 else 0.0
    return feats


def feature_names(key: str) -> tuple:
    return MAC_FEATURES if key.split("/")[0].split("_")[0] in ("CONV", "DEPTHWISE", "TRANSPOSE", "FULLY") \
        else BYTE_FEATURES


# --- Tables --------------------------------------------------------------------------------------------------------

def load_table(path_or_device, *, device: str | dict | None = "local") -> dict:
    """A latency table from a path or a device name (``converters/latency/<name>.json``).

    ``device`` "local" refuses a table profiled on another machine (one line naming both); a dict compares with
    that description; None skips the check. A missing or garbled file is a one-line UserError.
    """
    path = Path(path_or_device)
    if not path.suffix and not path.exists():
        path = default_table_path(str(path_or_device))
    if not path.is_file():
        raise fail(path, "latency table not found (write it with `python -m tflite_isp.search profile`)")
    try:
        table = json.loads(path.read_text())
        if table.get("format") != FORMAT:
            raise ValueError(f"format {table.get('format')!r}, expected {FORMAT}")
        _check_models(table)
    except (ValueError, TypeError, AttributeError, KeyError, UnicodeDecodeError) as err:
        problem = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise fail(path, f"not a latency table ({problem})") from None
    if device is not None:
        want = local_device(table["description"].get("threads", 2)) if device == "local" else device
        have = table["description"]
        diff = [k for k in IDENTITY_KEYS if (k in want or k in have) and want.get(k) != have.get(k)]
        if diff:
            raise fail(path, f"latency table is for {describe(have)}, not {describe(want)} (differs in "
                             f"{', '.join(diff)}): profile this device first")
    table["path"] = str(path)
    return table


def table_for(target, path=None, threads: int = 2) -> dict:
    """The per-op table a search predicts ``target``'s latency from: ``path``, else this machine's default table
    (local targets); a phone's or board's table must be given and be of that kind of device."""
    if target.kind == "local":
        return load_table(path or default_table_path(device_name(local_device(threads))), device="local")
    if path is None:
        raise UserError(f"--latency predict on {target.spec} needs --table: profile it with "
                        f"`python -m tflite_isp.search profile --runtime {target.spec}`")
    table = load_table(path, device=None)
    if table["description"].get("kind") != target.kind:
        raise fail(path, f"latency table is for {describe(table['description'])}, not {target.spec}")
    return table


def _check_models(table: dict) -> None:
    if not isinstance(table.get("description"), dict):
        raise ValueError("no device description")
    for key in ("overhead_ms", "cache_mb", "graph_scale"):
        if not isinstance(table.get(key), (int, float)):
            raise ValueError(f"no {key}")
    models = table.get("models")
    if not isinstance(models, dict) or not models:
        raise ValueError("no fitted models")
    for key, m in models.items():
        if len(m["coef"]) != len(m["features"]) or not all(isinstance(c, (int, float)) for c in m["coef"]):
            raise ValueError(f"model {key} is malformed")


# --- Prediction ----------------------------------------------------------------------------------------------------

def _fallback(key: str, models: dict) -> str | None:
    """The model an op without its own probes borrows: another kernel size of its type, else a memory-bound op."""
    base, precision = key.rsplit("/", 1)
    kind = base.split("_")[0]
    same = sorted(k for k in models if k.endswith("/" + precision) and k.split("_")[0] == kind)
    for candidate in same + [f"RELU/{precision}", "RELU/fp32"]:
        if candidate in models:
            return candidate
    return None


def op_cost(op: flatbuffer.OpInfo, table: dict) -> dict:
    """One op's predicted record: index, type, model key used, outputs' tensor names, GMAC, ms (the op model's
    cost with the table's graph terms, so a file's records sum to its prediction less the per-graph overhead)."""
    key = op_key(op)
    models = table["models"]
    used = key if key in models else (None if op.name in FREE_OPS else _fallback(key, models))
    feats = op_features(op, table.get("cache_mb", 0.0))
    ms = 0.0
    if used is not None:
        m = models[used]
        ms = table["graph_scale"] * sum(c * feats.get(f, 0.0) for f, c in zip(m["features"], m["coef"]))
    ms += table.get("graph_ms_per_mb", 0.0) * feats["mb_out"]
    record = {"op_index": op.index, "op": op.name, "key": key, "model": used,
              "outputs": [t.name for t in op.outputs if t is not None], "gmac": round(feats.get("gmac", 0.0), 6),
              "ms": round(ms, 4)}
    if used != key:
        record["fallback"] = True
    return record


def predict(model, table: dict) -> dict:
    """Predicted latency of a ``.tflite`` file (a path or a parsed ``flatbuffer.TFLiteModel``):
    ``{"ms", "overhead_ms", "per_op": [op records in execution order], "fallback_ops": [...]}``."""
    tfl = model if isinstance(model, flatbuffer.TFLiteModel) else flatbuffer.read(model)
    if tfl.has_dynamic_shape:
        raise fail(tfl.path, "dynamic input shape: export a fixed-size file to predict its latency")
    per_op = [op_cost(op, table) for op in tfl.ops]
    total = table["overhead_ms"] + sum(r["ms"] for r in per_op)  # op_cost already applies the graph scale
    fallback = sorted({r["key"] for r in per_op if r.get("fallback")})
    return {"ms": round(total, 3), "overhead_ms": table["overhead_ms"], "per_op": per_op, "fallback_ops": fallback,
            "table": table.get("path"), "device": table.get("device")}


def ms_per_gmac(table: dict) -> list:
    """Guideline rows, one per op key: probes, their mean ms per GMAC (MAC ops) and ms per MB moved, so a report
    page shows where a device spends time (thin convolutions cost bytes, not MACs)."""
    rows: dict = {}
    for probe in table.get("probes", []):
        if probe.get("op") in MULTI_OP:
            continue
        for op in probe.get("ops", []):
            row = rows.setdefault(op["key"], {"key": op["key"], "probes": 0, "ms": 0.0, "gmac": 0.0, "mb": 0.0})
            row["probes"] += 1
            row["ms"] += op["ms"]
            row["gmac"] += op["features"].get("gmac", 0.0)
            row["mb"] += op["features"]["mb_in"] + op["features"]["mb_out"]
    out = []
    for key in sorted(rows):
        r = rows[key]
        out.append({"key": key, "probes": r["probes"],
                    "ms_per_gmac": round(r["ms"] / r["gmac"], 3) if r["gmac"] > 0 else None,
                    "ms_per_mb": round(r["ms"] / r["mb"], 4) if r["mb"] > 0 else None,
                    "model": dict(zip(table["models"][key]["features"], table["models"][key]["coef"]))
                    if key in table["models"] else None})
    return out


__all__ = ["FORMAT", "default_table_path", "describe", "device_name", "feature_names", "load_table", "local_device",
           "ms_per_gmac", "op_cost", "op_features", "op_key", "predict", "table_dir", "table_for"]
