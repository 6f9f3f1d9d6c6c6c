"""Exported .tflite files per precision: file size, conversion time and LiteRT/XNNPACK latency at Full HD.

    python benchmarks/export_latency.py [--models smallnet,sid_unet,punet]
        [--precisions fp32,fp16,dynamic,int8,int16x8] [--rounds 5] [--runs N] [--warmup N] [--threads 2]
        [--size 544x960] [--run-dir MODEL=RUN_DIR ...] [--calibration 4] [--out benchmarks/results]

For each model (the recipe's network with random weights, or a trained run's ``model.keras``
with ``--run-dir``) every precision is converted once by ``tflite_isp.convert.convert`` at a
fixed input of (1, H, W, 4) (the packed Full HD frame 1x544x960x4 -> 1x1088x1920x3 by
default), timed, and loaded into ``tflite_isp.runtime.Runner`` (ai-edge-litert, XNNPACK,
``--threads`` threads). All the precisions of one model then run in ``--rounds`` interleaved
rounds (the order rotates each round, so slow drift of a shared machine falls on every
precision alike). Each measurement does untimed warm-up invokes, then ``--runs`` timed
``interpreter.invoke()`` calls (the input was set once by ``runner(x)``, so input
quantisation is not timed). Per precision: median and p95 over all timed runs, and

    speedup vs fp32 = median over rounds of (t_fp32 / t_precision)

with each round's times the median of that round's runs, so every ratio compares two
measurements taken minutes apart at most.

Writes ``export_latency.json`` (everything, per round and per run) and ``export_latency.md``
(tables) to ``--out``, each atomically, after every model.
"""
from __future__ import annotations

import gc
import math
import statistics
import sys
import time

from bench_common import (
    add_common_args,
    comma_list,
    finish_report,
    fmt_bytes,
    fmt_ms,
    header,
    load_average,
    log,
    log_step,
    md_table,
    nonnegative_int,
    parser,
    positive_float,
    positive_int,
    process_cpu_seconds,
    provenance_line,
    save_results,
    size_hw,
    start_report,
    tensorflow_info,
)

from tflite_isp.core.errors import UserError, run_cli

NAME = "export_latency"
DEFAULT_MODELS = "smallnet,sid_unet,punet"
DEFAULT_PRECISIONS = "fp32,fp16,dynamic,int8,int16x8"
# Stated in the issue for this kind of machine (2 cores, XNNPACK, Full HD): INT8 vs FP32 speedup.
REFERENCE_INT8_SPEEDUP = {"sid_unet": 3.8, "smallnet": 1.8}
# Precisions that need more than a converter run.
NEEDS_TRAINING = {"int8_qat": "needs quantization-aware fine-tuning (tfmot) first; not measured here"}
# Default run counts: at least MIN_RUNS timed invokes per round, unless one inference takes longer than SLOW_S.
MIN_RUNS, SLOW_S, MAX_RUNS = 3, 10.0, 50


