"""The training loop behind ``python -m tflite_isp.train``: ``run(cfg)`` in named phases.

``rundir`` prepares (or resumes) the run directory and opens the data; this module builds the model, optimizer and
checkpointing, runs the compiled steps epoch by epoch (checkpoints, best weights by validation PSNR, metrics.json,
TensorBoard logs) and saves model.keras (float32 whatever ``precision`` trained it in).

TensorFlow is imported at the top, which creates no op and leaves the eager context uninitialised; ``run`` still
makes its tf.distribute strategy before any other TensorFlow op, because MultiWorkerMirroredStrategy has to configure
that context (cluster, collectives) before it starts. Nothing at module level may create a tensor, variable or dataset.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.metrics import psnr, ssim
from tflite_isp.core.progress import Progress
from tflite_isp.core.tf import keras, tf
from tflite_isp.data import pipeline
from tflite_isp.nets import architectures, recipes
from tflite_isp.nets.stats import count_macs, count_params
from tflite_isp.train import channel_prune, objectives, precision, rundir, sparsity
from tflite_isp.train.config import LR_SCHEDULES, TrainConfig, compression, precision_used, resolve
from tflite_isp.train.losses import make_loss, parse_loss
from tflite_isp.train.rundir import Data, finished_run, log


@dataclass
class _Training:
    """What the epochs work on, built by ``_build`` and completed by ``run``."""
    cfg: TrainConfig
    run_dir: Path
    is_chief: bool
    objective: object
    model: object  # the checkpointed Keras model (objective.model)
    optimizer: object
    best_psnr: object  # tf.Variable, checkpointed
    manager: object  # tf.train.CheckpointManager
    ckpt_dir: Path
    pruning: object  # sparsity.StepUpdater or None
    total_steps: int
    step: int  # optimizer steps taken (the restored count on --resume)
    iterator: object = None
    val_data: object = None
    train_step: object = None
    eval_step: object = None
    metrics: dict | None = None
    writer: object = None
    recipe: object = None  # the resolved recipe (its input spec renders validation output)
    keep_last: bool = False  # ship the last weights, not the best by validation PSNR (colourisation)


def run(cfg: TrainConfig) -> dict:
    """Train per ``cfg``; returns the final metrics dictionary (also written to metrics.json)."""
    if cfg.channel_prune:
        return _channel_prune(cfg)
    strategy = _make_strategy(cfg.strategy)  # must come before any other TensorFlow op
    is_chief, task_id = _worker(strategy)
    cfg, recipe, run_dir = rundir.prepare(cfg)
    multiple, full_hd, loss_fn = _check_model(cfg, recipe)
    recipe, data = rundir.open_data(cfg, recipe, is_chief)
    rundir.write_run_files(run_dir, cfg, recipe, data, is_chief)
    t = _build(cfg, recipe, strategy, run_dir, is_chief, task_id, loss_fn)
    t.iterator, t.val_data = _datasets(cfg, recipe, data, strategy, multiple, t.step)
    t.recipe = recipe
    # PSNR prefers a grey colouriser (a wrong hue costs more than none), so picking the best epoch by it would ship
    # the least colourful weights: a colourisation run keeps its last
    t.keep_last = recipe.task == "colorize"
    t.train_step = _train_step(strategy, t.objective, t.optimizer)
    t.eval_step = _evaluator(t.objective.predict, recipe.input)
    _start_metrics(t, recipe, data, full_hd, strategy)
    _train_epochs(t)
    return _finish(t)

# --- Check the model and settings -----------------------------------------------------------


def _check_model(cfg: TrainConfig, recipe) -> tuple:
    """(input multiple, the model built at Full HD, loss function); bad model or train settings fail here."""
    try:
        multiple = architectures.input_multiple(recipe.model)
        h, w = recipe.input.full_hd
        full_hd = architectures.build(recipe.model, height=h, width=w, batch=1, cfa=recipe.input.cfa)
    except ValueError as err:
        raise fail(recipe.source or recipe.name, str(err)) from None
    check(cfg, multiple, recipe)
    loss_fn = make_loss(parse_loss(cfg.loss), vgg_weights=cfg.vgg_weights, patch=cfg.patch)
    return multiple, full_hd, loss_fn


def check(cfg: TrainConfig, multiple: int, recipe) -> None:
    """One-line errors for settings this recipe cannot train with (``multiple``: its input multiple)."""
    step = recipe.input.scale * multiple  # an ISP patch is in RAW pixels: 2 (Bayer) or 4 (Quad) per packed pixel
    if cfg.patch <= 0 or cfg.patch % step:
        raise UserError(f"--patch {cfg.patch} is not divisible by {step}: {recipe.name} needs an "
                        f"input divisible by {multiple}")
    for name in ("epochs", "steps_per_epoch", "batch", "checkpoint_every"):
        if getattr(cfg, name) <= 0:
            raise UserError(f"--{name} must be positive, not {getattr(cfg, name)}")
    if "chroma" in cfg.loss and recipe.task != "colorize":
        raise UserError(f"the chroma loss term is for colourisation models; {recipe.name} is a {recipe.task} model")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise UserError(f"lr_schedule must be one of {LR_SCHEDULES}, not {cfg.lr_schedule!r}")
    if cfg.prune_sparsity is not None:
        sparsity.check(cfg.prune_sparsity)
    precision.check(cfg.mixed_precision)
    objectives.validate(recipe.model, teacher=bool(cfg.teacher), alpha=cfg.distill_alpha,
                        features=cfg.distill_features, large=cfg.joint_large_head)

# --- Build model, optimizer and checkpointing -----------------------------------------------


def _make_strategy(name: str):
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


def schedule(cfg: TrainConfig, total_steps: int):
    """The learning rate: a constant or a Keras schedule over ``total_steps``."""
    if cfg.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg.lr, total_steps, alpha=min(cfg.lr_min / cfg.lr, 1.0))
    if cfg.lr_schedule == "step":
        return keras.optimizers.schedules.PiecewiseConstantDecay([int(total_steps * cfg.lr_step_at)],
                                                                 [cfg.lr, cfg.lr / 10])
    return cfg.lr


def _build(cfg: TrainConfig, recipe, strategy, run_dir: Path, is_chief: bool, task_id: int, loss_fn) -> _Training:
    """Model(s), optimizer and checkpoint manager; --resume restores them from the last checkpoint."""
    total_steps = cfg.epochs * cfg.steps_per_epoch
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope(), precision.policy(cfg.mixed_precision):  # the build only: layers keep their policy
        objective = _objective(cfg, recipe, loss_fn, total_steps)
        model = objective.model
        optimizer = precision.wrap_optimizer(keras.optimizers.Adam(learning_rate=schedule(cfg, total_steps)),
                                             cfg.mixed_precision)
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
    return _Training(cfg, run_dir, is_chief, objective, model, optimizer, best_psnr, manager, ckpt_dir, pruning,
                     total_steps, start_step)


def _objective(cfg: TrainConfig, recipe, loss_fn, total_steps: int):
    """Build the trained model(s) and what the step minimises; --init_from weights copied by layer name."""

    def prune(model):
        if cfg.prune_sparsity is None:
            return model
        return sparsity.wrap(model, sparsity=cfg.prune_sparsity, begin_step=int(0.1 * total_steps),
                             end_step=int(0.8 * total_steps))

    objective = None
    if cfg.joint_large_head:
        objective = objectives.Joint(recipe.model, loss_fn, large=cfg.joint_large_head, alpha=cfg.distill_alpha,
                                     name=recipe.name)
    elif cfg.aux_weights and not cfg.teacher:  # a recipe's level heads (PyNET-V2); distillation trains without
        objective = objectives.Levels(recipe.model, loss_fn, weights=cfg.aux_weights, name=recipe.name)
    model = objective.model if objective else architectures.build(recipe.model, name=recipe.name, cfa=recipe.input.cfa)
    model = precision.float32_outputs(model)  # a float32 loss under --mixed_precision
    if cfg.init_from:
        source = architectures.load(finished_run(cfg.init_from) / "model.keras")
        try:
            architectures.copy_weights(source, model, missing_ok=objective is not None)
        except ValueError as err:
            raise fail(cfg.init_from, f"cannot start from this run: {err}") from None
    if objective:
        objective.model = prune(model)
        return objective
    if cfg.teacher:
        teacher = architectures.load(finished_run(cfg.teacher) / "model.keras")
        return objectives.Distill(prune(model), loss_fn, teacher, alpha=cfg.distill_alpha,
                                  features=cfg.distill_features)
    return objectives.Plain(prune(model), loss_fn)


def _channel_prune(cfg: TrainConfig) -> dict:
    """--channel_prune RUN: the source run's recipe and weights, pruned round by round into a new run."""
    clash = [f"--{k}" for k in ("resume", "teacher", "joint_large_head", "prune_sparsity", "init_from",
                                "mixed_precision") if getattr(cfg, k)]
    if clash:
        raise UserError(f"--channel_prune does not combine with {', '.join(clash)}")
    source = finished_run(cfg.channel_prune)
    recipe = recipes.load_recipe(source / "recipe.json")
    return channel_prune.run(resolve(cfg, recipe), source, recipe, architectures.load(source / "model.keras"))

