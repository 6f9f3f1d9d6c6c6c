"""Training throughput with the real tf.data pipeline vs. one cached batch, side by side.

    python benchmarks/train_throughput.py [--models smallnet,sid_unet,punet] [--steps N] [--warmup N]
        [--batch B] [--patch P] [--repeats R] [--out benchmarks/results]

For each model (the recipe's batch, patch and loss unless overridden) one compiled
``@tf.function`` train step of the same form as ``tflite_isp.train`` (forward, loss,
gradient, Adam apply, through the default ``tf.distribute`` strategy) is fed two ways:

* ``real``: ``pipeline.training_dataset(..., augment=True)`` as train.py calls it (a split
  that fits the cache budget is decoded once into memory, then cropped and augmented);
* ``streamed``: the same with ``cache_bytes=0``: every element decodes its files, as a
  dataset too large for memory would be;
* ``cached``: the same call with ``cache_one_batch=True`` (the first batch repeated forever).

All run in this one process, interleaved in ``--repeats`` rounds (the order rotates each
round, so slow drift of a shared machine falls on every mode alike). Each
measurement gets a fresh iterator, untimed warm-up steps, then ``--steps`` timed steps,
each step synchronised by reading the loss as train.py does. Per mode the median per-step
time over the rounds gives the throughput, and

    pipeline overhead = (t_real - t_cached) / t_cached

is the share of training time the input pipeline costs (the issue's target: <= 10 %).

Writes ``train_throughput.json`` (everything, per round) and ``train_throughput.md`` (a
table) to ``--out``, each atomically, after every model.
"""
from __future__ import annotations

import gc
import json
import math
import statistics
import sys
import time
from pathlib import Path

from bench_common import (
    add_common_args,
    comma_list,
    finish_report,
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
    start_report,
    tensorflow_info,
)

from tflite_isp.core.errors import UserError, run_cli

NAME = "train_throughput"
DEFAULT_MODELS = "smallnet,sid_unet,punet"
MODES = ("real", "streamed", "cached")


def parse_args(argv):
    p = parser(NAME, "Training throughput with the real tf.data pipeline vs. one cached batch (same process, "
                     "interleaved rounds); pipeline overhead = (t_real - t_cached) / t_cached.")
    p.add_argument("--models", type=comma_list(), default=DEFAULT_MODELS,
                   help=f"Comma-separated recipes (default: {DEFAULT_MODELS}).")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="Timed steps per measurement (default: enough for about --round-seconds, 5..500).")
    p.add_argument("--warmup", type=nonnegative_int, default=None,
                   help="Untimed steps on each fresh iterator before timing (default: about 2 s worth, 2..50).")
    p.add_argument("--batch", type=positive_int, default=None, help="Batch size (default: each recipe's).")
    p.add_argument("--patch", type=positive_int, default=None,
                   help="Training crop in RAW pixels (default: each recipe's).")
    p.add_argument("--repeats", type=positive_int, default=5, help="Rounds; each round measures every mode once.")
    p.add_argument("--round-seconds", type=positive_float, default=6.0,
                   help="Target length of one timed measurement when --steps is not given (default: 6).")
    p.add_argument("--data", default="embedded:isp",
                   help="Training data as in train.py: LAYOUT:PATH or embedded:isp|lowlight (default: embedded:isp).")
    add_common_args(p, seed=0)
    return p.parse_args(argv)


# --- Data description ------------------------------------------------------------------------

def data_info(layout, root, split) -> dict:
    info = {"layout": layout, "root": str(root), "split": split.name, "pairs": len(split.pairs),
            "raw_format": split.raw_format, "pattern": split.pattern}
    if split.raw_format == "png":
        from tflite_isp.data.layouts import png_header

        w, h, depth, _ = png_header(split.pairs[0].raw)
        info["raw_size"] = f"{w}x{h} {depth}-bit PNG"
    manifest = Path(root) / "MANIFEST.json"
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            info["generator"] = m.get("generator")
        except ValueError:
            pass
    return info


# --- Measurement -----------------------------------------------------------------------------

