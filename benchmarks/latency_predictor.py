"""The latency predictor against measured latency on held-out candidate networks at Full HD (this CPU, LiteRT).

    .venv/bin/python benchmarks/latency_predictor.py [--random 8] [--precisions int8,fp32] [--table PATH]
        [--runs 5] [--threads 2] [--out benchmarks/results]

A fresh table is profiled first (``tflite_isp.search.profile``, ``--runtime local``, written to
``converters/latency/<device>.json``) unless ``--table`` names one: profile and candidates are then timed in the
same window of a shared machine's load.
Candidates (``candidates()``; none of them is a probe): zoo recipes at reduced widths, and random stacks of the
probe ops (encoder/decoder levels, residual and attention blocks, activations, a space-to-depth stem). Each is
converted at 1x544x960x4 as the exporter converts (int8: full integer, int8 IO), timed whole in a fresh process with
``run/timing.py`` in ``--rounds`` interleaved rounds of ``--runs`` invokes (minimum, and median of the rounds'
medians) and predicted from the table. The error is
|predicted - measured| / measured against the minimum (the statistic the table holds) and against the median.
Writes ``latency_predictor.{md,json}``.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import (
    add_common_args,
    comma_list,
    finish_report,
    header,
    log,
    md_table,
    parser,
    positive_int,
    save_results,
    start_report,
)

from tflite_isp.core.errors import run_cli
from tflite_isp.core.tf import keras
from tflite_isp.export import convert
from tflite_isp.nets import architectures
from tflite_isp.nets.layers import PixelShuffle
from tflite_isp.run import timing
from tflite_isp.search import latency, probes, profile

NAME = "latency_predictor"
H, W = probes.FULL
# zoo recipes at reduced widths: (name, [model] section)
ZOO = [("smallnet", {"architecture": "smallnet", "filters": [16, 16, 12], "activations": ["tanh", "relu", "relu"]}),
       ("smallnet_w8", {"architecture": "smallnet", "filters": [8, 8, 12], "activations": ["tanh", "relu", "relu"]}),
       ("enerzai", {"architecture": "enerzai", "layers": 3, "growth": 4}),
       ("microisp", {"architecture": "microisp", "features": 4, "convs": 7}),
       ("csanet_w8", {"architecture": "csanet", "filters": 8, "dams": 1}),
       ("isp_forever_w6", {"architecture": "isp_forever", "widths": [6, 12, 24], "reduction": 4}),
       ("sid_unet_w8", {"architecture": "unet", "widths": [8, 16, 32, 64, 128]}),
       ("punet_b4", {"architecture": "punet", "base": 4})]


def zoo_candidates():
    return [(name, lambda s=section: architectures.build(s, height=H, width=W, batch=1)) for name, section in ZOO]


ACTIVATIONS = {"relu": lambda: keras.layers.ReLU(), "leaky": lambda: keras.layers.LeakyReLU(0.2),
               "tanh": lambda: keras.layers.Activation("tanh"), "prelu": lambda: keras.layers.PReLU(shared_axes=[1, 2]),
               "relu6": lambda: keras.layers.ReLU(6.0)}


def _act(x, kind):
    return ACTIVATIONS[kind]()(x)


def _block(x, c, rng):
    """A random block at width ``c``: residual conv pair, depthwise-separable, or channel attention."""
    kind = rng.choice(["res", "dw", "attn"])
    if kind == "res":
        y = keras.layers.Conv2D(c, 3, padding="same", activation="relu")(x)
        return keras.layers.Add()([x, keras.layers.Conv2D(c, 3, padding="same")(y)])
    if kind == "dw":
        y = keras.layers.DepthwiseConv2D(3, padding="same")(x)
        return _act(keras.layers.Conv2D(c, 1)(y), str(rng.choice(["relu", "leaky", "prelu", "relu6"])))
    g = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    g = keras.layers.Conv2D(c, 1, activation="sigmoid")(g)
    return keras.layers.Multiply()([x, g])


def random_stack(seed: int):
    """A U-Net-like stack of the probe ops at Full HD, shapes drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    x = inputs = keras.Input(batch_size=1, shape=(H, W, 4), name="raw")
    s2d = rng.random() < 0.3
    if s2d:
        x = probes.SpaceToDepth(2)(x)
    c = int(rng.choice([8, 12, 16, 24]))
    x = _act(keras.layers.Conv2D(c, 3, padding="same")(x), str(rng.choice(["relu", "tanh", "leaky"])))
    skips = []
    for _ in range(int(rng.integers(0 if s2d else 1, 4))):
        skips.append(x)
        c *= 2
        x = keras.layers.Conv2D(c, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D(2)(x))
    for _ in range(int(rng.integers(1, 3))):
        x = _block(x, c, rng)
    for skip in reversed(skips):
        c //= 2
        if rng.random() < 0.5:
            x = keras.layers.Conv2DTranspose(c, 2, strides=2)(x)
        else:
            x = keras.layers.Conv2D(c, 1)(keras.layers.UpSampling2D(2, interpolation="bilinear")(x))
        x = keras.layers.Conv2D(c, 3, padding="same", activation="relu")(keras.layers.Concatenate()([x, skip]))
    block = 4 if s2d else 2
    x = keras.layers.Conv2D(3 * block * block, 3, padding="same")(x)
    return keras.Model(inputs, PixelShuffle(block)(x), name=f"random{seed}")