# --- The data and the compiled train/eval steps ---------------------------------------------


def _datasets(cfg: TrainConfig, recipe, data: Data, strategy, multiple: int, start_step: int) -> tuple:
    """(distributed training iterator, sharded per input pipeline and reseeded on resume; validation data)."""

    def dataset_fn(ctx):
        return pipeline.training_dataset(
            data.train, recipe.input, patch=cfg.patch, batch=ctx.get_per_replica_batch_size(cfg.batch),
            augment=cfg.augment, seed=cfg.seed + start_step, num_shards=ctx.num_input_pipelines,
            shard_index=ctx.input_pipeline_id, cache_bytes=cfg.cache_mb << 20)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    val_data = pipeline.eval_dataset(data.val, recipe.input, multiple=multiple, max_size=cfg.val_max_size)
    return iterator, val_data


def _train_step(strategy, objective, optimizer):
    """The compiled optimizer step on the next batch of an iterator; returns the loss averaged over replicas."""

    @tf.function
    def train_step(it):
        def step_fn(x, y):
            with tf.GradientTape() as tape:
                loss = objective.loss(x, y)
                scaled = precision.scaled(optimizer, loss / strategy.num_replicas_in_sync)  # summed over replicas
            grads = precision.unscaled(optimizer, tape.gradient(scaled, objective.variables))
            optimizer.apply_gradients(zip(grads, objective.variables))
            return loss
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, strategy.run(step_fn, args=next(it)), axis=None)

    return train_step


