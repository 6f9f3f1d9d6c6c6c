"""One command, one table: every zoo model x precision at Full HD on this CPU, beside the CPU's measured peak.

    .venv/bin/python benchmarks/suite.py                       # every zoo model x fp32/fp16/int8, 1 and 2 threads
    .venv/bin/python benchmarks/suite.py --quick               # smoke check: 1 round, 3 runs (a few minutes)
    .venv/bin/python benchmarks/suite.py --models smallnet,sid_unet --precisions fp32,int8 --threads 2

What it measures, per zoo model (every built-in recipe the zoo lists) and precision (fp32, fp16, int8):

- the ``.tflite`` file's size, its parameters (elements of the constant weight and bias tensors, counted from
  the flatbuffer) and its multiply-accumulates per Full HD frame (``flatbuffer.count_macs``);
- its latency at Full HD (packed 1x544x960x4; ``runtimes.full_hd_plan``) with LiteRT and the XNNPACK delegate
  at each ``--threads`` count, every measurement in a fresh process (``timing.measure_subprocess``: warm-up
  invokes, then timed ``invoke()`` calls), and the process's peak RSS (VmHWM);
- achieved GMAC/s = MACs / median latency, and its fraction of this CPU's attainable peak at the same thread
  count: fp32 and fp16 files against the fp32 GEMM, int8 files against the int8 GEMM.

The peak is measured in the same run, interleaved with the models: two single-op ``.tflite`` GEMM files built
with TensorFlow (a FULLY_CONNECTED of 1024x4096 activations by a constant 4096x4096 weight matrix, 17.2 GMAC;
one float32, one full-integer int8 calibrated on a representative dataset) timed exactly like the models, plus
NumPy's float32 ``matmul`` of the same size (OpenBLAS, thread count set per process) as a cross-check.

Files: fp16 and int8 are the zoo's exports (``runs/zoo/<model>/export/<precision>/model.tflite``; trained and
exported by ``zoo.prepare`` when missing, as ``python -m tflite_isp.score --zoo`` does). fp32 is not a zoo
precision: it is exported from the same ``model.keras`` with the export command's own code
(``export.run``, no fidelity images) into ``build/suite/<model>/fp32/`` (not into the zoo's export folder,
where ``score --zoo`` would pick it up). The GEMM files go to ``build/suite/gemm/``. Existing files are reused.

Every file x thread count is measured once per round; the order rotates from round to round, so the noise of a
shared machine spreads over all of them. Per file and thread count the table gives the median over rounds of
each process's median, and the median over rounds of each process's p95. Timed runs per process: ``--runs``, or
by default enough for about ``--seconds`` of timed invokes at the highest thread count (from a one-run probe),
between 5 and 200.

Writes ``suite.json`` (every process's result, the machine, load averages) and ``suite.md`` (the tables) to
``--out`` (default ``benchmarks/results``), atomically, after the probes and after every round.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_common import (
    REPO,
    add_common_args,
    add_quiet_args,
    children_cpu_seconds,
    comma_list,
    finish_report,
    fmt_bytes,
    fmt_ms,
    fmt_params,
    fmt_pct,
    header,
    load_average,
    log,
    md_table,
    nonnegative_int,
    parser,
    positive_float,
    positive_int,
    provenance_line,
    save_results,
    start_report,
    wait_for_quiet,
)

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError, run_cli
from tflite_isp.score.zoo import ZOO_MODELS as MODELS

NAME = "suite"
PRECISIONS = ("fp32", "fp16", "int8")
GEMM = (1024, 4096, 4096)  # (M, K, N): activations M x K times constant weights K x N
PEAK_FAMILY = {"fp32": "fp32", "fp16": "fp32", "int8": "int8"}  # which GEMM peak a precision is compared with
MIN_RUNS, MAX_RUNS = 5, 200
BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
WEIGHT_DTYPES = ("float32", "float16", "int8", "uint8", "int16")


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--models", type=comma_list(MODELS), default=",".join(MODELS),
                   help=f"Comma-separated zoo models (default {','.join(MODELS)}).")
    p.add_argument("--precisions", type=comma_list(PRECISIONS), default=",".join(PRECISIONS),
                   help=f"Comma-separated precisions (default {','.join(PRECISIONS)}).")
    p.add_argument("--threads", type=comma_list(cast=positive_int), default="1,2",
                   help="Comma-separated LiteRT thread counts (default 1,2).")
    p.add_argument("--rounds", type=positive_int, default=3, help="Rounds; each measures every file once (default 3).")
    p.add_argument("--runs", type=nonnegative_int, default=0,
                   help="Timed invokes per process (default 0: about --seconds worth, between 5 and 200).")
    p.add_argument("--seconds", type=positive_float, default=4.0,
                   help="With --runs 0: timed seconds per process at the highest thread count (default 4).")
    p.add_argument("--warmup", type=nonnegative_int, default=2, help="Untimed invokes per process (default 2).")
    p.add_argument("--numpy-repeats", type=positive_int, default=5,
                   help="Timed NumPy matmuls per process (default 5).")
    add_quiet_args(p, quiet_cores=0.3, max_wait=120.0)
    p.add_argument("--retries", type=nonnegative_int, default=2,
                   help="Repeat a measurement whose process got under --min-share of its threads' cores while "
                        "invoking, at most this often (default 2).")
    p.add_argument("--min-share", type=float, default=0.8,
                   help="Least share of its threads' cores a measurement must get to be kept first time "
                        "(default 0.8).")
    p.add_argument("--zoo-dir", default=str(REPO / "runs" / "zoo"), help="Zoo runs (default runs/zoo).")
    p.add_argument("--build-dir", default=str(REPO / "build" / "suite"),
                   help="fp32 exports and GEMM files (default build/suite).")
    p.add_argument("--train-steps", type=nonnegative_int, default=0,
                   help="Only when a zoo model is missing: cap its training at N steps (default 0: the recipe's "
                        "schedule, as score --zoo).")
    add_common_args(p, quick_help="Smoke check: 1 round, 3 timed runs, 1 warm-up, 2 NumPy matmuls (overrides those "
                                  "flags).")
    args = p.parse_args(argv)
    args.threads = sorted(set(args.threads))
    if args.quick:
        args.rounds, args.runs, args.warmup, args.numpy_repeats = 1, 3, 1, 2
    return args


# --- Files ---------------------------------------------------------------------------------------------------------

def zoo_file(name: str, precision: str, args) -> Path:
    """The zoo's export of ``name`` at ``precision`` (fp16/int8), trained and exported first when missing."""
    from tflite_isp.score import zoo

    root = Path(args.zoo_dir)
    run_dir = root / name
    path = run_dir / "export" / precision / "model.tflite"
    if not (zoo.trained(run_dir) and zoo.exported(run_dir) and path.is_file()):
        log(f"{name}: zoo run or export missing in {run_dir}; zoo.prepare trains/exports it "
            f"({'recipe schedule' if not args.train_steps else f'{args.train_steps} steps'})")
        zoo.prepare(name, root, data="embedded:isp", steps=args.train_steps, seed=0, log=log)
    if not path.is_file():
        raise UserError(f"{path}: zoo.prepare did not produce it (see its log above)")
    return path