def searchnet_candidates(n: int, seed: int = 7) -> list:
    """``n`` candidates the architecture search could sample (its space, uniformly; not the table's graph probes,
    which are drawn from ``probes.GRAPH_SEED``), none over ~12 GMAC."""
    assert seed != probes.GRAPH_SEED, "held-out candidates must not be the table's own graph probes"
    return [(f"searchnet{i}", lambda s=section: architectures.build(s, height=H, width=W, batch=1))
            for i, section in enumerate(probes.graph_sections(n, seed=seed, max_gmac=12.0))]


def candidates(n_random: int = 8, n_searchnet: int = 0) -> list:
    """(name, build) pairs of held-out candidates: zoo recipes, random op stacks, the search space's networks."""
    return (zoo_candidates() + [(f"random{s}", lambda s=s: random_stack(1000 + s)) for s in range(n_random)]
            + searchnet_candidates(n_searchnet))


def export(model, precision: str) -> bytes:
    p = convert.precisions()[precision]
    if not p.representative:
        return convert.convert(model, (1, H, W, 4), p)
    rng = np.random.default_rng(0)
    data = [rng.random((1, H, W, 4), dtype=np.float32) for _ in range(2)]
    return convert.convert(model, (1, H, W, 4), p, representative=convert.representative_from(data), io_type="int8")


def export_one(name, build, precision, table, folder) -> tuple:
    """(file, row with the prediction) of one candidate at one precision (weights from a fixed seed: a file's
    quantisation parameters, and whether XNNPACK takes every op, follow the weights)."""
    keras.utils.set_random_seed(0)
    model = build()
    path = Path(folder) / f"{name}-{precision}.tflite"
    path.write_bytes(export(model, precision))
    keras.backend.clear_session()
    pred = latency.predict(path, table)
    return path, {"name": name, "precision": precision, "ops": len(pred["per_op"]), "predicted_ms": pred["ms"],
                  "gmac": round(sum(r["gmac"] for r in pred["per_op"]), 3), "fallback_ops": pred["fallback_ops"]}


def time_rounds(files, rows, args) -> None:
    """Every file timed in ``--rounds`` interleaved rounds (fresh process each); the minimum over all invokes and
    the median of the rounds' medians, and the errors against both."""
    mins, medians = [[] for _ in files], [[] for _ in files]
    for k in range(args.rounds):
        for i, path in enumerate(files):
            if rows[i].get("error"):
                continue
            try:
                t = timing.measure_subprocess(path, threads=args.threads, runs=args.runs, warmup=1)
            except timing.TimingError as err:  # a file LiteRT refuses is reported, not the end of the run
                rows[i]["error"] = str(err)
                log(f"{rows[i]['name']}: {err}")
                continue
            mins[i].append(t["min_ms"])
            medians[i].append(t["median_ms"])
        log(f"timing round {k + 1}/{args.rounds} done")
    for row, lo, med in zip(rows, mins, medians):
        if row.get("error"):
            continue
        row["measured_min_ms"], row["measured_median_ms"] = min(lo), float(np.median(med))
        row["err_min_pct"] = round(100 * abs(row["predicted_ms"] - min(lo)) / min(lo), 1)
        row["err_median_pct"] = round(100 * abs(row["predicted_ms"] - row["measured_median_ms"])
                                      / row["measured_median_ms"], 1)


