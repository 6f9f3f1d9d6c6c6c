"""``python -m tflite_isp.train``: train a recipe's network on RAW-RGB pairs.

With no arguments: Smallnet on the embedded ISP set (generated on first use), the recipe's
short CPU schedule. A run directory gets the resolved recipe, checkpoints (atomic, for
``--resume``), the best weights by validation PSNR, metrics JSON and TensorBoard logs.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from absl import flags

from tflite_isp.core import atomic, cli
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.progress import Progress
from tflite_isp.core.metrics import psnr, ssim
from tflite_isp.data import layouts
from tflite_isp.train import channel_prune
from tflite_isp.nets import recipes

STRATEGIES = ("default", "mirrored", "multi_worker")
LR_SCHEDULES = ("constant", "cosine", "step")

FLAGS = flags.FLAGS
flags.DEFINE_enum("task", None, ["isp", "lowlight"], "Task of the default data (default: the recipe's task).")
flags.DEFINE_integer("epochs", None, "Epochs (default: recipe).")
flags.DEFINE_integer("steps_per_epoch", None, "Optimizer steps per epoch (default: recipe).")
flags.DEFINE_integer("batch", None, "Global batch size (default: recipe).")
flags.DEFINE_integer("patch", None, "Training crop in RAW pixels; the packed input is half of it (default: recipe).")
flags.DEFINE_float("lr", None, "Peak learning rate (default: recipe).")
flags.DEFINE_enum("lr_schedule", None, list(LR_SCHEDULES), "Learning-rate schedule (default: recipe).")
flags.DEFINE_float("lr_min", None, "Final learning rate of the cosine schedule.")
flags.DEFINE_string("loss", None, "Weighted sum of terms, e.g. 'l1:1,ssim:0.2' (l1, mse, charbonnier, ssim, "
                                  "ms_ssim, vgg).")
flags.DEFINE_string("vgg_weights", None, "Local Keras VGG-19 weights (.h5, no top) for the vgg loss term.")
flags.DEFINE_float("width_multiplier", None, "U-Net channel width multiplier.")
flags.DEFINE_boolean("separable", None, "U-Net with depthwise-separable convolutions.")
flags.DEFINE_boolean("augment", None, "Phase-true flips/rotations/transposes (default: recipe).")
flags.DEFINE_integer("checkpoint_every", None, "Steps between checkpoints (default: recipe).")
flags.DEFINE_integer("cache_mb", 1024, "Decode the training split once into memory when it fits in this many MiB; "
                                      "larger splits stream from disk (0: always stream).")
flags.DEFINE_integer("val_max_size", 1024, "Largest validation crop in RAW pixels (bounds eval time).")
flags.DEFINE_boolean("resume", False, "Continue the run in --out (or the newest run) from its last checkpoint.")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_string("init_from", None, "Start from this run's weights (and its recipe, unless --model is given).")
flags.DEFINE_float("prune_sparsity", None, "Magnitude pruning (tfmot) of conv/dense kernels to this sparsity, "
                                           "stripped before model.keras is saved.")
flags.DEFINE_string("teacher", None, "Distil from this trained run (its input convention is adopted).")
flags.DEFINE_float("distill_alpha", 0.5, "Weight of the teacher-output term (task term: 1 - alpha); with "
                                         "--joint_large_head, of the small head's loss against the large head.")
flags.DEFINE_float("distill_features", 0.0, "Weight of the feature term (student's last features through a 1x1 "
                                            "adapter vs the teacher's).")
flags.DEFINE_float("joint_large_head", None, "ENERZAi-style joint training: a second U-Net decoder this many times "
                                             "wider on the shared encoder, detached before saving.")
flags.DEFINE_string("channel_prune", None, "Structured channel pruning of this trained run (see channel_prune).")
flags.DEFINE_float("prune_psnr_drop", 0.3, "Channel pruning stops before validation PSNR falls this many dB below "
                                         "the unpruned model's.")
flags.DEFINE_float("prune_step", 0.1, "Fraction of the remaining prunable channels removed per pruning round.")
flags.DEFINE_integer("prune_rounds", 10, "Most pruning rounds (each fine-tunes for --steps_per_epoch steps).")


@dataclass
class TrainConfig:
    model: str = "smallnet"
    data: str | None = None
    task: str | None = None
    epochs: int = 10
    steps_per_epoch: int = 100
    batch: int = 8
    patch: int = 256
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    lr_min: float = 1e-5
    lr_step_at: float = 0.5
    loss: str = "l1"
    vgg_weights: str | None = None
    width_multiplier: float | None = None
    separable: bool | None = None
    augment: bool = True
    checkpoint_every: int = 100
    val_max_size: int = 1024
    cache_mb: int = 1024
    resume: bool = False
    out: str | None = None
    strategy: str = "default"
    seed: int = 0
    bad_files: str = "fail"
    optimizer: str = "adam"
    init_from: str | None = None
    prune_sparsity: float | None = None
    teacher: str | None = None
    distill_alpha: float = 0.5
    distill_features: float = 0.0
    joint_large_head: float | None = None
    channel_prune: str | None = None
    prune_psnr_drop: float = 0.3
    prune_step: float = 0.1
    prune_rounds: int = 10
    explicit: tuple = field(default=(), repr=False)  # flags the user set (win over the recipe)


def config_from_flags() -> TrainConfig:
    names = [f.name for f in TrainConfig.__dataclass_fields__.values() if f.name in FLAGS]
    explicit = tuple(n for n in names if FLAGS[n].present)
    values = {n: FLAGS[n].value for n in names if FLAGS[n].value is not None}
    return TrainConfig(**values, explicit=explicit)


def resolve(config: TrainConfig, recipe) -> TrainConfig:
    """Recipe's [train] values fill in every setting the user did not set explicitly."""
    values = asdict(config)
    for key, value in recipe.train.items():
        if key in values and key not in config.explicit:
            values[key] = value
    return TrainConfig(**values)

