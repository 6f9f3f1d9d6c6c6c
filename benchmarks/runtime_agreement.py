"""Does our local runtime figure (``tflite_isp.timing``) agree with LiteRT's own benchmark tool?

    python benchmarks/runtime_agreement.py [--model FILE ...] [--models-from DIR] [--make [--make-dir DIR]
        [--models smallnet,sid_unet,punet] [--precisions fp32,int8] [--size 544x960]]
        [--rounds 5] [--runs 20] [--warmup 3] [--threads 2] [--max-seconds 30] [--out benchmarks/results]

For each ``.tflite`` file (``--model``, repeatable; ``--models-from DIR`` takes every ``DIR/**/model.tflite``) it
runs, in ``--rounds`` interleaved rounds, both

- ours: ``tflite_isp.timing.measure_subprocess`` (a fresh process; ``Interpreter`` with XNNPACK; times
  ``interpreter.invoke()``), and
- theirs: ``python -m ai_edge_litert.tools.benchmark_litert_model`` (a fresh process; ``CompiledModel`` on the
  CPU accelerator, also XNNPACK; times ``run_by_name`` with TensorBuffers),

with the same threads, warm-ups and timed runs, the order of the two tools alternating from round to round. Per
file it reports both medians (median over rounds of each round's median), the ratio ours/theirs (median over rounds
of the paired ratio) and whether that ratio is within ``--tolerance`` (10 %) of 1.

``--make`` first builds the project's models (random weights, fixed packed input ``--size``) at ``--precisions``
with ``tflite_isp.convert.convert`` as ``benchmarks/export_latency.py`` does, into ``--make-dir`` (default
``build/runtime_agreement/MODEL_PRECISION/model.tflite``), skipping files that exist, and measures them.

Writes ``runtime_agreement.json`` (every round of both tools) and ``runtime_agreement.md`` to ``--out``, each
atomically, after every file.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import (
    add_common_args,
    children_cpu_seconds,
    comma_list,
    finish_report,
    fmt_ms,
    header,
    log,
    log_step,
    md_table,
    nonnegative_int,
    parser,
    positive_float,
    positive_int,
    provenance_line,
    save_results,
    size_hw,
    start_report,
)

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError, run_cli
from tflite_isp.run import timing

NAME = "runtime_agreement"
THEIRS = "ai_edge_litert.tools.benchmark_litert_model"
DEFAULT_MODELS, DEFAULT_PRECISIONS = "smallnet,sid_unet,punet", "fp32,int8"
MIN_RUNS = 5  # --max-seconds never cuts the timed runs below this


def parse_args(argv):
    p = parser(NAME, "Per .tflite file: our timing (tflite_isp.timing, Interpreter) vs LiteRT's "
                     "benchmark_litert_model (CompiledModel), interleaved in rounds; the median ratio ours/theirs.")
    p.add_argument("--model", action="append", default=[], metavar="FILE", help="A .tflite file; repeatable.")
    p.add_argument("--models-from", default=None, metavar="DIR", help="Measure every DIR/**/model.tflite.")
    p.add_argument("--make", action="store_true",
                   help="Build the project's models (random weights) at --size and --precisions into --make-dir "
                        "(existing files are kept) and measure them.")
    p.add_argument("--make-dir", default="build/runtime_agreement", help="Where --make writes (default: %(default)s).")
    p.add_argument("--models", type=comma_list(), default=DEFAULT_MODELS,
                   help="Recipes for --make (default: %(default)s).")
    p.add_argument("--precisions", type=comma_list(), default=DEFAULT_PRECISIONS,
                   help="Precisions for --make (default: %(default)s).")
    p.add_argument("--size", type=size_hw, default="544x960",
                   help="Packed input HxW for --make (default 544x960: Full HD).")
    p.add_argument("--rounds", type=positive_int, default=5, help="Rounds; each runs both tools once (default 5).")
    p.add_argument("--runs", type=positive_int, default=20, help="Timed runs per measurement (default 20).")
    p.add_argument("--warmup", type=nonnegative_int, default=3, help="Warm-up runs per measurement (default 3).")
    p.add_argument("--max-seconds", type=positive_float, default=30.0,
                   help=f"Cap on the timed part of one measurement: a slow file gets fewer runs (at least "
                        f"{MIN_RUNS}), from a one-run probe (default 30).")
    p.add_argument("--tolerance", type=positive_float, default=0.10,
                   help="Agreement threshold on |ratio - 1| (default 0.10).")
    add_common_args(p, threads=2, threads_help="CPU threads for both tools")
    args = p.parse_args(argv)
    args.height, args.width = args.size
    if not (args.model or args.models_from or args.make):
        p.error("nothing to measure: give --model FILE, --models-from DIR or --make")
    return args


# --- Files -----------------------------------------------------------------------------------------------------------

def make_models(args) -> list:
    """Build the recipes' networks at a fixed (1, H, W, 4) input and convert each precision; the file paths."""
    import numpy as np

    from tflite_isp.core.tf import keras
    from tflite_isp.export import convert
    from tflite_isp.nets import architectures, recipes

    table = convert.precisions()
    unknown = [p for p in args.precisions if p not in table]
    if unknown:
        raise UserError(f"unknown precision(s) {', '.join(unknown)}; known: {', '.join(table)}")
    h, w = args.height, args.width
    rng = np.random.default_rng(0)
    calibration = [rng.random((1, h, w, 4), dtype=np.float32) for _ in range(2)]  # latency ignores the values
    paths = []
    for name in args.models:
        recipe = recipes.load_recipe(name)
        todo = [p for p in args.precisions if not (Path(args.make_dir) / f"{name}_{p}" / "model.tflite").is_file()]
        paths += [Path(args.make_dir) / f"{name}_{p}" / "model.tflite" for p in args.precisions]
        if not todo:
            continue
        keras.utils.set_random_seed(0)
        model = architectures.build(recipe.model, height=h, width=w, batch=1, name=recipe.name)
        for p in todo:
            path = Path(args.make_dir) / f"{name}_{p}" / "model.tflite"
            log(f"[make] {name} {p}: converting at 1x{h}x{w}x4")
            t0 = time.perf_counter()
            precision = table[p]
            data = convert.convert(model, (1, h, w, 4), precision, io_type=None,
                                   representative=convert.representative_from(calibration)
                                   if precision.representative else None)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(path, data)
            log(f"[make] {name} {p}: {len(data) / 2**20:.2f} MiB in {time.perf_counter() - t0:.1f} s -> {path}")
    return paths


