"""Training throughput with the real tf.data pipeline vs. one cached batch, side by side.

    python benchmarks/train_throughput.py [--models smallnet,sid_unet,punet] [--steps N] [--warmup N]
        [--batch B] [--patch P] [--repeats R] [--out benchmarks/results]
    python benchmarks/train_throughput.py --compare precision [--precisions float32,bfloat16] [--psnr_steps N] ...

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

``--compare precision`` times ``train --mixed_precision`` instead: per model, the same step
(built under each policy of ``--precisions``, float32 outputs and loss, loss scaling for
float16) on one cached batch, the precisions interleaved in rotating order each round, so the
ratio float32 time / mixed time compares like with like; the CPU's ISA flags (AVX512-BF16,
AMX-BF16, ...) are in the provenance. Then each precision trains ``--psnr_steps`` steps from the
same seed on the real pipeline and is scored on the validation split (mean PSNR). Writes
``train_throughput_precision.json`` / ``.md``.
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
PRECISIONS = ("float32", "bfloat16", "float16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # the x86 extensions that make bfloat16 matmuls/convs faster than float32


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
    p.add_argument("--compare", choices=("pipeline", "precision"), default="pipeline",
                   help="pipeline: real vs streamed vs cached input (default); precision: float32 vs train "
                        "--mixed_precision step time and validation PSNR after equal steps.")
    p.add_argument("--precisions", type=comma_list(PRECISIONS), default="float32,bfloat16",
                   help="With --compare precision: the compute precisions, first the baseline (default: "
                        "float32,bfloat16).")
    p.add_argument("--psnr_steps", type=nonnegative_int, default=200,
                   help="With --compare precision: training steps per precision before the validation PSNR "
                        "(0: skip; default 200).")
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


# --- Precision comparison (train --mixed_precision) --------------------------------------------

def _precision_setup(name: str, args, split):
    # lazy: TensorFlow start-up only once a model is measured (argument errors come first)
    from tflite_isp.data import layouts
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.train import loop
    from tflite_isp.train.config import TrainConfig, resolve
    from tflite_isp.train.losses import make_loss, parse_loss

    recipe = recipes.load_recipe(name)
    explicit = tuple(k for k in ("batch", "patch") if getattr(args, k) is not None)
    cfg = resolve(TrainConfig(model=name, seed=args.seed, explicit=explicit,
                              **{k: getattr(args, k) for k in explicit}), recipe)
    multiple = architectures.input_multiple(recipe.model)
    loop.check(cfg, multiple, recipe)
    layouts.input_levels(split, recipe.input)
    return recipe, cfg, multiple, make_loss(parse_loss(cfg.loss), vgg_weights=cfg.vgg_weights, patch=cfg.patch)


def _precision_trainer(recipe, cfg, loss_fn, precision_name: str, total_steps: int):
    """(model, compiled step) as ``train --mixed_precision`` builds them (float32: no policy), from ``cfg.seed``."""
    from tflite_isp.core.tf import keras, tf
    from tflite_isp.nets import architectures
    from tflite_isp.train import loop, objectives, precision

    mixed = None if precision_name == "float32" else precision_name
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope(), precision.policy(mixed):
        model = precision.float32_outputs(architectures.build(recipe.model, name=recipe.name, cfa=recipe.input.cfa))
        optimizer = precision.wrap_optimizer(keras.optimizers.Adam(learning_rate=loop.schedule(cfg, total_steps)),
                                             mixed)
    objective = objectives.Plain(model, loss_fn)
    return objective, loop._train_step(strategy, objective, optimizer)


def measure_precisions(name: str, args, data) -> dict:
    """Per precision: median step time on one cached batch over interleaved rounds; then validation PSNR after
    ``--psnr_steps`` steps on the real pipeline from the same seed."""
    from tflite_isp.core.tf import tf
    from tflite_isp.data import pipeline
    from tflite_isp.train import loop

    layout, root, split, val = data
    recipe, cfg, multiple, loss_fn = _precision_setup(name, args, split)
    strategy = tf.distribute.get_strategy()

    def batches(one: bool, seed: int):
        def dataset_fn(ctx):
            return pipeline.training_dataset(split, recipe.input, patch=cfg.patch, batch=cfg.batch, augment=True,
                                             seed=seed, cache_one_batch=one)
        return iter(strategy.distribute_datasets_from_function(dataset_fn))

    def run_steps(step, it, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            loss = float(step(it))
            if not math.isfinite(loss):
                raise UserError(f"{name}: loss became {loss} during the benchmark")
        return time.perf_counter() - t0

    steps_of, its, compile_s = {}, {}, {}
    for prec in args.precisions:
        _, steps_of[prec] = _precision_trainer(recipe, cfg, loss_fn, prec, 10 ** 6)
        its[prec] = batches(True, cfg.seed)  # the same batch for every precision
        compile_s[prec] = run_steps(steps_of[prec], its[prec], 1)
    probe = run_steps(steps_of[args.precisions[0]], its[args.precisions[0]], 2) / 2
    n = args.steps or int(min(500, max(3, math.ceil(args.round_seconds / probe))))
    warmup = args.warmup if args.warmup is not None else int(min(20, max(1, math.ceil(1.0 / probe))))
    log(f"[{name}] batch {cfg.batch}, patch {cfg.patch}: {warmup} warm-up + {n} timed steps per precision, "
        f"{args.repeats} round(s) of {', '.join(args.precisions)}")
    rounds = []
    for r in range(args.repeats):
        k = r % len(args.precisions)
        row = {"round": r + 1, "order": args.precisions[k:] + args.precisions[:k]}
        for prec in row["order"]:
            run_steps(steps_of[prec], its[prec], warmup)
            row[f"{prec}_step_s"] = run_steps(steps_of[prec], its[prec], n) / n
            log(f"[{name}] round {r + 1}/{args.repeats} {prec:8s}: {row[f'{prec}_step_s'] * 1000:.1f} ms/step, "
                f"{cfg.batch / row[f'{prec}_step_s']:.1f} patches/s")
        rounds.append(row)
    del its, steps_of
    gc.collect()

    base = args.precisions[0]
    result = {"model": recipe.name, "batch": cfg.batch, "patch": cfg.patch, "loss": cfg.loss, "steps": n,
              "warmup": warmup, "psnr_steps": args.psnr_steps, "baseline": base, "precisions": {}, "rounds": rounds}
    for prec in args.precisions:
        t = statistics.median(r[f"{prec}_step_s"] for r in rounds)
        result["precisions"][prec] = {"step_s": t, "patches_per_s": cfg.batch / t, "compile_s": compile_s[prec]}
    t_base = result["precisions"][base]["step_s"]
    for prec, entry in result["precisions"].items():
        entry["speedup"] = t_base / entry["step_s"]
        ratios = [r[f"{base}_step_s"] / r[f"{prec}_step_s"] for r in rounds]
        entry["speedup_rounds_min"], entry["speedup_rounds_max"] = min(ratios), max(ratios)
    if args.psnr_steps:
        val_data = pipeline.eval_dataset(val, recipe.input, multiple=multiple, max_size=1024)
        for prec in args.precisions:
            objective, step = _precision_trainer(recipe, cfg, loss_fn, prec, args.psnr_steps)
            run_steps(step, batches(False, cfg.seed), args.psnr_steps)
            psnr, _ = loop._evaluate(loop._evaluator(objective.predict, recipe.input), val_data)
            result["precisions"][prec]["val_psnr"] = psnr
            log(f"[{name}] {prec}: validation PSNR {psnr:.2f} dB after {args.psnr_steps} steps")
            del objective, step
            gc.collect()
    for prec, entry in result["precisions"].items():
        if "val_psnr" in entry:
            entry["psnr_delta_db"] = entry["val_psnr"] - result["precisions"][base]["val_psnr"]
        log(f"[{name}] {prec}: {entry['patches_per_s']:.1f} patches/s, x{entry['speedup']:.2f} vs {base}"
            + (f", PSNR {entry['psnr_delta_db']:+.2f} dB" if "psnr_delta_db" in entry else ""))
    return result


def precision_table(report: dict) -> list:
    rows = []
    for r in report["results"]:
        for prec, e in r["precisions"].items():
            rows.append([r["model"], r["batch"], r["patch"], prec, f"{e['patches_per_s']:.2f}",
                         f"{e['speedup']:.2f} ({e['speedup_rounds_min']:.2f} .. {e['speedup_rounds_max']:.2f})",
                         f"{e['val_psnr']:.2f}" if "val_psnr" in e else "–",
                         f"{e['psnr_delta_db']:+.2f}" if "psnr_delta_db" in e else "–"])
    return md_table(["model", "batch", "patch", "precision", "patches/s", "speed vs baseline (rounds)",
                     "val PSNR dB", "Δ PSNR dB"], rows, "lrrlrrrr")


def precision_markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    isa = report["provenance"].get("isa_flags") or []
    bf16 = [f for f in BF16_FLAGS if f in isa]
    lines = ["# Training throughput: float32 vs train --mixed_precision", "", *header(report), "",
             *precision_table(report), "",
             f"- bfloat16 hardware: {', '.join(bf16) if bf16 else 'none (no avx512_bf16 / amx_bf16 flag)'}; the "
             "issue's target (>= 1.8x for the U-Nets, PSNR within 0.1 dB) applies to CPUs with AMX or AVX512-BF16.",
             f"- Machine: {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores, TensorFlow "
             f"{m['tensorflow']}; load average {report['load_average_start']} at start, "
             f"{report['load_average_end']} at end.",
             f"- Step time: the median per-step time of one cached batch over {s['repeats']} round(s), the "
             "precisions interleaved in rotating order in this one process; speed = baseline time / this time.",
             f"- PSNR: each precision trained {s['psnr_steps']} steps from seed {s['seed']} on the real pipeline "
             "(augmented), then the mean PSNR over the validation split."]
    return "\n".join(lines) + "\n"


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
    if args.compare == "precision":
        return precision_main(args, argv, data, t0)

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


def precision_main(args, argv, data, t0) -> int:
    from tflite_isp.data import layouts

    layout, root, split = data
    val = layouts.open_split(layout, root, layouts.validation_split(layout, root))
    tf_info = tensorflow_info()
    report = start_report(
        NAME, argv, threads=f"TensorFlow intra-op {tf_info['intra_op_threads'] or 'default (every core)'}",
        machine=tf_info, data=data_info(layout, root, split),
        settings={"compare": "precision", "models": args.models, "precisions": args.precisions, "steps": args.steps,
                  "warmup": args.warmup, "batch": args.batch, "patch": args.patch, "repeats": args.repeats,
                  "psnr_steps": args.psnr_steps, "seed": args.seed, "statistic": "median per-step time over rounds"},
        results=[])
    log(provenance_line(report))
    name = f"{NAME}_precision"
    for i, model in enumerate(args.models, start=1):
        log_step(i, len(args.models), f"model {model}", t0)
        report["results"].append(measure_precisions(model, args, (layout, root, split, val)))
        save_results(args.out, name, report, precision_markdown)
    finish_report(report, t0)
    paths = save_results(args.out, name, report, precision_markdown)
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, paths))}")
    print("\n".join(precision_table(report)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
