"""``search profile``: time the probe graphs on a device and write its latency table (``converters/latency/``).

Locally each probe is timed in this process with ``run.timing.measure`` (the LiteRT interpreter with XNNPACK, the
same code path ``python -m tflite_isp.timing`` uses): a fresh process per probe would add about a second of imports
to each of ~120 probes and measures the same ``invoke()``. A tiny graph gives the per-invoke overhead, subtracted
from each probe. Phones run ``benchmark_model --enable_op_profiling=true --op_profiling_output_mode=csv`` and the
per-op rows of its CSV are used (no subtraction needed); a Jetson board times each probe with the project's timer.
"""
from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError
from tflite_isp.run import flatbuffer
from tflite_isp.search import latency
from tflite_isp.search import probes as probes_mod
from tflite_isp.search.targets import parse_target

TINY = probes_mod.Probe("relu", (2, 2), 4, "fp32")
OP_PROFILING_FLAGS = ("--enable_op_profiling=true", "--op_profiling_output_mode=csv")


def commit() -> str | None:
    """The checkout's commit (git rev-parse HEAD), None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


# --- Runtimes ------------------------------------------------------------------------------------------------------

class LocalTimer:
    """Probes timed here with LiteRT (XNNPACK), ``threads`` threads. The minimum of several invokes: on a shared
    machine it is the figure that repeats (a median moves with whatever else runs); the predictor says so."""

    def __init__(self, threads: int = 2):
        self.threads = threads
        self.description = latency.local_device(threads)

    def time(self, path: Path) -> dict:
        from tflite_isp.run.timing import TimingError, measure  # lazy: loads LiteRT

        try:
            r = measure(path, threads=self.threads, runs=5, warmup=1)
            if r["min_ms"] < 5:  # cheap probe: more invokes for a steadier minimum
                r = measure(path, threads=self.threads, runs=20, warmup=2)
        except TimingError as err:
            raise UserError(str(err)) from None
        return {"ms": r["min_ms"], "median_ms": r["median_ms"]}


def adb_probe_args(settings, remote: str) -> list:
    """``benchmark_model`` flags for one probe: the project's flags plus CSV op profiling on stdout."""
    from tflite_isp.devices.android_bench import benchmark_args  # lazy: the adb harness only for adb runtimes

    return [*benchmark_args(settings, remote), *OP_PROFILING_FLAGS]


class AdbTimer:
    """Probes timed on a phone with ``benchmark_model`` and CSV op profiling (per-op rows, no invoke overhead)."""

    def __init__(self, serial, delegate: str, *, binary, threads: int, adb: str = "adb", timeout: float = 600):
        from tflite_isp.devices.adb import Adb  # lazy: the adb harness only for adb runtimes
        from tflite_isp.devices.android_bench import BenchSettings, Phone  # lazy: as above

        if binary is None:
            raise UserError("profile --runtime adb:... needs TFLite's benchmark_model binary for the phone "
                            "(benchmark_binary=PATH)")
        settings = BenchSettings(delegate=delegate, threads=threads, runs=20, warmup=3, peak_memory=False,
                                 timeout=timeout)
        self.phone = Phone(Adb(adb, serial, timeout), settings, binary=binary)
        self.description = {"kind": "adb", **{k: self.phone.info.get(k) for k in
                                              ("serial", "model", "soc", "platform", "android", "abi")},
                            "delegate": delegate, "threads": threads, "runtime": "benchmark_model"}

    def time(self, path: Path) -> dict:
        from tflite_isp.devices import bench_output  # lazy: as above

        phone = self.phone
        phone.prepare()
        remote = phone.push_model(path, path.stem)
        argv = [f"{phone.settings.device_dir}/benchmark_model", *adb_probe_args(phone.settings, remote)]
        result = phone.adb.shell(argv, timeout=phone.settings.timeout, check=False)
        out = bench_output.parse(result.output)
        problem = bench_output.diagnose(out, result.returncode)
        if problem:
            raise UserError(f"{phone.spec}: {path.name}: {problem}")
        rows = bench_output.parse_op_profile(result.output)
        return {"ms": out.ms, "op_ms": sum(r["avg_ms"] for r in rows) if rows else None, "op_rows": rows}


class BoardTimer:
    """Probes timed on a Jetson (ssh) with the project's timer script; overhead subtracted as locally."""

    def __init__(self, host: str, *, threads: int, ssh_config=None, python: str = "python3"):
        from tflite_isp.devices.board import Board  # lazy: the ssh harness only for board runtimes

        self.board, self.threads = Board(host, ssh_config=ssh_config, python=python), threads
        info = self.board.check("timing")
        self.description = {"kind": "jetson", "host": host, "model": info.get("model"), "l4t": info.get("l4t"),
                            "machine": info.get("machine"), "threads": threads, "runtime": info.get("litert")}

    def time(self, path: Path) -> dict:
        r = self.board.measure(path, tool="timing", threads=self.threads, runs=10, warmup=2)
        return {"ms": r["ms"]}