def model_files(args) -> list:
    """The files to measure, in order, without repeats."""
    paths = [Path(f) for f in args.model]
    if args.models_from:
        root = Path(args.models_from)
        if not root.is_dir():
            raise UserError(f"{root}: --models-from is not a folder")
        found = sorted(root.glob("**/model.tflite"))
        if not found:
            raise UserError(f"{root}: no **/model.tflite below it")
        paths += found
    if args.make:
        paths += make_models(args)
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: file not found")
    return list(dict.fromkeys(paths))


def label(path: Path) -> str:
    """``smallnet_fp32`` for ``.../smallnet_fp32/model.tflite``, else the file's stem."""
    return path.parent.name if path.name == "model.tflite" and path.parent.name else path.stem


# --- The two tools -------------------------------------------------------------------------------------------------

def run_ours(path: Path, args, runs: int, warmup: int) -> dict:
    """tflite_isp.timing in a fresh process; adds the wall time and the cores it used on average."""
    cpu0, t0 = children_cpu_seconds(), time.perf_counter()
    result = timing.measure_subprocess(path, threads=args.threads, runs=runs, warmup=warmup)
    wall = time.perf_counter() - t0
    return {**result, "process_wall_s": round(wall, 2),
            "process_cores": round((children_cpu_seconds() - cpu0) / wall, 2)}


# Runs their module unchanged and, at exit, prints the process's own peak RSS (VmHWM; its ru_maxrss would include
# this parent's resident set at fork, see tflite_isp.timing).
THEIRS_LAUNCHER = f"""
import atexit, runpy, sys
def _peak():
    try:
        kb = next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
        print("__peak_rss_kb__", kb, file=sys.stderr, flush=True)
    except (OSError, StopIteration):
        pass
atexit.register(_peak)
sys.argv = ["{THEIRS}"] + sys.argv[1:]
runpy.run_module("{THEIRS}", run_name="__main__", alter_sys=True)
"""