def _evaluator(predict, spec):
    """The compiled validation step of ``predict``: per-image PSNR and SSIM of its output as RGB (``spec.render``:
    a colourisation model's L and ab back to sRGB)."""

    @tf.function(reduce_retracing=True)
    def eval_step(x, y):
        p = spec.render(x, predict(x), tf.experimental.numpy)
        return psnr(y, p), ssim(y, p)

    return eval_step


def _evaluate(eval_step, data) -> tuple:
    psnrs, ssims = [], []
    for x, y in data:
        p, s = eval_step(x, y)
        psnrs += p.numpy().tolist()
        ssims += s.numpy().tolist()
    return sum(psnrs) / len(psnrs), sum(ssims) / len(ssims)

# --- Epochs ---------------------------------------------------------------------------------


def _start_metrics(t: _Training, recipe, data: Data, full_hd, strategy) -> None:
    """The metrics (continued on --resume) and TensorBoard writer; logs what is about to be trained."""
    cfg = t.cfg
    macs = count_macs(full_hd)
    t.metrics = rundir.load_metrics(t.run_dir) if cfg.resume else {"epochs": []}
    t.metrics.update({"model": recipe.name, "parameters": count_params(full_hd), "macs_full_hd": macs,
                      "loss": cfg.loss, "total_steps": t.total_steps, **compression(cfg), **precision_used(cfg)})
    if cfg.resume:
        t.metrics.setdefault("resumed_from", []).append(t.step)
    t.writer = (tf.summary.create_file_writer(str(t.run_dir / "logs")) if t.is_chief
                else tf.summary.create_noop_writer())
    replicas = strategy.num_replicas_in_sync
    shape = "x".join(map(str, (*recipe.input.full_hd, recipe.input.channels)))
    log(t.is_chief, f"training {recipe.name} ({t.metrics['parameters']:,} parameters, {macs / 1e9:.2f} GMAC at {shape})"
                    f" on {data.layout}:{data.root} ({len(data.train.pairs)} train / {len(data.val.pairs)} val pairs), "
                    f"{t.total_steps} steps of batch {cfg.batch}, patch {cfg.patch}, in sync on {replicas} "
                    f"replica{'s' if replicas > 1 else ''}, run dir {t.run_dir}")


def _train_epochs(t: _Training) -> None:
    """Epochs until the last step; a TensorFlow failure is one error line, Ctrl-C says how to resume."""
    try:
        while t.step < t.total_steps:
            _epoch(t)
    except tf.errors.OpError as err:
        lines = [ln.strip() for ln in err.message.splitlines() if ln.strip()]
        detail = next((ln for ln in reversed(lines) if not ln.startswith(("Detected at", "[[", "File "))), "")
        raise UserError(f"training failed in TensorFlow: {detail or type(err).__name__}") from None
    except KeyboardInterrupt:
        log(t.is_chief, f"\ninterrupted at step {t.step}; continue with: "
                        f"python -m tflite_isp.train --resume --out {t.run_dir}")
        raise SystemExit(130) from None