def timer_for(runtime: str, *, threads: int = 2, binary=None, **options):
    """``local``, ``adb:SERIAL[:DELEGATE]`` or ``jetson:HOST`` (the search's target spellings) -> a timer; anything
    else a one-line UserError."""
    target = parse_target(runtime, what="--runtime")
    if target.kind == "local":
        return LocalTimer(threads)
    if target.kind == "adb":
        return AdbTimer(target.address, target.bench_delegate, binary=binary, threads=threads, **options)
    return BoardTimer(target.address, threads=threads, **options)


# --- Fitting -------------------------------------------------------------------------------------------------------

def probe_record(probe, path: Path, timed: dict, overhead_ms: float) -> dict:
    """The probe's row: its ops (key, features), the measured ms and the target the fit uses (op time)."""
    tfl = flatbuffer.read(path)
    ops = [{"index": op.index, "op": op.name, "key": latency.op_key(op),
            "features": {k: round(v, 6) for k, v in latency.op_features(op).items()}} for op in tfl.ops
           if op.name not in latency.FREE_OPS]
    op_ms = timed.get("op_ms")
    target = op_ms if op_ms is not None else max(timed["ms"] - overhead_ms, 0.0)
    extra = {"median_ms": timed["median_ms"]} if "median_ms" in timed else {}
    return {**probe.to_dict(), "ms": round(timed["ms"], 4), **extra, "op_ms": round(target, 4), "ops": ops}


CACHE_MB = (0.0, 1.0, 4.0, 16.0, 32.0, 64.0, 128.0)  # breakpoints tried for the per-byte cost's rise


MULTI_OP = latency.MULTI_OP  # probes whose rows tie the op models to how ops cost inside a graph
MULTI_OP_WEIGHT = 3.0  # a whole graph's row counts as three single-op rows: it is what a prediction is used for


def _design(records: list, cache_mb: float) -> tuple:
    """(rows, targets, columns): one row per probe, its ops' features in their key's columns, rows weighted by
    1/target so relative errors count (multi-op probes ``MULTI_OP_WEIGHT`` times); columns scaled to order 1 so no
    term wins for its units alone."""
    keys = sorted({op["key"] for r in records for op in r["ops"]})
    columns = [(k, f) for k in keys for f in latency.feature_names(k)]
    index = {c: i for i, c in enumerate(columns)}
    a, b = np.zeros((len(records), len(columns))), np.zeros(len(records))
    for i, r in enumerate(records):
        weight = (MULTI_OP_WEIGHT if r["op"] in MULTI_OP else 1.0) / max(r["op_ms"], 0.005)
        for op in r["ops"]:
            feats = {**op["features"], "mb_over": max(0.0, op["features"]["mb_in"] + op["features"]["mb_out"]
                                                      - cache_mb)}
            for f in latency.feature_names(op["key"]):
                a[i, index[(op["key"], f)]] += feats.get(f, 0.0) * weight
        b[i] = r["op_ms"] * weight
    return a, b, columns


def _solve(a, b):
    from scipy.optimize import nnls  # lazy: SciPy only when fitting

    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    coef, _ = nnls(a / scale, b, maxiter=50 * a.shape[1])
    return coef / scale


def _loo_pct(a, b, rows=None) -> float:
    """Median |error| % of each probe (of ``rows``, default all) predicted by a fit without it (rows are weighted:
    a row's value is its weight, so the ratio is the relative error)."""
    errs = []
    for i in range(len(b)) if rows is None else rows:
        keep = np.arange(len(b)) != i
        coef = _solve(a[keep], b[keep])
        errs.append(abs(a[i] @ coef - b[i]) / b[i] * 100 if b[i] > 0 else 0.0)
    return float(np.median(errs))