def run_theirs(path: Path, args, runs: int, warmup: int) -> dict:
    """benchmark_litert_model in a fresh process: its result JSON plus the process's peak RSS, wall time and cores."""
    with tempfile.TemporaryDirectory(prefix="litert-bench-") as tmp:
        json_path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-c", THEIRS_LAUNCHER, f"--model={path}", "--num_runs", str(runs),
               "--warmup_runs", str(warmup), "--num_threads", str(args.threads), "--result_json", str(json_path)]
        cpu0, t0 = children_cpu_seconds(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not json_path.is_file():
            tail = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()][-1:]
            raise RuntimeError(f"{path}: {THEIRS} exited with status {proc.returncode} ({' '.join(tail)})")
        result = json.loads(json_path.read_text())
    peak = [ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("__peak_rss_kb__ ")]
    return {**result, "peak_rss_mb": round(int(peak[-1]) / 2**10, 1) if peak else None,
            "process_wall_s": round(wall, 2), "process_cores": round((children_cpu_seconds() - cpu0) / wall, 2)}


def plan_runs(path: Path, args) -> tuple:
    """(runs, warm-ups, probe ms): --runs cut to about --max-seconds of timed work for a slow file."""
    probe = timing.measure_subprocess(path, threads=args.threads, runs=1, warmup=1)["median_ms"]
    runs = min(args.runs, max(MIN_RUNS, int(args.max_seconds * 1000 / max(probe, 1e-3))))
    return runs, args.warmup, probe


def measure_file(path: Path, args) -> dict:
    """Both tools on one file in interleaved rounds; medians, paired ratios and agreement."""
    name = label(path)
    runs, warmup, probe = plan_runs(path, args)
    cut = f" (cut from {args.runs} by --max-seconds {args.max_seconds:g})" if runs < args.runs else ""
    log(f"[{name}] probe {probe:.1f} ms per run -> {warmup} warm-up + {runs} timed runs per measurement{cut}")
    rounds = []
    for r in range(args.rounds):
        order = ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")
        entry = {"round": r + 1, "order": list(order)}
        for tool in order:
            entry[tool] = (run_ours if tool == "ours" else run_theirs)(path, args, runs, warmup)
            median = entry[tool]["median_ms"] if tool == "ours" else entry[tool]["latency"]["median_ms"]
            log(f"[{name}] round {r + 1}/{args.rounds} {tool:6s}: median {median:9.2f} ms "
                f"({entry[tool]['process_cores']:.2f} cores, {entry[tool]['process_wall_s']:.1f} s)")
        entry["ratio"] = entry["ours"]["median_ms"] / entry["theirs"]["latency"]["median_ms"]
        rounds.append(entry)
    return summarise(path, rounds, runs, warmup, probe, args)