def summary(rows) -> dict:
    out = {}
    for precision in sorted({r["precision"] for r in rows}) + ["all"]:
        sel = [r for r in rows if precision in ("all", r["precision"]) and not r.get("error")]
        out[precision] = {"candidates": len(sel),
                          "median_abs_pct_vs_min": round(float(np.median([r["err_min_pct"] for r in sel])), 1),
                          "median_abs_pct_vs_median": round(float(np.median([r["err_median_pct"] for r in sel])), 1)}
    return out


def markdown(report) -> str:
    fit = report["table_fit"]
    lines = ["# Latency predictor vs measured (Full HD, LiteRT XNNPACK)", "", *header(report), "",
             f"Table: `{report['table']}` (profiled in {report['profile_s']} s). Its median error on its own "
             f"single-op probes {fit['single_ops']['median_abs_pct']} % (leave-one-out "
             f"{fit['leave_one_out_single_ops_pct']} %), on its chain probes {fit['chains']['median_abs_pct']} %"
             + (f", on its whole-network probes {fit['graphs']['median_abs_pct']} % (leave-one-out "
                f"{fit.get('leave_one_out_graphs_pct')} %)" if fit.get("graphs", {}).get("probes") else "") + ".",
             "The machine is shared with parallel jobs: timings are noisy (load average in the provenance line).",
             "", "## Median absolute error", ""]
    lines += md_table(["precision", "candidates", "vs min", "vs median"],
                      [[k, v["candidates"], f"{v['median_abs_pct_vs_min']} %", f"{v['median_abs_pct_vs_median']} %"]
                       for k, v in report["summary"].items()], "lrrr")
    lines += ["", "## Candidates", ""]
    lines += md_table(["candidate", "precision", "ops", "GMAC", "measured min ms", "median ms", "predicted ms",
                       "err vs min", "fallback ops"],
                      [[r["name"], r["precision"], r["ops"], r["gmac"], r["measured_min_ms"], r["measured_median_ms"],
                        r["predicted_ms"], f"{r['err_min_pct']} %", ", ".join(r["fallback_ops"])]
                       for r in report["rows"] if not r.get("error")], "llrrrrrrl")
    failed = [r for r in report["rows"] if r.get("error")]
    if failed:
        lines += ["", "Not timed (LiteRT refused the file): " + "; ".join(f"{r['name']} {r['precision']}: "
                                                                        f"{r['error']}" for r in failed)]
    lines += ["", "## ms per GMAC by op type (this device)", ""]
    lines += md_table(["op key", "probes", "ms/GMAC", "ms/MB"],
                      [[g["key"], g["probes"], g["ms_per_gmac"], g["ms_per_mb"]] for g in report["guidelines"]],
                      "lrrr")
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--random", type=int, default=8, help="Random probe-op stacks (default 8).")
    p.add_argument("--searchnet", type=int, default=12, help="Candidates sampled from the search space (default 12).")
    p.add_argument("--precisions", type=comma_list(("int8", "fp32")), default="int8,fp32",
                   help="Precisions (default int8,fp32).")
    p.add_argument("--table", default=None, help="A latency table (default: profile one now).")
    p.add_argument("--runs", type=positive_int, default=3, help="Timed invokes per file and round (default 3).")
    p.add_argument("--rounds", type=positive_int, default=3, help="Interleaved timing rounds (default 3).")
    add_common_args(p, threads=2)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    report = start_report(NAME, argv, threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="latency-bench-") as tmp:
        path = Path(args.table) if args.table else profile.profile("local", None, log=log, threads=args.threads)
        table = latency.load_table(path)
        report.update(table=str(path), profile_s=table.get("profile_s"), table_fit=table["fit"], rows=[],
                      guidelines=latency.ms_per_gmac(table))
        files = []
        for name, build in candidates(args.random, args.searchnet):
            for precision in args.precisions:
                path, row = export_one(name, build, precision, table, tmp)
                files.append(path)
                report["rows"].append(row)
                log(f"{name} {precision}: {row['ops']} ops, {row['gmac']} GMAC, predicted {row['predicted_ms']} ms")
        time_rounds(files, report["rows"], args)
        for row in report["rows"]:
            log(f"{row['name']} {row['precision']}: measured {row['measured_min_ms']} ms (min), predicted "
                f"{row['predicted_ms']} ms ({row['err_min_pct']} %)")
        report["summary"] = summary(report["rows"])
    finish_report(report, t0)
    for p in save_results(args.out, NAME, report, markdown):
        log(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