def fit(records: list) -> tuple:
    """Per-key NNLS models fitted jointly over all probes (a probe with several ops, e.g. QUANTIZE + CONV_2D +
    DEQUANTIZE, a chain or a whole network, constrains all of them), with the cache breakpoint whose leave-one-out
    error is lowest. Returns (models, cache_mb, leave-one-out median |error| % on single ops, and on whole graphs:
    the estimate of the error on a network the table has not seen, None without graph probes)."""
    graphs = [i for i, r in enumerate(records) if r["op"] == "graph"]
    singles = [i for i, r in enumerate(records) if r["op"] not in MULTI_OP]
    tried = {c: _loo_pct(*_design(records, c)[:2]) for c in CACHE_MB}
    cache_mb = min(tried, key=tried.get)
    a, b, columns = _design(records, cache_mb)
    loo = {"single_ops": round(_loo_pct(a, b, singles), 2),
           "graphs": round(_loo_pct(a, b, graphs), 2) if graphs else None}
    coef = _solve(a, b)
    models = {}
    for k in sorted({c[0] for c in columns}):
        c = [float(coef[columns.index((k, f))]) for f in latency.feature_names(k)]
        models[k] = {"features": list(latency.feature_names(k)), "coef": [round(x, 6) for x in c],
                     "probes": sum(any(op["key"] == k for op in r["ops"]) for r in records)}
    return models, cache_mb, loo


def fit_graph(chains: list, models: dict, invoke_ms: float) -> tuple:
    """Per-graph terms from the several-op probes: measured = scale * (sum of op costs) + per_mb * (MB the ops
    write: whole-graph intermediates leave the cache, a single-op probe's input stays in it) + overhead (NNLS,
    1/ms weights); (scale, per_mb, overhead ms). Without enough chains: (1, 0, the tiny graph's invoke time)."""
    from scipy.optimize import nnls  # lazy: SciPy only when fitting

    if len(chains) < 3:
        return 1.0, 0.0, invoke_ms
    sums = np.array([sum(_op_ms(op, models) for op in r["ops"]) for r in chains])
    mbs = np.array([sum(op["features"]["mb_out"] for op in r["ops"]) for r in chains])
    w = 1.0 / np.array([r["ms"] for r in chains])
    (scale, per_mb, overhead), _ = nnls(np.stack([sums * w, mbs * w, w], axis=1), np.ones(len(chains)))
    return float(scale), float(per_mb), float(overhead)


def _op_ms(op, models) -> float:
    m = models.get(op["key"])
    if m is None:
        return 0.0
    feats = op["features"]
    return sum(c * feats.get(f, 0.0) for f, c in zip(m["features"], m["coef"]))


def fit_errors(records: list, models: dict, graph: tuple) -> dict:
    """Median absolute % error of the fitted table on its own probes (single ops and chains apart)."""
    scale, per_mb, overhead_ms = graph

    def pct(r):
        ms = overhead_ms + sum(scale * _op_ms(op, models) + per_mb * op["features"]["mb_out"] for op in r["ops"])
        return abs(ms - r["ms"]) / r["ms"] * 100
    out = {}
    for name, sel in (("single_ops", [r for r in records if r["op"] not in MULTI_OP]),
                      ("chains", [r for r in records if r["op"] == "chain"]),
                      ("graphs", [r for r in records if r["op"] == "graph"])):
        errs = [pct(r) for r in sel if r["ms"] > 0]
        out[name] = {"probes": len(errs), "median_abs_pct": round(float(np.median(errs)), 2) if errs else None}
    return out


# --- Profile -------------------------------------------------------------------------------------------------------

def _time_rounds(timer, paths, rounds: int, log, t0) -> tuple:
    """Every file timed ``rounds`` times, interleaved (a busy spell of a shared machine hits one round, not one
    probe); (per file the round with the lowest ``ms``, None for a file the runtime refused; {index: why})."""
    best: list = [None] * len(paths)
    refused: dict = {}
    for k in range(rounds):
        for i, path in enumerate(paths):
            if i in refused:
                continue
            try:
                t = timer.time(path)
            except UserError as err:  # one probe the runtime refuses (XNNPACK failing to prepare a node) is left out
                refused[i] = str(err)
                if log:
                    log(f"left out {path.name}: {err}")
                continue
            if best[i] is None or t["ms"] < best[i]["ms"]:
                best[i] = t
        if log:
            log(f"timing round {k + 1}/{rounds} done ({time.monotonic() - t0:.0f} s)")
    return best, refused