def summarise(path: Path, rounds: list, runs: int, warmup: int, probe: float, args) -> dict:
    """One file's figures from its rounds."""
    def med(values):
        return round(statistics.median(values), 3)

    ours = [r["ours"] for r in rounds]
    theirs = [r["theirs"] for r in rounds]
    ratios = [r["ratio"] for r in rounds]
    ratio = statistics.median(ratios)
    return {
        "label": label(path), "file": str(path), "size_bytes": path.stat().st_size,
        "input_shape": ours[0]["input_shape"], "input_dtype": ours[0]["input_dtype"],
        "runs": runs, "warmup": warmup, "runs_cut": runs < args.runs, "probe_ms": probe,
        "ours_median_ms": med([o["median_ms"] for o in ours]),
        "theirs_median_ms": med([t["latency"]["median_ms"] for t in theirs]),
        "ratio": round(ratio, 4), "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
        "within_tolerance": abs(ratio - 1) <= args.tolerance,
        "ours_p95_ms": med([o["p95_ms"] for o in ours]),
        "theirs_p95_ms": med([t["latency"]["p95_ms"] for t in theirs]),
        "ours_init_ms": med([o["init_ms"] for o in ours]),
        "theirs_init_ms": med([t["latency"]["init_ms"] for t in theirs]),
        "ours_min_ms": round(min(o["min_ms"] for o in ours), 3),
        "theirs_min_ms": round(min(t["latency"]["min_ms"] for t in theirs), 3),
        "ratio_of_minima": round(min(o["min_ms"] for o in ours) / min(t["latency"]["min_ms"] for t in theirs), 4),
        "ours_cold_ms": med([o["init_ms"] + (o["warmup_first_ms"] or 0) for o in ours]),
        "theirs_cold_ms": med([t["latency"]["init_ms"] + t["latency"]["warmup_first_ms"] for t in theirs]),
        "ours_peak_rss_mb": med([o["peak_rss_mb"] for o in ours]),
        "theirs_peak_rss_mb": med([t["peak_rss_mb"] for t in theirs]) if all(t["peak_rss_mb"] for t in theirs)
        else None,
        "ours_rss_delta_mb": med([o["rss_delta_mb"] for o in ours]),
        "cores_min": min(min(o["process_cores"] for o in ours), min(t["process_cores"] for t in theirs)),
        "fully_accelerated": all(t.get("fully_accelerated") for t in theirs),
        "rounds": rounds,
    }


# --- Report --------------------------------------------------------------------------------------------------------

def table(report: dict) -> list:
    """The results table."""
    rows = []
    for r in report["results"]:
        if "error" in r:
            rows.append([r["label"], "—", "—", "—", "—", r["error"], "—", "—", "—", "—", "—"])
            continue
        shape = "x".join(map(str, r["input_shape"][1:]))
        theirs_rss = "—" if r["theirs_peak_rss_mb"] is None else f"{r['theirs_peak_rss_mb']:.0f}"
        rows.append([r["label"], f"{shape} {r['input_dtype']}",
                     f"{len(r['rounds'])}×{r['runs']}" + ("*" if r["runs_cut"] else ""),
                     fmt_ms(r["ours_median_ms"]), fmt_ms(r["theirs_median_ms"]),
                     f"{r['ratio']:.3f} ({r['ratio_min']:.3f} .. {r['ratio_max']:.3f})",
                     "✓" if r["within_tolerance"] else "✗", f"{r['ratio_of_minima']:.3f}",
                     f"{fmt_ms(r['ours_p95_ms'])} / {fmt_ms(r['theirs_p95_ms'])}",
                     f"{fmt_ms(r['ours_cold_ms'])} / {fmt_ms(r['theirs_cold_ms'])}",
                     f"{r['ours_peak_rss_mb']:.0f} / {theirs_rss}"])
    tol = round(report["settings"]["tolerance"] * 100)
    return md_table(["file", "input", "runs", "ours median ms", "theirs median ms", "ours/theirs (rounds)",
                     f"within {tol} %", "ours/theirs of minima", "p95 ms ours / theirs",
                     "cold start ms ours / theirs", "peak RSS MiB ours / theirs"], rows, "llrrrrcrrrr")