def parse_args(argv):
    p = parser(NAME, "Per model and precision: .tflite size, conversion time and LiteRT/XNNPACK latency "
                     "(median, p95) at Full HD, the precisions of one model interleaved in rounds; "
                     "speedups vs fp32 from the same rounds.")
    p.add_argument("--models", type=comma_list(), default=DEFAULT_MODELS,
                   help=f"Comma-separated recipes (default: {DEFAULT_MODELS}).")
    p.add_argument("--precisions", type=comma_list(), default=DEFAULT_PRECISIONS,
                   help=f"Comma-separated precisions of converters/precisions.toml (default: {DEFAULT_PRECISIONS}; "
                        "int8_qat is skipped: it needs training).")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="Rounds; each round measures every precision once (default 5).")
    p.add_argument("--runs", type=positive_int, default=None,
                   help=f"Timed invokes per measurement (default: about --measure-seconds worth, "
                        f"{MIN_RUNS}..{MAX_RUNS} "
                        f"(1 when one inference takes over {SLOW_S:g} s), chosen per model and precision from a "
                        "probe).")
    p.add_argument("--warmup", type=nonnegative_int, default=None,
                   help="Untimed invokes before each measurement (default: about 1 s worth, 0..5).")
    p.add_argument("--measure-seconds", type=positive_float, default=2.0,
                   help="Target length of one timed measurement when --runs is not given (default: 2).")
    p.add_argument("--size", type=size_hw, default="544x960",
                   help="Packed input HxW (default 544x960: a 1088x1920 Full HD frame).")
    p.add_argument("--run-dir", action="append", default=[], metavar="MODEL=RUN_DIR",
                   help="Use a trained run's model.keras (and recipe.json) for MODEL instead of random weights; "
                        "repeatable.")
    p.add_argument("--calibration", type=positive_int, default=4,
                   help="Representative inputs for int8/int16x8 calibration (default 4; latency does not "
                        "depend on them).")
    add_common_args(p, threads=2, threads_help="LiteRT interpreter threads", seed=0)
    args = p.parse_args(argv)
    args.height, args.width = args.size
    run_dirs = {}
    for item in args.run_dir:
        model, sep, path = item.partition("=")
        if not sep or not model or not path:
            p.error(f"--run-dir must be MODEL=RUN_DIR, not {item!r}")
        if model not in args.models:
            p.error(f"--run-dir {item}: {model} is not in --models ({', '.join(args.models)})")
        run_dirs[model] = path
    args.run_dirs = run_dirs
    return args


# --- Measurement -----------------------------------------------------------------------------