def profile(runtime: str, out: Path | None = None, log=print, *, probes=None, threads: int = 2, work=None,
            rounds: int = 3, **options) -> Path:
    """Time the probe set on ``runtime`` and write its table (``out``, else ``converters/latency/<device>.json``);
    returns the table's path. ``probes`` (default ``probe_set()``) and ``work`` (a folder for the probe files,
    default a temporary one) let tests run a subset; ``rounds`` interleaved timing rounds, the best kept."""
    timer = timer_for(runtime, threads=threads, **options)
    t0 = time.monotonic()
    probes = probes_mod.probe_set() if probes is None else probes
    with tempfile.TemporaryDirectory(prefix="latency-probes-") as tmp:
        folder = Path(work or tmp)
        log(f"profile {runtime}: converting {len(probes) + 1} probes")
        files = probes_mod.write_probes([TINY, *probes], folder, log=log)
        timed, refused = _time_rounds(timer, [path for _, path in files], rounds, log, t0)
        if 0 in refused:
            raise UserError(f"profile {runtime}: the runtime refuses even a one-op graph ({refused[0]})")
        invoke_ms = timed[0]["ms"] - (timed[0].get("op_ms") or 0.0)
        records = [probe_record(probe, path, t, invoke_ms) for (probe, path), t in zip(files[1:], timed[1:])
                   if t is not None]
    table = build_table(records, timer.description, runtime=runtime, invoke_ms=invoke_ms, rounds=rounds)
    table["refused"] = [{"probe": files[i][0].name, "error": why} for i, why in sorted(refused.items())]
    table["profile_s"] = round(time.monotonic() - t0, 1)
    path = Path(out) if out is not None else latency.default_table_path(table["device"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, table)
    log(f"profile {runtime}: {len(records)} probes in {table['profile_s']:.0f} s; {summary(table)}; wrote {path}")
    return path


def build_table(records: list, description: dict, *, runtime: str, invoke_ms: float, rounds: int) -> dict:
    """The table: per-op models fitted on every probe, graph terms on the multi-op ones, the probes kept."""
    models, cache_mb, loo = fit(records)
    for r in records:  # features at the chosen breakpoint and per-op shares, for the guidelines page
        for op in r["ops"]:
            op["features"]["mb_over"] = round(max(0.0, op["features"]["mb_in"] + op["features"]["mb_out"]
                                                  - cache_mb), 6)
            op["ms"] = round(_op_ms(op, models), 4)
    graph = fit_graph([r for r in records if r["op"] in MULTI_OP], models, invoke_ms)
    return {"format": latency.FORMAT, "device": latency.device_name(description), "description": description,
            "commit": commit(), "runtime": runtime, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "invoke_ms": round(invoke_ms, 4), "overhead_ms": round(graph[2], 4), "graph_scale": round(graph[0], 4),
            "graph_ms_per_mb": round(graph[1], 6), "cache_mb": cache_mb,
            "statistic": "min over invokes and rounds", "rounds": rounds,
            "cost_model": "ms = overhead + sum over ops of (graph_scale * (a*GMAC + b*Mpix + b'*Mpix_thin + c*MB_in "
                          "+ d*MB_out + e*MB_beyond_cache + f) + graph_ms_per_mb * MB_out), one model per op key and "
                          "precision (NNLS over single-op, chain and whole-network probes, 1/ms row weights, "
                          "multi-op rows x3; no GMAC/Mpix terms for ops without MACs); graph terms fitted on the "
                          "multi-op probes",
            "fit": {**fit_errors(records, models, graph), "leave_one_out_single_ops_pct": loo["single_ops"],
                    "leave_one_out_graphs_pct": loo["graphs"]},
            "models": models, "probes": records}


def summary(table: dict) -> str:
    fit_ = table["fit"]
    graphs = fit_.get("graphs", {}).get("median_abs_pct")
    return (f"median error on single ops {fit_['single_ops']['median_abs_pct']} % (leave-one-out "
            f"{fit_['leave_one_out_single_ops_pct']} %), on chains {fit_['chains']['median_abs_pct']} %"
            + (f", on whole networks {graphs} % (leave-one-out {fit_.get('leave_one_out_graphs_pct')} %)"
               if graphs is not None else "") + "; cache "
            f"breakpoint {table['cache_mb']:g} MB, graph scale {table['graph_scale']:.2f} + "
            f"{table['graph_ms_per_mb']:.3f} ms/MB written, overhead {table['overhead_ms']:.2f} ms")


def refit(path, log=print) -> Path:
    """Refit a table from the probe timings it holds (after a change to the cost model; nothing is re-timed)."""
    old = latency.load_table(path, device=None)
    records = [{**r, "ops": [{k: v for k, v in op.items() if k != "ms"} for op in r["ops"]]} for r in old["probes"]]
    table = build_table(records, old["description"], runtime=old["runtime"], invoke_ms=old["invoke_ms"],
                        rounds=old["rounds"])
    table["profile_s"], table["created"], table["commit"] = old.get("profile_s"), old["created"], old["commit"]
    atomic.write_json(path, table)
    log(f"refit {path}: {summary(table)}")
    return Path(path)


__all__ = ["OP_PROFILING_FLAGS", "AdbTimer", "BoardTimer", "LocalTimer", "adb_probe_args", "build_table", "commit",
           "fit", "profile", "refit", "timer_for"]