def fp32_file(name: str, args) -> Path:
    """fp32 export of the zoo run's model.keras into build/suite/<name>/fp32 (reused while newer than the model)."""
    from tflite_isp.export import exporter as export

    run_dir = Path(args.zoo_dir) / name
    zoo_file(name, "int8", args)  # the run must exist (trained if not)
    out = Path(args.build_dir) / name
    path = out / "fp32" / "model.tflite"
    if path.is_file() and path.stat().st_mtime >= (run_dir / "model.keras").stat().st_mtime:
        return path
    log(f"{name}: exporting fp32 from {run_dir / 'model.keras'} into {out / 'fp32'}")
    t0 = time.perf_counter()
    export.run(export.ExportConfig(source=str(run_dir), precisions=("fp32",), out=str(out), fidelity_images=0,
                                   model_none=False, log=False))
    log(f"{name}: fp32 exported in {time.perf_counter() - t0:.0f} s")
    return path


def gemm_file(precision: str, args) -> Path:
    """A single-op FULLY_CONNECTED GEMM file (M x K activations @ constant K x N weights), built with TensorFlow."""
    m, k, n = GEMM
    path = Path(args.build_dir) / "gemm" / f"fc_{m}x{k}x{n}_{precision}.tflite"
    if path.is_file():
        return path
    import numpy as np

    from tflite_isp.core.tf import tf

    log(f"building {path.name} with TensorFlow")
    rng = np.random.default_rng(0)
    weights = tf.constant((rng.standard_normal((k, n)) / math.sqrt(k)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([m, k], tf.float32)])
    def gemm(x):
        return tf.matmul(x, weights)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([gemm.get_concrete_function()], gemm)
    if precision == "int8":
        def representative():
            for _ in range(2):
                yield [rng.uniform(-1.0, 1.0, (m, k)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    data = converter.convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, data)
    return path


def parameters(model) -> int:
    """Elements of the constant weight tensors (float/int8, any op) and int32 biases of conv/FC ops.

    Constant int32 tensors elsewhere are shapes and paddings, not parameters. In an fp16 file the float16
    weights feed DEQUANTIZE ops and are counted there; each tensor is counted once.
    """
    import numpy as np

    seen = {}
    for op in model.ops:
        for i, t in enumerate(op.inputs):
            if t is None or not t.is_constant or t.index in seen:
                continue
            if t.dtype in WEIGHT_DTYPES or (t.dtype == "int32" and BIAS_INPUT.get(op.name) == i):
                seen[t.index] = int(np.prod(t.shape)) if t.shape else 1
    return sum(seen.values())


def describe(path: Path) -> dict:
    """Size, parameters, MACs per Full HD frame, ops and IO of one file."""
    from tflite_isp.run import flatbuffer, records

    model = flatbuffer.read(path)
    signature = tuple(model.inputs[0].shape_signature)
    shape, calls = records.full_hd_plan(signature) if len(signature) == 4 else (tuple(model.inputs[0].shape), 1)
    macs = flatbuffer.count_macs(model)
    if macs is None:  # a dynamic file: count at nothing static; not the zoo's case
        macs = 0
    return {"file": str(path), "size_bytes": path.stat().st_size, "parameters": parameters(model),
            "macs": macs * calls, "calls_per_frame": calls, "shape": list(shape),
            "dynamic": model.has_dynamic_shape, "input_dtype": model.inputs[0].dtype,
            "ops": model.op_counts()}


# --- Measurement ---------------------------------------------------------------------------------------------------

def invoke_cores(r: dict, invoke_s: float) -> float:
    """Cores the process used while invoking: its CPU time less a single-threaded start-up, over the invoke time."""
    cpu = r["process_cores"] * r["process_wall_s"]
    startup = max(r["process_wall_s"] - invoke_s, 0.0)
    return round((cpu - startup) / max(invoke_s, 1e-6), 2)


def litert(info: dict, threads: int, runs: int, warmup: int) -> dict:
    """timing.measure_subprocess of one file, plus the process's wall time and the cores it used on average."""
    from tflite_isp.run import timing

    cpu0, t0 = children_cpu_seconds(), time.perf_counter()
    shape = info["shape"] if info["dynamic"] else None
    result = timing.measure_subprocess(info["file"], threads=threads, runs=runs, warmup=warmup, shape=shape,
                                       timeout=1800)
    wall = time.perf_counter() - t0
    result = {**result, "process_wall_s": round(wall, 2),
              "process_cores": round((children_cpu_seconds() - cpu0) / wall, 2)}
    invoking = (result["mean_ms"] * runs + (result.get("warmup_first_ms") or 0)
                + result["median_ms"] * max(warmup - 1, 0)) / 1e3
    result["invoke_cores"] = invoke_cores(result, invoking)
    return result


NUMPY_CHILD = r"""
import json, sys, time
import numpy as np
m, k, n, repeats = (int(v) for v in sys.argv[1:5])
rng = np.random.default_rng(0)
a = rng.random((m, k), dtype=np.float32)
b = rng.random((k, n), dtype=np.float32)
c = a @ b  # warm-up: thread pool, page faults
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    times.append(time.perf_counter() - t0)
print(json.dumps({"times_s": times}))
"""


def numpy_matmul(threads: int, repeats: int) -> dict:
    """float32 ``a @ b`` of the GEMM's size in a fresh process whose BLAS uses ``threads`` threads."""
    env = {**os.environ, **{v: str(threads) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    cpu0, t0 = children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", NUMPY_CHILD, *map(str, GEMM), str(repeats)], env=env,
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"numpy matmul failed: {proc.stderr.strip()[-300:]}")
    times = json.loads(proc.stdout.strip().splitlines()[-1])["times_s"]
    result = {"threads": threads, "median_ms": round(1e3 * statistics.median(times), 3),
              "min_ms": round(1e3 * min(times), 3), "times_ms": [round(1e3 * t, 3) for t in times],
              "process_wall_s": round(wall, 2), "process_cores": round((children_cpu_seconds() - cpu0) / wall, 2)}
    result["invoke_cores"] = invoke_cores(result, sum(times) * (1 + 1 / len(times)))  # + the warm-up product
    return result


def runs_for(probe_ms: float, args) -> int:
    if args.runs:
        return args.runs
    return int(min(MAX_RUNS, max(MIN_RUNS, math.ceil(1e3 * args.seconds / max(probe_ms, 1e-3)))))


# --- Summary -------------------------------------------------------------------------------------------------------

def summarise(report: dict) -> None:
    """Per file and thread count: medians over rounds, GMAC/s and fraction of the matching GEMM peak."""
    peaks = {}
    for key, entry in report["files"].items():
        for t, rounds in entry["rounds"].items():
            ok = [r for r in rounds if "median_ms" in r]
            if not ok:
                entry["summary"][t] = {"error": rounds[-1].get("error") if rounds else "not measured"}
                continue
            med = statistics.median(r["median_ms"] for r in ok)
            s = {"rounds": len(ok), "median_ms": round(med, 3),
                 "p95_ms": round(statistics.median(r["p95_ms"] for r in ok), 3),
                 "min_ms": round(min(r["min_ms"] for r in ok), 3),
                 "round_medians_ms": [r["median_ms"] for r in ok],
                 "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
                 "rss_before_mb": statistics.median(r["rss_before_mb"] for r in ok),
                 "invoke_cores_min": min(r["invoke_cores"] for r in ok),
                 "retried": sum(len(r.get("discarded_attempts", [])) for r in ok),
                 "gmacs": round(entry["macs"] / (med / 1e3) / 1e9, 2) if entry["macs"] else None}
            entry["summary"][t] = s
            if entry["kind"] == "gemm":
                peaks[(entry["precision"], t)] = s["gmacs"]
    report["peak_gmacs"] = {f"{p} {t}t": v for (p, t), v in sorted(peaks.items())}
    for entry in report["files"].values():
        if entry["kind"] != "model":
            continue
        for t, s in entry["summary"].items():
            peak = peaks.get((PEAK_FAMILY[entry["precision"]], t))
            if "gmacs" in s and s["gmacs"] and peak:
                s["fraction_of_peak"] = round(s["gmacs"] / peak, 4)
    for t, rounds in report["numpy"].items():
        ok = [r for r in rounds if "median_ms" in r]
        if ok:
            med = statistics.median(r["median_ms"] for r in ok)
            report["numpy_summary"][t] = {"median_ms": round(med, 3),
                                          "gmacs": round(math.prod(GEMM) / (med / 1e3) / 1e9, 2),
                                          "invoke_cores_min": min(r["invoke_cores"] for r in ok)}
    ratios = {}
    for model in report["settings"]["models"]:
        a, b = report["files"].get(f"{model} fp16"), report["files"].get(f"{model} fp32")
        if a and b:
            for t in a["summary"]:
                if "median_ms" in a["summary"][t] and "median_ms" in b["summary"].get(t, {}):
                    ratios[f"{model} {t}t"] = round(a["summary"][t]["median_ms"] / b["summary"][t]["median_ms"], 3)
    report["fp16_over_fp32"] = ratios


def markdown(report: dict) -> str:
    s, m = report["settings"], report["machine"]
    threads = [str(t) for t in s["threads"]]
    head = ["model", "precision", "size", "params", "GMAC/frame"]
    for t in threads:
        head += [f"median ms {t}t", f"p95 ms {t}t"]
    for t in threads:
        head += [f"GMAC/s {t}t", f"% peak {t}t"]
    head += ["peak RSS MiB"]
    rows = []
    for key, e in report["files"].items():
        if e["kind"] != "model":
            continue
        row = [e["model"], e["precision"], fmt_bytes(e["size_bytes"], 1), fmt_params(e["parameters"]),
               f"{e['macs'] / 1e9:.1f}"]
        for t in threads:
            x = e["summary"].get(t, {})
            row += [fmt_ms(x.get("median_ms")), fmt_ms(x.get("p95_ms"))]
        for t in threads:
            x = e["summary"].get(t, {})
            row += [f"{x['gmacs']:.1f}" if x.get("gmacs") else "–", fmt_pct(x.get("fraction_of_peak"))]
        rss = [x["peak_rss_mb"] for x in e["summary"].values() if "peak_rss_mb" in x]
        row.append(f"{max(rss):.0f}" if rss else "–")
        rows.append(row)
    peaks = []
    for key, e in report["files"].items():
        if e["kind"] != "gemm":
            continue
        for t in threads:
            x = e["summary"].get(t, {})
            if "median_ms" in x:
                peaks.append([f"LiteRT/XNNPACK FULLY_CONNECTED {e['precision']} ({fmt_bytes(e['size_bytes'], 1)})", t,
                              fmt_ms(x["median_ms"]), f"{x['gmacs']:.1f}", f"{x['gmacs'] / int(t):.1f}",
                              f"{x['peak_rss_mb']:.0f}"])
    for t in threads:
        x = report["numpy_summary"].get(t)
        if x:
            peaks.append(["NumPy float32 matmul (OpenBLAS; cross-check)", t, fmt_ms(x["median_ms"]),
                          f"{x['gmacs']:.1f}", f"{x['gmacs'] / int(t):.1f}", "–"])
    lines = [*header(report), "",
             "# Suite: zoo models at Full HD (packed 1x544x960x4 -> 1088x1920 RGB), LiteRT + XNNPACK", "",
             *md_table(head, rows, "ll" + "r" * (len(head) - 2)),
             "", "## This CPU's attainable peak (same run, interleaved with the models)", "",
             *md_table(["GEMM 1024x4096 @ 4096x4096 (17.2 GMAC)", "threads", "median ms", "GMAC/s",
                        "GMAC/s per thread", "peak RSS MiB"], peaks, "lrrrrr")]
    lines += ["", "## How to read it", ""]
    ratios = report.get("fp16_over_fp32") or {}
    notes = [
        f"Every figure is from fresh processes (`tflite_isp.timing.measure_subprocess`), {s['rounds']} round(s) with "
        f"the order rotated each round; per process {s['warmup']} warm-up + "
        + (f"{s['runs']} timed invokes" if s["runs"] else
           f"{MIN_RUNS}–{MAX_RUNS} timed invokes (about {s['seconds']:g} s at {max(s['threads'])} threads, from a "
           "one-run probe; per file in the JSON)")
        + ". *median* = median over rounds of each process's median; *p95* = median over rounds of each "
          "process's p95 (of its timed invokes). Only `invoke()` is timed (random input, set once).",
        "*GMAC/frame* counts the convolutions' multiply-accumulates at Full HD (`flatbuffer.count_macs`); "
        "*params* = elements of the constant weight and bias tensors in the file (the Keras count, plus any "
        "constant operands of ADD/MUL). *GMAC/s* = GMAC/frame / median; *% peak* divides it by the GEMM peak "
        "of the same thread count: fp32 and fp16 files by the fp32 GEMM, int8 files by the int8 GEMM.",
        "*peak RSS* = the highest VmHWM of the measurement processes (Python + NumPy + LiteRT ≈ "
        f"{_rss_base(report)} MiB before the model is loaded, plus weights, XNNPACK's packed weights, the "
        "activation arena and the random input).",
    ]
    if ratios:
        notes.append("fp16 files store float16 weights; on this CPU XNNPACK dequantises them to float32 when it "
                     "loads the file and computes in fp32, so they are compared with the fp32 peak. Measured "
                     "fp16/fp32 latency: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + ".")
    notes.append(f"Noise control: before each measurement the script waits (at most {s['max_wait']:g} s) until "
                 f"other jobs use under {s['quiet_cores']:g} cores (/proc/stat), and a measurement whose process got "
                 f"under {s['min_share']:.0%} of its threads' cores while invoking (CPU time less a single-threaded "
                 f"start-up, over the invoke time) is repeated up to {s['retries']} times; the best-served attempt "
                 "is kept, the others are in the JSON (`discarded_attempts`). The ratios between rows of one run are "
                 "the robust figures; absolute ms hold for this machine at this load only (see below).")
    lines += [f"- {n}" for n in notes]
    retried = sum(x.get("retried", 0) for e in report["files"].values() for x in e["summary"].values())
    low = [f"{k} {t}t ({x['invoke_cores_min']:.2f})" for k, e in report["files"].items()
           for t, x in e["summary"].items()
           if "invoke_cores_min" in x and x["invoke_cores_min"] < s["min_share"] * int(t)]
    low += [f"numpy {t}t ({x['invoke_cores_min']:.2f})" for t, x in report["numpy_summary"].items()
            if x["invoke_cores_min"] < s["min_share"] * int(t)]
    lines.append(f"- {retried} measurement(s) were repeated because other jobs took cores." if retried else
                 "- No measurement had to be repeated: every kept process got at least "
                 f"{s['min_share']:.0%} of its threads' cores while invoking.")
    spreads = [(max(x["round_medians_ms"]) / min(x["round_medians_ms"]) - 1, f"{k} {t}t")
               for k, e in report["files"].items() for t, x in e["summary"].items()
               if len(x.get("round_medians_ms", [])) > 1]
    if spreads:
        worst = max(spreads)
        lines.append(f"- Spread of the round medians (slowest / fastest − 1): median "
                     f"{statistics.median(v for v, _ in spreads):.0%}, largest {worst[0]:.0%} ({worst[1]}); "
                     f"rows that differ by less than about {statistics.median(v for v, _ in spreads):.0%} are "
                     "within this run's noise.")
    if low:
        lines.append("- **Contended even after retries** (least cores while invoking, over rounds): "
                     + ", ".join(low) + ". Treat those rows' absolute times as upper bounds.")
    lines += ["", "## Machine and settings", "",
              f"- {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores"
              + (f", {m['memory_gib']} GiB" if m.get("memory_gib") else "")
              + f"; ai-edge-litert {m['ai_edge_litert']}, NumPy {m['numpy']}, Python {m['python']}, "
                f"TensorFlow {m['tensorflow']} (building the GEMM and fp32 files only); {m['platform']}.",
              f"- Load average (1, 5, 15 min): {report['load_average_start']} at start, "
              + ", ".join(f"{la} after round {i + 1}" for i, la in enumerate(report["load_average_rounds"]))
              + (f", {report['load_average_end']} at end" if report.get("load_average_end") else "") + ".",
              f"- Settings: models {', '.join(s['models'])}; precisions {', '.join(s['precisions'])}; threads "
              f"{', '.join(threads)}; rounds {s['rounds']}; warm-up {s['warmup']}; runs "
              f"{s['runs'] or 'auto'}; NumPy repeats {s['numpy_repeats']}" + ("; --quick" if s["quick"] else "") + "."]
    return "\n".join(lines) + "\n"


def _rss_base(report: dict) -> str:
    vals = [x["rss_before_mb"] for e in report["files"].values() for x in e["summary"].values()
            if "rss_before_mb" in x]
    return f"{statistics.median(vals):.0f}" if vals else "?"


# --- Main ----------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    out = Path(args.out)
    report = start_report(
        NAME, argv, threads=args.threads,
        settings={"models": args.models, "precisions": args.precisions, "threads": args.threads,
                  "rounds": args.rounds, "runs": args.runs, "seconds": args.seconds, "warmup": args.warmup,
                  "numpy_repeats": args.numpy_repeats, "quick": args.quick, "gemm_mkn": list(GEMM),
                  "quiet_cores": args.quiet_cores, "max_wait": args.max_wait, "retries": args.retries,
                  "min_share": args.min_share,
                  "full_hd_packed": [544, 960]},
        load_average_rounds=[], files={}, numpy={str(t): [] for t in args.threads}, numpy_summary={},
        peak_gmacs={})
    log(provenance_line(report))

    def save():
        summarise(report)
        return save_results(out, NAME, report, markdown)

    # Files: zoo exports, fp32 exports, GEMMs.
    for name in args.models:
        for precision in args.precisions:
            log(f"file: {name} {precision}")
            path = fp32_file(name, args) if precision == "fp32" else zoo_file(name, precision, args)
            report["files"][f"{name} {precision}"] = {"kind": "model", "model": name, "precision": precision,
                                                      **describe(path)}
    for precision in sorted({PEAK_FAMILY[p] for p in args.precisions}):
        path = gemm_file(precision, args)
        report["files"][f"gemm {precision}"] = {"kind": "gemm", "model": "gemm", "precision": precision,
                                                **describe(path)}
    for e in report["files"].values():
        e.update({"rounds": {str(t): [] for t in args.threads}, "summary": {}})
    report["files_s"] = round(time.perf_counter() - t_start, 1)

    # Probes: one timed run at the highest thread count picks each file's run count.
    top = max(args.threads)
    for key, e in report["files"].items():
        if args.runs:
            e["runs"] = args.runs
            continue
        log(f"probe: {key} ({top} threads)")
        try:
            probe = litert(e, top, 1, 1)
            e["probe_ms"], e["runs"] = probe["median_ms"], runs_for(probe["median_ms"], args)
        except RuntimeError as err:
            log(f"probe: {key}: {err}")
            e["probe_error"], e["runs"] = str(err), MIN_RUNS
    save()

    jobs = [(key, t) for key in report["files"] for t in args.threads] + [("numpy", t) for t in args.threads]
    for r in range(args.rounds):
        shift = (r * len(jobs)) // args.rounds
        order = jobs[shift:] + jobs[:shift]
        for i, (key, t) in enumerate(order, start=1):
            prefix = f"round {r + 1}/{args.rounds} [{i}/{len(order)}] {key} {t}t"
            target = report["numpy"][str(t)] if key == "numpy" else report["files"][key]["rounds"][str(t)]
            attempts = []
            for attempt in range(args.retries + 1):
                quiet = wait_for_quiet(args.quiet_cores, args.max_wait)
                try:
                    if key == "numpy":
                        res = numpy_matmul(t, args.numpy_repeats)
                    else:
                        e = report["files"][key]
                        res = litert(e, t, e["runs"], args.warmup)
                except RuntimeError as err:
                    log(f"{prefix}: FAILED: {err}")
                    res = {"error": str(err)}
                    break
                res = {**res, **quiet, "attempt": attempt + 1}
                attempts.append(res)
                share = res["invoke_cores"] / t
                log(f"{prefix}: median {res['median_ms']:.1f} ms"
                    + (f", p95 {res['p95_ms']:.1f} ms, peak RSS {res['peak_rss_mb']:.0f} MiB" if "p95_ms" in res
                       else "") + f", {res['invoke_cores']:.2f} cores invoking (others {quiet['others_busy_cores']} "
                    f"before, waited {quiet['waited_s']:.0f} s) ({time.perf_counter() - t_start:.0f} s)")
                if share >= args.min_share:
                    break
                if attempt < args.retries:
                    log(f"{prefix}: contended ({share:.0%} of {t} cores), measuring again")
            if attempts:
                res = max(attempts, key=lambda a: min(a["invoke_cores"] / t, 1.0) - 1e-3 * a["attempt"])
                res["discarded_attempts"] = [a for a in attempts if a is not res]
            target.append(res)
        report["load_average_rounds"].append(load_average())
        save()

    finish_report(report, t_start)
    paths = save()
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, paths))}")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