def _epoch(t: _Training) -> None:
    """One epoch (the rest of it on --resume): its steps, then validation and a checkpoint."""
    cfg = t.cfg
    epoch = t.step // cfg.steps_per_epoch
    end = min((epoch + 1) * cfg.steps_per_epoch, t.total_steps)
    bar = Progress(end - epoch * cfg.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", enabled=t.is_chief)
    t0, seen, losses = time.perf_counter(), 0, []
    while t.step < end:
        if t.pruning:
            t.pruning.before_step()
        loss = float(t.train_step(t.iterator))
        t.step += 1
        seen += cfg.batch
        losses.append(loss)
        if not math.isfinite(loss):
            raise UserError(f"loss became {loss} at step {t.step}; lower --lr")
        rate = seen / (time.perf_counter() - t0)
        bar.update(t.step - epoch * cfg.steps_per_epoch, loss=loss, **{"patch/s": rate}, lr=_lr(t.optimizer))
        with t.writer.as_default(step=t.step):
            tf.summary.scalar("train/loss", loss)
        if t.step % cfg.checkpoint_every == 0 and t.step < end:  # the epoch's end saves after validation
            t.manager.save(checkpoint_number=t.step)
    elapsed = time.perf_counter() - t0
    bar.close()
    if t.pruning:
        t.pruning.end_epoch()
    _end_epoch(t, epoch, losses, seen, elapsed)


def _end_epoch(t: _Training, epoch: int, losses: list, seen: int, elapsed: float) -> None:
    """Validate, keep the best weights, checkpoint, and record the epoch (metrics.json, TensorBoard, log)."""
    v_psnr, v_ssim = _evaluate(t.eval_step, t.val_data)
    improved = v_psnr > float(t.best_psnr.numpy())
    if improved:
        t.best_psnr.assign(v_psnr)
        if t.is_chief:
            _save(t.model, t.run_dir / "best.weights.h5", weights_only=True)
    t.manager.save(checkpoint_number=t.step)
    row = {"epoch": epoch + 1, "step": t.step, "loss": sum(losses) / len(losses), "val_psnr": v_psnr,
           "val_ssim": v_ssim, "patches_per_s": seen / elapsed, "seconds": elapsed, "best": improved}
    t.metrics["epochs"].append(row)
    t.metrics["best"] = {"val_psnr": float(t.best_psnr.numpy())}
    with t.writer.as_default(step=t.step):
        tf.summary.scalar("val/psnr", v_psnr)
        tf.summary.scalar("val/ssim", v_ssim)
        tf.summary.scalar("train/patches_per_s", row["patches_per_s"])
    t.writer.flush()
    if t.is_chief:
        atomic.write_json(t.run_dir / "metrics.json", t.metrics)
    log(t.is_chief, f"epoch {epoch + 1}: loss {row['loss']:.4f}  val PSNR {v_psnr:.2f} dB  SSIM {v_ssim:.4f}"
                    f"  {row['patches_per_s']:.1f} patch/s{'  (best)' if improved else ''}")


def _lr(optimizer) -> float:
    lr = optimizer.learning_rate
    lr = lr(optimizer.iterations) if callable(lr) else lr
    return float(tf.identity(lr).numpy())

# --- Finish and save ------------------------------------------------------------------------


def _finish(t: _Training) -> dict:
    """The chief saves the deployable model from the best weights (a colourisation run: its last); other workers drop
    their scratch checkpoints."""
    cfg, metrics = t.cfg, t.metrics
    if t.is_chief:
        if (t.run_dir / "best.weights.h5").is_file() and not t.keep_last:
            t.model.load_weights(str(t.run_dir / "best.weights.h5"))
        if isinstance(t.objective, objectives.Joint):
            large_psnr, _ = _evaluate(_evaluator(t.objective.predict_large, t.recipe.input), t.val_data)
            metrics["joint"] = {"large_head_val_psnr": large_psnr}
        final = t.objective.deployable(sparsity.strip(t.model) if cfg.prune_sparsity else t.model)
        final = precision.float32_model(final, t.recipe)  # what export reads is float32 whatever the training
        if cfg.prune_sparsity:
            metrics["prune_sparsity_achieved"] = sparsity.kernel_sparsity(final)
        _save(final, t.run_dir / "model.keras")
        metrics["kept"] = "last" if t.keep_last else "best"
        metrics["finished"] = True
        atomic.write_json(t.run_dir / "metrics.json", metrics)
        kept = (f"the last epoch's weights (val PSNR {metrics['epochs'][-1]['val_psnr']:.2f} dB; best "
                f"{metrics['best']['val_psnr']:.2f})" if t.keep_last else
                f"best val PSNR {metrics['best']['val_psnr']:.2f} dB")
        log(True, f"done: {kept}; model {t.run_dir / 'model.keras'}")
    else:
        shutil.rmtree(t.ckpt_dir, ignore_errors=True)
    metrics["run_dir"] = str(t.run_dir)
    return metrics


def _save(model, path: Path, weights_only: bool = False) -> None:
    with atomic.replacing(path) as tmp:
        (model.save_weights if weights_only else model.save)(str(tmp))