def smooth_inputs(n: int, height: int, width: int, seed: int) -> list:
    """``n`` float32 (1, H, W, 4) arrays in [0, 1]: bilinear-upsampled coarse noise at a random
    exposure plus a little fine noise (plausible packed RAW; latency does not depend on it)."""
    import numpy as np

    from tflite_isp.core.tf import tf

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.random((1, max(2, height // 16), max(2, width // 16), 4), dtype=np.float32)
        x = tf.image.resize(coarse, (height, width), method="bilinear").numpy()
        x = x * rng.uniform(0.2, 1.0) + rng.normal(0.0, 0.01, x.shape).astype(np.float32)
        out.append(np.clip(x, 0.0, 1.0).astype(np.float32))
    return out


def load_model(name: str, args):
    """(recipe, Keras model, source description) with a dynamic or (H, W) input."""
    from tflite_isp.core.tf import keras
    from tflite_isp.export import exporter as export
    from tflite_isp.nets import architectures, recipes

    run_dir = args.run_dirs.get(name)
    if run_dir is None:
        recipe = recipes.load_recipe(name)
        keras.utils.set_random_seed(args.seed)
        return recipe, architectures.build(recipe.model, name=recipe.name), "random weights (recipe)"
    recipe, model, _ = export.load_source(run_dir)
    fixed = tuple(model.input_shape[1:3])
    if any(d is not None for d in fixed) and fixed != (args.height, args.width):
        # Saved at a fixed training size: the same weights in a dynamic-size network.
        model = architectures.copy_weights(model, architectures.build(recipe.model, name=recipe.name))
    return recipe, model, f"trained: {run_dir}/model.keras"


def _percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def measure_model(name: str, args, table: dict) -> dict:
    import numpy as np

    from tflite_isp.export import convert
    from tflite_isp.nets import architectures
    from tflite_isp.nets.stats import count_macs, count_params
    from tflite_isp.run import flatbuffer
    from tflite_isp.run import litert as runtime

    h, w = args.height, args.width
    load_start = load_average()
    recipe, model, source = load_model(name, args)
    multiple = architectures.input_multiple(recipe.model)
    if h % multiple or w % multiple:
        raise UserError(f"{name}: --size {h}x{w} is not a multiple of {multiple}, which {name} needs")
    params = count_params(model)
    macs = count_macs(architectures.build(recipe.model, height=h, width=w, batch=1))
    log(f"[{name}] {params:,} parameters, {macs / 1e9:.2f} GMAC per {h}x{w}x4 frame ({source})")

    inputs = smooth_inputs(args.calibration, h, w, args.seed)
    x = inputs[0]
    representative = convert.representative_from(inputs)

    entries = []  # one dict per precision, in --precisions order
    runners = {}
    for p in args.precisions:
        entry = {"precision": p}
        entries.append(entry)
        if p in NEEDS_TRAINING:
            entry["skipped"] = NEEDS_TRAINING[p]
            log(f"[{name}] {p}: skipped ({entry['skipped']})")
            continue
        precision = table[p]
        options = {"allow_float_ops": True} if p == "int16x8" else {}
        entry["allow_float_ops"] = bool(options)
        log(f"[{name}] {p}: converting" + (" (allow_float_ops)" if options else ""))
        t0 = time.perf_counter()
        try:
            data = convert.convert(model, (1, h, w, 4), precision,
                                   representative=representative if precision.representative else None,
                                   io_type=None, **options)
        except UserError as err:
            entry["error"] = str(err)
            log(f"[{name}] {p}: conversion failed: {err}")
            continue
        entry["conversion_s"] = round(time.perf_counter() - t0, 2)
        entry["size_bytes"] = len(data)
        parsed = flatbuffer.parse(data, f"{name}-{p}.tflite")
        entry["ops"] = parsed.op_counts()
        if precision.integer:  # ops left in float (allow_float_ops), bar the conversions themselves
            entry["float_ops"] = sorted({op.name for op in parsed.ops if op.name not in ("QUANTIZE", "DEQUANTIZE")
                                         and op.inputs and op.inputs[0] is not None
                                         and op.inputs[0].dtype == "float32"})
        runner = runtime.Runner(data, threads=args.threads)
        entry["io_dtype"] = [str(runner.input["dtype"].__name__), str(runner.output["dtype"].__name__)]
        t0 = time.perf_counter()
        y = runner(x)  # sets the input once; later invokes reuse it
        first = time.perf_counter() - t0
        if y.shape != (1, 2 * h, 2 * w, 3):
            raise UserError(f"{name} {p}: output shape {y.shape}, expected {(1, 2 * h, 2 * w, 3)}")
        probe = first
        if first < args.measure_seconds:  # a second, steady call decides the run count
            t0 = time.perf_counter()
            runner.interpreter.invoke()
            probe = time.perf_counter() - t0
        entry["first_call_s"] = round(first, 4)
        entry["probe_s"] = round(probe, 4)
        entry["runs"] = args.runs or int(min(MAX_RUNS, max(MIN_RUNS if probe <= SLOW_S else 1,
                                                            round(args.measure_seconds / probe))))
        entry["warmup"] = args.warmup if args.warmup is not None else int(min(5, math.floor(1.0 / probe)))
        entry["finite"] = bool(np.isfinite(y).all())
        entry["round_times_s"] = []
        runners[p] = runner
        del data, y
        log(f"[{name}] {p}: {fmt_bytes(entry['size_bytes'])} in {entry['conversion_s']:.1f} s; first call "
            f"{first * 1000:.0f} ms, probe {probe * 1000:.0f} ms -> {entry['warmup']} warm-up + {entry['runs']} "
            f"timed run(s) per round")
    del model
    gc.collect()

    timed = [p for p in args.precisions if p in runners]
    cpu0, wall0 = process_cpu_seconds(), time.perf_counter()
    for r in range(args.rounds):
        order = timed[r % len(timed):] + timed[:r % len(timed)] if timed else []
        for p in order:
            entry = next(e for e in entries if e["precision"] == p)
            invoke = runners[p].interpreter.invoke
            for _ in range(entry["warmup"]):
                invoke()
            times = []
            for _ in range(entry["runs"]):
                t0 = time.perf_counter()
                invoke()
                times.append(time.perf_counter() - t0)
            entry["round_times_s"].append({"round": r + 1, "position": order.index(p) + 1, "times_s": times})
            log(f"[{name}] round {r + 1}/{args.rounds} {p:8s}: median {statistics.median(times) * 1000:8.1f} ms "
                f"over {len(times)} run(s)")
    # Cores this process used while timing: about --threads on a quiet machine, less when other jobs compete.
    rounds_cpu_cores = (process_cpu_seconds() - cpu0) / max(time.perf_counter() - wall0, 1e-9)
    runners.clear()
    gc.collect()

    base = "fp32" if "fp32" in timed else (timed[0] if timed else None)
    for entry in entries:
        if entry["precision"] not in timed:
            continue
        pooled = [t for rt in entry["round_times_s"] for t in rt["times_s"]]
        round_medians = [statistics.median(rt["times_s"]) for rt in entry["round_times_s"]]
        entry.update({"n": len(pooled), "median_ms": statistics.median(pooled) * 1000,
                      "p95_ms": _percentile(pooled, 95) * 1000, "min_ms": min(pooled) * 1000,
                      "max_ms": max(pooled) * 1000, "round_median_ms": [t * 1000 for t in round_medians]})
    if base:
        base_entry = next(e for e in entries if e["precision"] == base)
        for entry in entries:
            if entry["precision"] not in timed:
                continue
            ratios = [b / t for b, t in zip(base_entry["round_median_ms"], entry["round_median_ms"])]
            entry["speedup_vs"] = base
            entry["speedup"] = statistics.median(ratios)
            entry["speedup_rounds"] = ratios
            entry["speedup_rounds_min"], entry["speedup_rounds_max"] = min(ratios), max(ratios)
            entry["speedup_pooled_medians"] = base_entry["median_ms"] / entry["median_ms"]
    for entry in entries:
        if "median_ms" in entry:
            log(f"[{name}] {entry['precision']:8s}: {fmt_bytes(entry['size_bytes']):>10s}, conversion "
                f"{entry['conversion_s']:5.1f} s, median {entry['median_ms']:8.1f} ms, p95 {entry['p95_ms']:8.1f} ms"
                + (f", {_x(entry['speedup'])}x vs {base}" if base else ""))
    return {"model": recipe.name, "source": source, "params": params, "macs": macs,
            "input": [1, h, w, 4], "output": [1, 2 * h, 2 * w, 3], "base": base,
            "reference_int8_speedup": REFERENCE_INT8_SPEEDUP.get(recipe.name),
            "load_average_start": load_start, "load_average_end": load_average(),
            "rounds_cpu_cores": round(rounds_cpu_cores, 2), "precisions": entries}


# --- Output ----------------------------------------------------------------------------------

def _x(v: float) -> str:
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}"


def latency_table(report: dict) -> list:
    rows = []
    for r in report["results"]:
        for e in r["precisions"]:
            if "median_ms" not in e:
                why = e.get("skipped") or e.get("error", "not measured")
                rows.append([r["model"], e["precision"], "—", "—", "—", "—", "—", why])
                continue
            vs = "" if e["speedup_vs"] == "fp32" else f" vs {e['speedup_vs']}"
            speed = ("1.00 (base)" if e["precision"] == e["speedup_vs"] else
                     f"{_x(e['speedup'])}×{vs} ({_x(e['speedup_rounds_min'])} .. {_x(e['speedup_rounds_max'])})")
            rows.append([r["model"], e["precision"], fmt_bytes(e["size_bytes"]), f"{e['conversion_s']:.1f}",
                         f"{len(e['round_times_s'])}×{e['runs']}", fmt_ms(e["median_ms"]), fmt_ms(e["p95_ms"]), speed])
    return md_table(["model", "precision", "size", "conversion s", "runs", "median ms", "p95 ms",
                     "speedup vs fp32 (rounds)"], rows, "llrrrrrr")


def int8_table(report: dict) -> list:
    rows = []
    for r in report["results"]:
        e = next((e for e in r["precisions"] if e["precision"] == "int8" and "speedup" in e), None)
        if e is None or e.get("speedup_vs") != "fp32":
            continue
        ref = r.get("reference_int8_speedup")
        rows.append([r["model"], f"{e['speedup']:.2f}× ({e['speedup_rounds_min']:.2f} .. "
                                 f"{e['speedup_rounds_max']:.2f})", f"≈ {ref}×" if ref else "—"])
    return md_table(["model", "measured INT8/FP32 (rounds)", "reference (issue)"], rows, "lrr")


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# Export latency: .tflite size, conversion time and LiteRT/XNNPACK latency per precision",
        "",
        *header(report),
        "",
        f"Input {s['size']} packed (1x{s['size']}x4 → 1x{2 * s['height']}x{2 * s['width']}x3), "
        f"{s['threads']} LiteRT threads, XNNPACK (the interpreter's default delegate).",
        "",
        *latency_table(report),
    ]
    lines += [
        "",
        "Median and p95 are over all timed `invoke()` calls of all rounds (*runs* = rounds × timed runs per "
        "round). Speedup = median over rounds of t_fp32 / t_precision, each round's time the median of its runs; "
        "all precisions of a model ran in this one process, interleaved, the order rotating each round, so the "
        "ratio compares like with like on this machine at this time. Absolute milliseconds depend on the machine "
        "and its load (see the load averages); they are not a performance claim.",
        "",
        "## INT8 vs FP32",
        "",
        *int8_table(report),
    ]
    lines += [
        "",
        "The reference column is the figure stated in the issue for this kind of machine (2 cores, "
        "XNNPACK, Full HD); it is not a result of this run.",
        "",
        "## Machine and settings",
        "",
        f"- Machine: {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores"
        + (f", {m['memory_gib']} GiB" if m.get("memory_gib") else "")
        + (f", GPUs {', '.join(m['gpus'])}" if m["gpus"] else ", CPU only")
        + f"; TensorFlow {m['tensorflow']}, ai-edge-litert {m['ai_edge_litert']}, NumPy {m['numpy']}, "
        f"Python {m['python']}; load average {report['load_average_start']} at start, "
        f"{report['load_average_end']} at end.",
        f"- Settings: {s['rounds']} round(s), the order of the precisions rotating each round; per measurement "
        + (f"{s['warmup']}" if s["warmup"] is not None else "about 1 s of (0..5)")
        + " untimed warm-up invoke(s), then "
        + (f"{s['runs']}" if s["runs"] is not None else
           f"about {s['measure_seconds']:g} s of ({MIN_RUNS}..{MAX_RUNS}; 1 above {SLOW_S:g} s per inference)")
        + " timed `interpreter.invoke()` call(s) (time.perf_counter around each); the input was set once by "
          "`runner(x)` before round 1, so input quantisation is not timed. Conversion time (tracing, conversion "
          f"and, for int8/int16x8, calibration on {s['calibration']} smooth-noise inputs) was measured once, "
          "not interleaved.",
    ]
    for r in report["results"]:
        per = ", ".join(f"{e['precision']} {e['warmup']}+{e['runs']}" for e in r["precisions"] if "runs" in e)
        lines.append(f"- {r['model']}: {r['params']:,} parameters, {r['macs'] / 1e9:.2f} GMAC per frame, "
                     f"{r['source']}; warm-up + timed runs per round: {per}; load average "
                     f"{r['load_average_start']} → {r['load_average_end']}; this process used "
                     f"{r['rounds_cpu_cores']:.2f} cores on average during the rounds.")
    busy = [r for r in report["results"] if r.get("rounds_cpu_cores", s["threads"]) < 0.75 * s["threads"]]
    if busy:
        used = ", ".join(f"{r['rounds_cpu_cores']:.2f} ({r['model']})" for r in busy)
        lines.append(f"- **Contended:** while timing, this process used on average only {used} cores for "
                     f"{s['threads']} LiteRT threads: other jobs took the rest, so these figures are close to a "
                     f"one-core measurement. The precisions need not gain equally from a second core, so quote "
                     f"speedups from a run on a quiet machine.")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    for r in report["results"]:
        for e in r["precisions"]:
            if e.get("float_ops") or (e["precision"] == "int16x8" and "float_ops" in e):
                kept = ", ".join(e["float_ops"]) or "none"
                lines.append(f"- {r['model']} {e['precision']}: ops left in float: {kept}.")
    return "\n".join(lines) + "\n"


def notes(args, table) -> list:
    n = [
        "Conversion: `tflite_isp.convert.convert(model, (1, H, W, 4), precision, io_type=None)`, i.e. each "
        "precision's default IO type (float32, except int8: int8 input and output); the runner quantises the "
        "input before the timed calls.",
        "int16x8 is converted with `allow_float_ops=True`: strict 16x8 conversion fails on DEPTH_TO_SPACE "
        "(smallnet, sid_unet), which then stays in float between QUANTIZE/DEQUANTIZE (the ops left in float "
        "are listed below). XNNPACK does not run int16 activations, so int16x8 runs on LiteRT's built-in "
        "kernels and is far slower than the other precisions on a CPU (in a side check, a smallnet int16x8 "
        "file ran about as fast with the XNNPACK delegate disabled); above 10 s per inference (the large "
        "models) the default run count gives it one timed run per round, so its p95 rests on few samples.",
        "int8_qat is not measured: it needs quantization-aware fine-tuning first (its latency is that of an "
        "int8 file of the same graph).",
        "fp16 files store float16 weights that are dequantised to float32 when loaded, so on a CPU they run "
        "like fp32; dynamic quantises activations on the fly (int8 weights).",
    ]
    if not args.run_dirs:
        n.append("Weights are random (Keras initialisers); latency does not depend on the weights' values.")
    return n


def main(argv=None) -> int:
    t_start = time.perf_counter()
    args = parse_args(argv)

    from tflite_isp.export import convert
    from tflite_isp.nets import recipes

    table = convert.precisions()
    for p in args.precisions:
        if p not in table:
            raise UserError(f"unknown precision {p!r}; known: {', '.join(table)}")
    for name in args.models:
        if name not in args.run_dirs:
            recipes.load_recipe(name)  # unknown names fail before any work

    report = start_report(
        NAME, argv, threads=args.threads, machine=tensorflow_info(),
        settings={"models": args.models, "precisions": args.precisions, "rounds": args.rounds, "runs": args.runs,
                  "warmup": args.warmup, "measure_seconds": args.measure_seconds, "threads": args.threads,
                  "size": f"{args.height}x{args.width}", "height": args.height, "width": args.width,
                  "run_dirs": args.run_dirs, "calibration": args.calibration, "seed": args.seed,
                  "delegate": "XNNPACK (LiteRT default)", "timer": "time.perf_counter around interpreter.invoke()",
                  "statistic": "median and p95 over all timed runs; speedup = median over rounds of "
                               "t_base / t, each round's time the median of its runs"},
        reference_int8_speedup=REFERENCE_INT8_SPEEDUP, notes=notes(args, table), results=[])
    log(provenance_line(report))

    def save():
        return save_results(args.out, NAME, report, markdown)

    for i, name in enumerate(args.models, start=1):
        log_step(i, len(args.models), f"model {name}", t_start)
        report["results"].append(measure_model(name, args, table))
        save()
    finish_report(report, t_start)  # wall time from start-up, TensorFlow import included
    paths = save()
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, paths))}")
    print("\n".join([*latency_table(report), "", *int8_table(report)]))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