def markdown(report: dict) -> str:
    """The results table, the machine and settings, and what each tool times."""
    m, s = report["machine"], report["settings"]
    lines = ["# Runtime agreement: tflite_isp.timing vs LiteRT's benchmark_litert_model", "", *header(report), "",
             *table(report)]
    lines += [
        "",
        "Each tool ran in a fresh process per measurement; *runs* = rounds × timed runs (after "
        f"{s['warmup']} warm-up runs), the same for both tools"
        + (f"; * = cut from {s['runs']} by --max-seconds {s['max_seconds']:g}" if any(
            r.get("runs_cut") for r in report["results"]) else "")
        + ". Medians are the median over rounds of each round's median; the ratio is the median over rounds of "
          "the paired ratio ours/theirs (range over rounds in brackets); the two tools alternate which runs "
          "first in each round. *Of minima*: the fastest run of each tool over all rounds, the figure least moved "
          "by other jobs. Cold start = init + the first warm-up run. p95, cold start and peak RSS are medians "
          "over rounds.",
        "",
        "## Machine and settings",
        "",
        f"- Machine: {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores"
        + (f", {m['memory_gib']} GiB" if m.get("memory_gib") else "")
        + f"; ai-edge-litert {m['ai_edge_litert']}, NumPy {m['numpy']}, Python {m['python']}"
        + (f", TensorFlow {m['tensorflow']} (for --make only)" if m.get("tensorflow") else "")
        + f"; load average {report['load_average_start']} at start, {report['load_average_end']} at end.",
        f"- Settings: {s['rounds']} rounds, {s['threads']} threads, {s['warmup']} warm-up + up to {s['runs']} timed "
        f"runs, at most about {s['max_seconds']:g} s of timed runs per measurement (at least {MIN_RUNS} runs).",
    ]
    low = [r for r in report["results"] if "cores_min" in r and r["cores_min"] < 0.75 * s["threads"]]
    if low:
        lines.append("- **Contended:** a measurement process used on average as few as "
                     + ", ".join(f"{r['cores_min']:.2f} ({r['label']})" for r in low)
                     + f" cores for {s['threads']} threads (start-up included); other jobs took the rest.")
    lines += ["", "## What each tool times", ""] + [f"- {n}" for n in NOTES]
    return "\n".join(lines) + "\n"


NOTES = [
    "Ours (`tflite_isp.timing`): `ai_edge_litert.interpreter.Interpreter(model_path, num_threads)` with the default "
    "XNNPACK delegate; `time.perf_counter_ns` around `interpreter.invoke()` alone; the input is set once "
    "(random, [0, 1] for float, the full range for int8). Init = construction + `allocate_tensors()`.",
    "Theirs (`python -m ai_edge_litert.tools.benchmark_litert_model`): the newer `CompiledModel` API on the CPU "
    "accelerator (also XNNPACK); `time.perf_counter` around `run_by_name(signature, input_buffers, "
    "output_buffers)`, which also looks the buffers up by name on every call; random input in [-1, 1] for float, "
    "[-128, 127] for int8. Init = `CompiledModel.from_file` (the environment, created before it, is not "
    "included). It rounds its figures to 0.01 ms.",
    "Init and cold start (init + first run) measure different things in the two tools: the Interpreter applies "
    "the XNNPACK delegate (packs the weights) inside `allocate_tensors()`, and its first invoke is slower than "
    "the later ones; `CompiledModel.from_file` returns in tens of ms and its first run is about as fast as the "
    "later ones. They are reported, not checked; the steady-state median is the figure checked.",
    "Peak RSS is each process's own high-water mark (VmHWM of /proc/self/status: ours from inside `timing`, "
    "theirs printed at exit by a three-line launcher around their unchanged module). Not `ru_maxrss`: on Linux "
    "a child's `ru_maxrss` includes its parent's resident set at fork (this script holds TensorFlow after "
    "`--make`). Both include Python, NumPy and the LiteRT library; theirs also loads ml_dtypes and the "
    "accelerator registry.",
]


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)
    report = start_report(
        NAME, argv, threads=args.threads,
        settings={"rounds": args.rounds, "runs": args.runs, "warmup": args.warmup, "threads": args.threads,
                  "max_seconds": args.max_seconds, "min_runs": MIN_RUNS, "tolerance": args.tolerance,
                  "ours": "tflite_isp.timing.measure_subprocess", "theirs": f"python -m {THEIRS}"},
        notes=NOTES, results=[])
    log(provenance_line(report))
    t_files = time.perf_counter()
    paths = model_files(args)
    report["files_s"] = round(time.perf_counter() - t_files, 1)  # --make's conversions, when asked

    def save():
        return save_results(args.out, NAME, report, markdown)

    for i, path in enumerate(paths, start=1):
        log_step(i, len(paths), f"file {path}", t_start)
        try:
            report["results"].append(measure_file(path, args))
        except RuntimeError as err:
            log(f"[{label(path)}] failed: {err}")
            report["results"].append({"label": label(path), "file": str(path), "error": str(err)})
        save()
    finish_report(report, t_start)
    written = save()
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, written))}")
    print("\n".join(table(report)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