def measure_model(name: str, args, data) -> dict:
    # lazy: TensorFlow start-up only once a model is measured (argument errors come first)
    from tflite_isp.core.tf import keras, tf
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.nets.stats import count_macs, count_params
    from tflite_isp.train import loop
    from tflite_isp.train.config import TrainConfig, resolve
    from tflite_isp.train.losses import make_loss, parse_loss

    layout, root, split = data
    recipe = recipes.load_recipe(name)
    explicit = tuple(k for k in ("batch", "patch") if getattr(args, k) is not None)
    cfg = resolve(TrainConfig(model=name, seed=args.seed, explicit=explicit,
                              **{k: getattr(args, k) for k in explicit}), recipe)
    multiple = architectures.input_multiple(recipe.model)
    loop.check(cfg, multiple, recipe)
    loss_fn = make_loss(parse_loss(cfg.loss), vgg_weights=cfg.vgg_weights, patch=cfg.patch)
    layouts.input_levels(split, recipe.input)  # fails early on a normalisation mismatch

    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = architectures.build(recipe.model, name=recipe.name)
        optimizer = keras.optimizers.Adam(learning_rate=loop.schedule(cfg, cfg.epochs * cfg.steps_per_epoch))
    optimizer.build(model.trainable_variables)
    params = count_params(model)
    packed = cfg.patch // 2
    macs = count_macs(architectures.build(recipe.model, height=packed, width=packed, batch=1))

    @tf.function
    def train_step(it):  # the form of train.py's train_step
        def step_fn(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
                scaled = loss / strategy.num_replicas_in_sync
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(step_fn, args=next(it)), axis=None)

    def make_iterator(mode: str, round_index: int):
        def dataset_fn(ctx):
            return pipeline.training_dataset(
                split, recipe.input, patch=cfg.patch, batch=ctx.get_per_replica_batch_size(cfg.batch), augment=True,
                seed=cfg.seed + 1000 * round_index, num_shards=ctx.num_input_pipelines,
                shard_index=ctx.input_pipeline_id, cache_one_batch=(mode == "cached"),
                cache_bytes=0 if mode == "streamed" else pipeline.DEFAULT_CACHE_BYTES)
        return iter(strategy.distribute_datasets_from_function(dataset_fn))

    def run_steps(it, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            loss = float(train_step(it))  # synchronise every step, as train.py does
            if not math.isfinite(loss):
                raise UserError(f"{name}: loss became {loss} during the benchmark")
        return time.perf_counter() - t0

    log(f"[{name}] {params:,} parameters, batch {cfg.batch}, patch {cfg.patch}, loss {cfg.loss}: compiling")
    t0 = time.perf_counter()
    it = make_iterator("cached", -1)
    run_steps(it, 1)  # trace and compile
    compile_s = time.perf_counter() - t0
    probe_n = 3
    probe = run_steps(it, probe_n) / probe_n
    del it
    gc.collect()
    steps = args.steps or int(min(500, max(5, math.ceil(args.round_seconds / probe))))
    warmup = args.warmup if args.warmup is not None else int(min(50, max(2, math.ceil(2.0 / probe))))
    log(f"[{name}] compiled in {compile_s:.1f} s; cached step ~{probe * 1000:.0f} ms -> {steps} timed steps "
        f"after {warmup} warm-up steps, {args.repeats} round(s)")

    rounds = []
    for r in range(args.repeats):
        order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
        row = {"round": r + 1, "order": list(order)}
        for mode in order:
            it = make_iterator(mode, r)
            run_steps(it, warmup)
            elapsed = run_steps(it, steps)
            del it  # stop this iterator's background threads before the other mode runs
            gc.collect()
            row[f"{mode}_step_s"] = elapsed / steps
            log(f"[{name}] round {r + 1}/{args.repeats} {mode:6s}: {steps} steps in {elapsed:.2f} s, "
                f"{elapsed / steps * 1000:.1f} ms/step, {cfg.batch * steps / elapsed:.1f} patches/s")
        row["overhead_pct"] = 100.0 * (row["real_step_s"] - row["cached_step_s"]) / row["cached_step_s"]
        row["overhead_streamed_pct"] = 100.0 * (row["streamed_step_s"] - row["cached_step_s"]) / row["cached_step_s"]
        rounds.append(row)

    t_real = statistics.median(r["real_step_s"] for r in rounds)
    t_cached = statistics.median(r["cached_step_s"] for r in rounds)
    t_streamed = statistics.median(r["streamed_step_s"] for r in rounds)
    overhead = 100.0 * (t_real - t_cached) / t_cached
    overhead_streamed = 100.0 * (t_streamed - t_cached) / t_cached
    per_round = [r["overhead_pct"] for r in rounds]

    # The pipeline alone (no training) at the same batch and patch: how fast it can go with every core.
    ds = pipeline.training_dataset(split, recipe.input, patch=cfg.patch, batch=cfg.batch, augment=True,
                                   seed=cfg.seed + 999)
    pit = iter(ds)
    for _ in range(3):
        next(pit)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min(args.round_seconds, 5.0) or n < 5:
        next(pit)
        n += 1
    pipeline_alone = cfg.batch * n / (time.perf_counter() - t0)
    del pit, ds
    gc.collect()

    result = {
        "model": recipe.name, "params": params, "macs_per_patch": macs, "batch": cfg.batch, "patch": cfg.patch,
        "loss": cfg.loss, "optimizer": "adam", "lr_schedule": cfg.lr_schedule, "steps": steps, "warmup": warmup,
        "compile_s": round(compile_s, 2),
        "traces": train_step.experimental_get_tracing_count(),
        "real_step_s": t_real, "cached_step_s": t_cached,
        "patches_per_s_real": cfg.batch / t_real, "patches_per_s_cached": cfg.batch / t_cached,
        "overhead_pct": overhead,
        "streamed_step_s": t_streamed, "patches_per_s_streamed": cfg.batch / t_streamed,
        "overhead_streamed_pct": overhead_streamed,
        "decoded_in_memory": split.decoded_bytes() <= pipeline.DEFAULT_CACHE_BYTES,
        "overhead_pct_rounds_min": min(per_round), "overhead_pct_rounds_max": max(per_round),
        "pipeline_alone_patches_per_s": pipeline_alone,
        "rounds": rounds,
    }
    log(f"[{name}] real {result['patches_per_s_real']:.1f} patches/s, cached {result['patches_per_s_cached']:.1f} "
        f"patches/s: pipeline overhead {overhead:+.1f} % (rounds {min(per_round):+.1f} .. {max(per_round):+.1f} %); "
        f"pipeline alone {pipeline_alone:.1f} patches/s")
    return result


# --- Output ----------------------------------------------------------------------------------

def _macs(n: int) -> str:
    return f"{n / 1e9:.2f} GMAC" if n >= 1e9 else f"{n / 1e6:.1f} MMAC"


def table(report: dict) -> list:
    return md_table(
        ["model", "params", "batch", "patch", "patches/s cached batch", "patches/s pipeline", "overhead % (rounds)",
         "patches/s streamed", "overhead streamed %"],
        [[r["model"], f"{r['params']:,}", r["batch"], r["patch"], f"{r['patches_per_s_cached']:.1f}",
          f"{r['patches_per_s_real']:.1f}", f"{r['overhead_pct']:+.1f} ({r['overhead_pct_rounds_min']:+.1f} .. "
          f"{r['overhead_pct_rounds_max']:+.1f})", f"{r['patches_per_s_streamed']:.1f}",
          f"{r['overhead_streamed_pct']:+.1f}"] for r in report["results"]],
        "lrrrrrrrr")


def markdown(report: dict) -> str:
    m, d, s = report["machine"], report["data"], report["settings"]
    lines = ["# Training throughput: real tf.data pipeline vs. one cached batch", "", *header(report), "",
             *table(report)]
    lines += [
        "",
        "Overhead = (t_pipeline − t_cached) / t_cached of the median per-step times over the rounds; all modes "
        "ran in this one process, interleaved, so the ratio compares like with like on this machine at this "
        "time. *pipeline* is train.py's default (a split within the 1 GiB cache budget is decoded once into "
        "memory); *streamed* decodes every element's files, as a split too large for memory does. The absolute "
        "patches/s depend on the machine and its load. Target in the issue: ≤ 10 %.",
        "",
        f"- Machine: {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores, "
        f"TensorFlow {m['tensorflow']}, Python {m['python']}"
        + (f", GPUs {', '.join(m['gpus'])}" if m["gpus"] else ", CPU only")
        + f"; load average {report['load_average_start']} at start, {report['load_average_end']} at end.",
        f"- Data: {d['layout']} `{d['root']}`, {d['split']} split, {d['pairs']} pairs"
        + (f", {d['raw_size']}" if d.get("raw_size") else "") + (f" ({d['generator']})" if d.get("generator") else "")
        + "; augment=True.",
        f"- Settings: {s['repeats']} round(s) of (pipeline, streamed, cached), the order rotating each round; "
        "per measurement a fresh iterator, untimed warm-up steps, then timed steps synchronised each step.",
    ]
    for r in report["results"]:
        lines.append(f"- {r['model']}: loss `{r['loss']}`, {r['warmup']} warm-up + {r['steps']} timed steps per "
                     f"measurement, {_macs(r['macs_per_patch'])} per patch forward, pipeline alone "
                     f"{r['pipeline_alone_patches_per_s']:.1f} patches/s.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    t0 = time.perf_counter()
    args = parse_args(argv)

    from tflite_isp.data import layouts
    from tflite_isp.nets import recipes

    for name in args.models:
        recipes.load_recipe(name)  # unknown names fail before any work
    log(f"loading data {args.data}")
    layout, root = layouts.parse_data_flag(args.data)
    split = layouts.open_split(layout, root, "train")
    data = (layout, root, split)

    tf_info = tensorflow_info()
    report = start_report(
        NAME, argv, threads=f"TensorFlow intra-op {tf_info['intra_op_threads'] or 'default (every core)'}, "
                            f"inter-op {tf_info['inter_op_threads'] or 'default'}",
        machine=tf_info, data=data_info(layout, root, split),
        settings={"models": args.models, "steps": args.steps, "warmup": args.warmup, "batch": args.batch,
                  "patch": args.patch, "repeats": args.repeats, "round_seconds": args.round_seconds,
                  "seed": args.seed, "augment": True, "statistic": "median per-step time over rounds"},
        results=[])
    log(provenance_line(report))
    log(f"data: {layout}:{root} ({len(split.pairs)} train pairs)")

    def save():
        return save_results(args.out, NAME, report, markdown)

    for i, name in enumerate(args.models, start=1):
        log_step(i, len(args.models), f"model {name}", t0)
        report["results"].append(measure_model(name, args, data))
        save()
    finish_report(report, t0)
    paths = save()
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, paths))}")
    print("\n".join(table(report)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