# --- Side-effect helpers ------------------------------------------------------------------


def _newest_run(root=Path("runs")) -> Path:
    runs = sorted((p for p in root.glob("*") if (p / "checkpoints" / "checkpoint").is_file()),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise fail(root, "--resume found no run with checkpoints; pass --out RUN_DIR")
    return runs[-1]


def _make_strategy(name: str):
    from tflite_isp.core.tf import tf

    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError("--strategy=multi_worker needs TF_CONFIG (cluster spec and this worker's task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _worker(strategy):
    """(is_chief, task_id) of this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True, 0
    task_id = resolver.task_id or 0
    return (resolver.task_type == "chief" or (resolver.task_type == "worker" and task_id == 0)), task_id


def _schedule(cfg: TrainConfig, total_steps: int):
    from tflite_isp.core.tf import keras

    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg.lr, total_steps, alpha=min(cfg.lr_min / cfg.lr, 1.0))
    if cfg.lr_schedule == "step":
        return keras.optimizers.schedules.PiecewiseConstantDecay([int(total_steps * cfg.lr_step_at)],
                                                                 [cfg.lr, cfg.lr / 10])
    return cfg.lr


def _check(cfg: TrainConfig, multiple: int, recipe) -> None:
    if cfg.patch <= 0 or cfg.patch % (2 * multiple):
        raise UserError(f"--patch {cfg.patch} is not divisible by {2 * multiple}: {recipe.name} needs a packed "
                        f"input divisible by {multiple}")
    for name in ("epochs", "steps_per_epoch", "batch", "checkpoint_every"):
        if getattr(cfg, name) <= 0:
            raise UserError(f"--{name} must be positive, not {getattr(cfg, name)}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise UserError(f"lr_schedule must be one of {LR_SCHEDULES}, not {cfg.lr_schedule!r}")
    from tflite_isp.train import objectives, sparsity

    if cfg.prune_sparsity is not None:
        sparsity.check(cfg.prune_sparsity)
    objectives.validate(recipe.model, teacher=bool(cfg.teacher), alpha=cfg.distill_alpha,
                        features=cfg.distill_features, large=cfg.joint_large_head)


def _data_source(cfg: TrainConfig, recipe):

    task = cfg.task or recipe.task
    layout, root = layouts.parse_data_flag(cfg.data or f"embedded:{task}")
    implied = "lowlight" if layout == "sid" else "isp"
    if cfg.task and cfg.task != implied:
        raise UserError(f"--task {cfg.task} does not match --data {layout}, which is a {implied} layout")
    return layout, root

# --- Training -----------------------------------------------------------------------------


def run(cfg: TrainConfig) -> dict:
    """Train per ``cfg``; returns the final metrics dictionary (also written to metrics.json)."""

    if cfg.channel_prune:
        return _channel_prune(cfg)
    strategy = _make_strategy(cfg.strategy)  # must come before any other TensorFlow op
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.nets import architectures
    from tflite_isp.train import objectives, sparsity
    from tflite_isp.core.tf import keras, tf
    from tflite_isp.train.losses import make_loss, parse_loss
    from tflite_isp.nets.stats import count_macs, count_params

    is_chief, task_id = _worker(strategy)

    if cfg.resume:
        run_dir = Path(cfg.out) if cfg.out else _newest_run()
        saved = run_dir / "recipe.json"
        if not saved.is_file() or not (run_dir / "checkpoints" / "checkpoint").is_file():
            raise fail(run_dir, "cannot resume: no recipe.json and checkpoints in this run directory")
        recipe = recipes.load_recipe(saved)
        if "model" in cfg.explicit and recipes.load_recipe(cfg.model).name != recipe.name:
            raise fail(run_dir, f"cannot resume: this run trains {recipe.name}, not {cfg.model}")
        stored = json.loads((run_dir / "run.json").read_text())["config"]
        stored.update({k: getattr(cfg, k) for k in cfg.explicit if k not in ("model", "resume")})
        cfg = TrainConfig(**{**stored, "resume": True, "out": str(run_dir), "explicit": cfg.explicit})
    else:
        recipe = _base_recipe(cfg)
        cfg = resolve(cfg, recipe)
        run_dir = Path(cfg.out or f"runs/{recipe.name}{_tag(cfg)}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run_dir / "checkpoints" / "checkpoint").is_file():
            raise fail(run_dir, "run directory already has checkpoints; pass --resume or another --out")

    try:
        multiple = architectures.input_multiple(recipe.model)
        full_hd = architectures.build(recipe.model, height=544, width=960, batch=1)  # also checks every model setting
    except ValueError as err:
        raise fail(recipe.source or recipe.name, str(err)) from None
    _check(cfg, multiple, recipe)
    terms = parse_loss(cfg.loss)
    loss_fn = make_loss(terms, vgg_weights=cfg.vgg_weights, patch=cfg.patch)
    layout, root = _data_source(cfg, recipe)
    data_task = "lowlight" if layout == "sid" else "isp"
    if recipe.task != data_task:  # e.g. SID's U-Net trained on ISP pairs is an ISP model from now on
        recipe = replace(recipe, task=data_task)
    train_split = layouts.open_split(layout, root, "train", on_bad=cfg.bad_files)
    val_name = layouts.validation_split(layout, root)
    if val_name != "val":
        log(is_chief, f"{layout}:{root} has no val split; validating on {val_name}")
    val_split = layouts.open_split(layout, root, val_name, on_bad=cfg.bad_files)
    layouts.input_levels(train_split, recipe.input)  # fail early on a normalisation mismatch

    run_dir.mkdir(parents=True, exist_ok=True)
    if is_chief:
        resolved = {**recipe.to_dict(), "train": {**recipe.train, **_train_section(cfg)}}
        settings = {k: v for k, v in asdict(cfg).items() if k != "explicit"}
        atomic.write_json(run_dir / "recipe.json", resolved)
        atomic.write_json(run_dir / "run.json", {"config": settings, "data": {"layout": layout, "root": str(root)}})
        atomic.write_json(run_dir / "data_report.json", {"train": train_split.report(), "val": val_split.report()})

    total_steps = cfg.epochs * cfg.steps_per_epoch
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        objective = _objective(cfg, recipe, loss_fn, total_steps)
        model = objective.model
        optimizer = keras.optimizers.Adam(learning_rate=_schedule(cfg, total_steps))
        best_psnr = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best_psnr")
    optimizer.build(objective.variables)  # so a restore fills the slots before the first step
    pruning = sparsity.StepUpdater(model) if cfg.prune_sparsity else None
    ckpt = tf.train.Checkpoint(model=model, extra=objective.extra, optimizer=optimizer, best_psnr=best_psnr)
    ckpt_dir = run_dir / "checkpoints" if is_chief else run_dir / f".worker{task_id}-checkpoints"
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=2)
    start_step = 0
    if cfg.resume:
        ckpt.restore(manager.latest_checkpoint).expect_partial()
        start_step = int(optimizer.iterations.numpy())
        log(is_chief, f"resumed {run_dir} from step {start_step}")

    def dataset_fn(ctx):
        return pipeline.training_dataset(
            train_split, recipe.input, patch=cfg.patch, batch=ctx.get_per_replica_batch_size(cfg.batch),
            augment=cfg.augment, seed=cfg.seed + start_step, num_shards=ctx.num_input_pipelines,
            shard_index=ctx.input_pipeline_id, cache_bytes=cfg.cache_mb << 20)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    val_data = pipeline.eval_dataset(val_split, recipe.input, multiple=multiple, max_size=cfg.val_max_size)

    @tf.function
    def train_step(it):
        def step_fn(x, y):
            with tf.GradientTape() as tape:
                loss = objective.loss(x, y)
                scaled = loss / strategy.num_replicas_in_sync  # the optimizer sums across replicas
            grads = tape.gradient(scaled, objective.variables)
            optimizer.apply_gradients(zip(grads, objective.variables))
            return loss
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(step_fn, args=next(it)), axis=None)

    def evaluator(predict):
        @tf.function(reduce_retracing=True)
        def eval_step(x, y):
            p = predict(x)
            return psnr(y, p), ssim(y, p)
        return eval_step

    eval_step = evaluator(objective.predict)

    macs = count_macs(full_hd)
    metrics = _load_metrics(run_dir) if cfg.resume else {"epochs": []}
    metrics.update({"model": recipe.name, "parameters": count_params(full_hd), "macs_full_hd": macs,
                    "loss": cfg.loss, "total_steps": total_steps, **_compression(cfg)})
    if cfg.resume:
        metrics.setdefault("resumed_from", []).append(start_step)
    writer = tf.summary.create_file_writer(str(run_dir / "logs")) if is_chief else tf.summary.create_noop_writer()
    log(is_chief, f"training {recipe.name} ({metrics['parameters']:,} parameters, {macs / 1e9:.2f} GMAC at "
                  f"544x960x4) on {layout}:{root} ({len(train_split.pairs)} train / {len(val_split.pairs)} val "
                  f"pairs), {total_steps} steps of batch {cfg.batch}, patch {cfg.patch}, in sync on "
                  f"{strategy.num_replicas_in_sync} replica{'s' if strategy.num_replicas_in_sync > 1 else ''}, "
                  f"run dir {run_dir}")

    step = start_step
    try:
        while step < total_steps:
            epoch = step // cfg.steps_per_epoch
            end = min((epoch + 1) * cfg.steps_per_epoch, total_steps)
            bar = Progress(end - epoch * cfg.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", enabled=is_chief)
            t0, seen, losses = time.perf_counter(), 0, []
            while step < end:
                if pruning:
                    pruning.before_step()
                loss = float(train_step(iterator))
                step += 1
                seen += cfg.batch
                losses.append(loss)
                if not math.isfinite(loss):
                    raise UserError(f"loss became {loss} at step {step}; lower --lr")
                rate = seen / (time.perf_counter() - t0)
                bar.update(step - epoch * cfg.steps_per_epoch, loss=loss, **{"patch/s": rate}, lr=_lr(optimizer))
                with writer.as_default(step=step):
                    tf.summary.scalar("train/loss", loss)
                if step % cfg.checkpoint_every == 0 and step < end:  # the epoch's end saves after validation
                    manager.save(checkpoint_number=step)
            elapsed = time.perf_counter() - t0
            bar.close()
            if pruning:
                pruning.end_epoch()
            v_psnr, v_ssim = _evaluate(eval_step, val_data)
            improved = v_psnr > float(best_psnr.numpy())
            if improved:
                best_psnr.assign(v_psnr)
                if is_chief:
                    _save_weights(model, run_dir / "best.weights.h5")
            manager.save(checkpoint_number=step)
            row = {"epoch": epoch + 1, "step": step, "loss": sum(losses) / len(losses), "val_psnr": v_psnr,
                   "val_ssim": v_ssim, "patches_per_s": seen / elapsed, "seconds": elapsed, "best": improved}
            metrics["epochs"].append(row)
            metrics["best"] = {"val_psnr": float(best_psnr.numpy())}
            with writer.as_default(step=step):
                tf.summary.scalar("val/psnr", v_psnr)
                tf.summary.scalar("val/ssim", v_ssim)
                tf.summary.scalar("train/patches_per_s", row["patches_per_s"])
            writer.flush()
            if is_chief:
                atomic.write_json(run_dir / "metrics.json", metrics)
            log(is_chief, f"epoch {epoch + 1}: loss {row['loss']:.4f}  val PSNR {v_psnr:.2f} dB  SSIM {v_ssim:.4f}"
                          f"  {row['patches_per_s']:.1f} patch/s{'  (best)' if improved else ''}")
    except tf.errors.OpError as err:
        lines = [ln.strip() for ln in err.message.splitlines() if ln.strip()]
        detail = next((ln for ln in reversed(lines) if not ln.startswith(("Detected at", "[[", "File "))), "")
        raise UserError(f"training failed in TensorFlow: {detail or type(err).__name__}") from None
    except KeyboardInterrupt:
        log(is_chief, f"\ninterrupted at step {step}; continue with: "
                      f"python -m tflite_isp.train --resume --out {run_dir}")
        raise SystemExit(130) from None

    if is_chief:
        if (run_dir / "best.weights.h5").is_file():
            model.load_weights(str(run_dir / "best.weights.h5"))
        if isinstance(objective, objectives.Joint):
            large_psnr, _ = _evaluate(evaluator(objective.predict_large), val_data)
            metrics["joint"] = {"large_head_val_psnr": large_psnr}
        final = objective.deployable(sparsity.strip(model) if cfg.prune_sparsity else model)
        if cfg.prune_sparsity:
            metrics["prune_sparsity_achieved"] = sparsity.kernel_sparsity(final)
        _save_model(final, run_dir / "model.keras")
        metrics["finished"] = True
        atomic.write_json(run_dir / "metrics.json", metrics)
        log(True, f"done: best val PSNR {metrics['best']['val_psnr']:.2f} dB; model {run_dir / 'model.keras'}")
    else:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    metrics["run_dir"] = str(run_dir)
    return metrics


def _finished_run(path) -> Path:
    run = Path(path)
    if not (run / "recipe.json").is_file() or not (run / "model.keras").is_file():
        raise fail(run, "not a finished run directory (needs recipe.json and model.keras from python -m "
                        "tflite_isp.train)")
    return run


def _base_recipe(cfg: TrainConfig):
    """The recipe to train: --model, or --init_from's run; with a teacher's input convention under --teacher."""

    if cfg.init_from and "model" not in cfg.explicit:
        recipe = recipes.load_recipe(_finished_run(cfg.init_from) / "recipe.json")
    else:
        recipe = recipes.load_recipe(cfg.model)
    recipe = recipe.with_model(width_multiplier=cfg.width_multiplier, separable=cfg.separable)
    if cfg.teacher:
        teacher = recipes.load_recipe(_finished_run(cfg.teacher) / "recipe.json")
        recipe = replace(recipe, input=teacher.input, task=teacher.task)
    return recipe


def _objective(cfg: TrainConfig, recipe, loss_fn, total_steps: int):
    """Build the trained model(s) and what the step minimises; --init_from weights copied by layer name."""
    from tflite_isp.nets import architectures
    from tflite_isp.train import objectives, sparsity

    def prune(model):
        if cfg.prune_sparsity is None:
            return model
        return sparsity.wrap(model, sparsity=cfg.prune_sparsity, begin_step=int(0.1 * total_steps),
                             end_step=int(0.8 * total_steps))

    if cfg.joint_large_head:
        objective = objectives.Joint(recipe.model, loss_fn, large=cfg.joint_large_head, alpha=cfg.distill_alpha,
                                     name=recipe.name)
        model = objective.model
    else:
        model = architectures.build(recipe.model, name=recipe.name)
    if cfg.init_from:
        source = architectures.load(_finished_run(cfg.init_from) / "model.keras")
        try:
            architectures.copy_weights(source, model, missing_ok=cfg.joint_large_head is not None)
        except ValueError as err:
            raise fail(cfg.init_from, f"cannot start from this run: {err}") from None
    if cfg.joint_large_head:
        objective.model = prune(model)
        return objective
    if cfg.teacher:
        teacher = architectures.load(_finished_run(cfg.teacher) / "model.keras")
        return objectives.Distill(prune(model), loss_fn, teacher, alpha=cfg.distill_alpha,
                                  features=cfg.distill_features)
    return objectives.Plain(prune(model), loss_fn)


def _channel_prune(cfg: TrainConfig) -> dict:
    """--channel_prune RUN: the source run's recipe and weights, pruned round by round into a new run."""
    from tflite_isp.nets import architectures

    clash = [f"--{k}" for k in ("resume", "teacher", "joint_large_head", "prune_sparsity", "init_from")
             if getattr(cfg, k)]
    if clash:
        raise UserError(f"--channel_prune does not combine with {', '.join(clash)}")
    source = _finished_run(cfg.channel_prune)
    recipe = recipes.load_recipe(source / "recipe.json")
    return channel_prune.run(resolve(cfg, recipe), source, recipe, architectures.load(source / "model.keras"))


def _compression(cfg: TrainConfig) -> dict:
    keys = ("init_from", "prune_sparsity", "teacher", "distill_alpha", "distill_features", "joint_large_head")
    used = {k: getattr(cfg, k) for k in keys if getattr(cfg, k) not in (None, 0.0)}
    if not (cfg.teacher or cfg.joint_large_head):
        used.pop("distill_alpha", None)
    return {"compression": used} if used else {}


def _tag(cfg: TrainConfig) -> str:
    """Run-directory suffix naming the compression used."""
    if cfg.joint_large_head:
        return "-joint"
    if cfg.teacher:
        return "-distilled"
    if cfg.prune_sparsity:
        return f"-sparse{round(100 * cfg.prune_sparsity)}"
    return ""


def _train_section(cfg: TrainConfig) -> dict:
    keep = ("loss", "batch", "patch", "epochs", "steps_per_epoch", "optimizer", "lr", "lr_schedule", "lr_min",
            "lr_step_at", "augment", "checkpoint_every", "seed")
    return {k: getattr(cfg, k) for k in keep}


def _lr(optimizer) -> float:
    from tflite_isp.core.tf import tf

    lr = optimizer.learning_rate
    lr = lr(optimizer.iterations) if callable(lr) else lr
    return float(tf.identity(lr).numpy())


def _evaluate(eval_step, data) -> tuple:
    psnrs, ssims = [], []
    for x, y in data:
        p, s = eval_step(x, y)
        psnrs += p.numpy().tolist()
        ssims += s.numpy().tolist()
    return sum(psnrs) / len(psnrs), sum(ssims) / len(ssims)


def _load_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {"epochs": []}


def _save_weights(model, path: Path) -> None:
    with atomic.replacing(path) as tmp:
        model.save_weights(str(tmp))


def _save_model(model, path: Path) -> None:
    with atomic.replacing(path) as tmp:
        model.save(str(tmp))


def log(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def main(argv) -> int:
    def body(_):
        if len(argv) > 1:
            raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
        run(config_from_flags())

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
