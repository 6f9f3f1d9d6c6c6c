"""Structured channel pruning of a U-Net: remove whole filters, fine-tune, repeat while
validation PSNR stays within ``--prune_psnr_drop`` of the unpruned model's.

Filters are ranked across the network by the first-order Taylor estimate of the loss change
when a channel is removed (Molchanov et al., ICLR 2017): |mean(activation x gradient)| per
channel, L2-normalised per layer. The result is a smaller dense network (its recipe lists the
channels each layer keeps), so the exported file has fewer MACs, not only zeros.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.metrics import psnr, ssim


@dataclass(frozen=True)
class Layer:
    """A prunable layer: ``name`` in the recipe's channels table, the Keras layer whose filters go
    (``name`` or its separable pointwise ``name_pw``), and the tensor whose channels are scored."""

    name: str
    producer: str
    scored: str


def prunable_layers(model, recipe_model: dict) -> list:
    """Every U-Net layer whose output channels can be removed (all but the 12-channel head)."""
    from tflite_isp.nets import unet  # lazy: TensorFlow loads only when this runs

    if recipe_model.get("architecture") != "unet":
        raise UserError(f"structured channel pruning supports U-Net recipes (sid_unet and its separable or slim "
                        f"variants), not {recipe_model.get('architecture')}")
    names = {layer.name for layer in model.layers}
    settings = {k: v for k, v in recipe_model.items() if k in ("widths", "width_multiplier", "channels")}
    out = []
    for name in unet.layer_widths(**settings):
        producer = name if name in names else f"{name}_pw"
        scored = f"{name}_lrelu" if f"{name}_lrelu" in names else producer
        out.append(Layer(name, producer, scored))
    return out


def importance(model, layers, batches, loss_fn) -> dict:
    """Per-layer channel scores: |mean over batch and pixels of activation x d loss / d activation|,
    each layer's vector scaled to unit L2 norm so layers compare."""
    from tflite_isp.core.tf import keras, tf  # lazy: TensorFlow loads only when this runs

    probe = keras.Model(model.inputs, [model.output] + [model.get_layer(lay.scored).output for lay in layers])
    totals = [np.zeros(model.get_layer(lay.scored).output.shape[-1]) for lay in layers]
    for x, y in batches:
        with tf.GradientTape() as tape:
            out, *acts = probe(x, training=False)
            loss = loss_fn(y, out)
        grads = tape.gradient(loss, acts)
        for total, a, g in zip(totals, acts, grads, strict=True):
            total += np.abs(tf.reduce_mean(a * g, axis=[0, 1, 2]).numpy())
    return {lay.name: t / (np.linalg.norm(t) or 1.0) for lay, t in zip(layers, totals, strict=True)}


def check_step(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise UserError(f"--prune_step must be between 0 and 1, not {fraction}: a step of 1 would remove every "
                        "filter of every layer")


def plan(scores: dict, fraction: float) -> dict:
    """Kept channel indices per layer after removing the ``fraction`` of all channels with the lowest
    scores; a layer keeps at least its best channel."""
    check_step(fraction)
    total = sum(len(s) for s in scores.values())
    budget = int(round(fraction * total))
    left = {name: len(s) for name, s in scores.items()}
    removed = {name: set() for name in scores}
    for value, name, idx in sorted((float(v), n, i) for n, s in scores.items() for i, v in enumerate(s)):
        if budget == 0:
            break
        if left[name] > 1:
            removed[name].add(idx)
            left[name] -= 1
            budget -= 1
    return {name: np.array([i for i in range(len(s)) if i not in removed[name]]) for name, s in scores.items()}


def check_channels(kept: dict) -> None:
    """A pruning plan must leave every layer at least one filter."""
    empty = [name for name, idx in kept.items() if len(idx) == 0]
    if empty:
        raise UserError(f"pruning would remove every filter of {', '.join(empty)}; a layer needs at least one")


def transfer(old, new, kept_by_producer: dict):
    """Copy ``old``'s weights into the smaller ``new`` (same layer names), keeping the listed output
    channels of each pruned layer and, downstream, the matching input channels."""
    from tflite_isp.core.tf import keras, tf  # lazy: TensorFlow loads only when this runs

    L = keras.layers
    out_idx = {}  # layer name -> indices (into old's channels) of the channels that survive
    for layer in old.layers:
        if isinstance(layer, L.InputLayer):
            out_idx[layer.name] = np.arange(layer.output.shape[-1])
            continue
        parents = tf.nest.flatten(layer._inbound_nodes[0].inbound_layers)
        if isinstance(layer, L.Concatenate):
            parts, offset = [], 0
            for p in parents:
                parts.append(out_idx[p.name] + offset)
                offset += p.output.shape[-1]
            out_idx[layer.name] = np.concatenate(parts)
            continue
        (parent,) = parents
        in_idx = out_idx[parent.name]
        weights = layer.get_weights()
        if isinstance(layer, L.DepthwiseConv2D):
            out_idx[layer.name] = in_idx
            weights = [weights[0][:, :, in_idx]] + [b[in_idx] for b in weights[1:]]
        elif isinstance(layer, (L.Conv2D, L.Conv2DTranspose)):
            keep = kept_by_producer.get(layer.name, np.arange(layer.filters))
            out_idx[layer.name] = keep
            if isinstance(layer, L.Conv2DTranspose):  # kernel (kh, kw, out, in)
                kernel = weights[0][:, :, keep][:, :, :, in_idx]
            else:  # kernel (kh, kw, in, out)
                kernel = weights[0][:, :, in_idx][:, :, :, keep]
            weights = [kernel] + [b[keep] for b in weights[1:]]
        elif weights:
            raise UserError(f"channel pruning cannot pass through layer {layer.name} ({type(layer).__name__})")
        else:
            out_idx[layer.name] = in_idx
        if weights:
            new.get_layer(layer.name).set_weights(weights)
    return new


def shrink(model, recipe, layers, kept: dict):
    """(smaller recipe, smaller model with the surviving weights)."""
    from tflite_isp.nets import architectures  # lazy: TensorFlow loads only when this runs

    check_channels(kept)
    channels = {lay.name: int(len(kept[lay.name])) for lay in layers}
    smaller = recipe.with_model(channels=channels)
    new = architectures.build(smaller.model, name=recipe.name, cfa=recipe.input.cfa)
    return smaller, transfer(model, new, {lay.producer: kept[lay.name] for lay in layers})

# --- The pruning loop (side effects: data, files, logs) -----------------------------------


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _evaluate(model, data) -> tuple:

    psnrs, ssims = [], []
    for x, y in data:
        p = model(x, training=False)
        psnrs += psnr(y, p).numpy().tolist()
        ssims += ssim(y, p).numpy().tolist()
    return float(np.mean(psnrs)), float(np.mean(ssims))


def _costs(recipe) -> dict:
    from tflite_isp.nets import architectures  # lazy: TensorFlow loads only when this runs
    from tflite_isp.nets.stats import count_macs, count_params

    model = architectures.build(recipe.model, height=544, width=960, batch=1, cfa=recipe.input.cfa)
    return {"macs_full_hd": count_macs(model), "parameters": count_params(model)}


def run(cfg, source: Path, recipe, model) -> dict:
    """Prune ``model`` (trained, from run ``source``) round by round into ``cfg.out``; returns metrics.

    ``cfg`` is the resolved training config: data, patch, batch, lr, loss, seed; each round fine-tunes
    for ``steps_per_epoch`` steps; at most ``prune_rounds`` rounds of ``prune_step``.
    """
    from tflite_isp.core.tf import keras  # lazy: TensorFlow loads only when this runs
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.nets.architectures import input_multiple  # lazy: TensorFlow loads only when this runs
    from tflite_isp.train.finetune import fine_tune
    from tflite_isp.train.losses import make_loss, parse_loss  # lazy: TensorFlow loads only when this runs

    if cfg.prune_psnr_drop < 0:
        raise UserError(f"--prune_psnr_drop must be >= 0 dB, not {cfg.prune_psnr_drop}")
    if cfg.prune_rounds <= 0:
        raise UserError(f"--prune_rounds must be positive, not {cfg.prune_rounds}")
    layers = prunable_layers(model, recipe.model)
    check_step(cfg.prune_step)
    if cfg.data:
        layout, root = layouts.parse_data_flag(cfg.data)
    else:
        stored = json.loads((source / "run.json").read_text())["data"] if (source / "run.json").is_file() else None
        layout, root = (stored["layout"], Path(stored["root"])) if stored else \
            layouts.parse_data_flag(f"embedded:{recipe.task}")
    train_split = layouts.open_split(layout, root, "train", on_bad=cfg.bad_files)
    val_split = layouts.open_split(layout, root, layouts.validation_split(layout, root), on_bad=cfg.bad_files)
    loss_fn = make_loss(parse_loss(cfg.loss), vgg_weights=cfg.vgg_weights, patch=cfg.patch)
    keras.utils.set_random_seed(cfg.seed)
    train_data = pipeline.training_dataset(train_split, recipe.input, patch=cfg.patch, batch=cfg.batch,
                                           augment=cfg.augment, seed=cfg.seed, cache_bytes=cfg.cache_mb << 20)
    val_data = pipeline.eval_dataset(val_split, recipe.input, multiple=input_multiple(recipe.model),
                                     max_size=cfg.val_max_size)

    out = Path(cfg.out or f"runs/{recipe.name}-channel-pruned-{time.strftime('%Y%m%d-%H%M%S')}")
    if (out / "model.keras").exists():
        raise fail(out, "already holds a model; pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    base_psnr, base_ssim = _evaluate(model, val_data)
    floor = base_psnr - cfg.prune_psnr_drop
    base = {"round": 0, "val_psnr": base_psnr, "val_ssim": base_ssim, **_costs(recipe), "accepted": True}
    metrics = {"model": recipe.name, "loss": cfg.loss, "compression": {"channel_prune": str(source),
               "prune_psnr_drop": cfg.prune_psnr_drop, "prune_step": cfg.prune_step}, "pruning": [base]}
    _log(f"channel pruning {source}: {base['macs_full_hd'] / 1e9:.2f} GMAC at 544x960, val PSNR {base_psnr:.2f} dB; "
         f"stopping before it falls below {floor:.2f} dB; up to {cfg.prune_rounds} rounds of {cfg.prune_step:.0%} "
         f"with {cfg.steps_per_epoch} fine-tune steps each; run dir {out}")
    settings = {k: v for k, v in asdict(cfg).items() if k != "explicit"}
    atomic.write_json(out / "run.json", {"config": settings, "data": {"layout": layout, "root": str(root)}})
    kept_recipe, kept_model = recipe, model
    for round_no in range(1, cfg.prune_rounds + 1):
        scores = importance(kept_model, layers, train_data.take(4), loss_fn)
        candidate_recipe, candidate = shrink(kept_model, kept_recipe, layers, plan(scores, cfg.prune_step))
        fine_tune(candidate, train_data, steps=cfg.steps_per_epoch, lr=cfg.lr, loss_fn=loss_fn,
                  label=f"round {round_no} fine-tune")
        v_psnr, v_ssim = _evaluate(candidate, val_data)
        row = {"round": round_no, "val_psnr": v_psnr, "val_ssim": v_ssim, **_costs(candidate_recipe),
               "channels": candidate_recipe.model["channels"], "accepted": v_psnr >= floor}
        metrics["pruning"].append(row)
        removed = 1 - row["macs_full_hd"] / base["macs_full_hd"]
        _log(f"round {round_no}: {row['macs_full_hd'] / 1e9:.2f} GMAC ({removed:.0%} removed), "
             f"val PSNR {v_psnr:.2f} dB ({v_psnr - base_psnr:+.2f})"
             + ("" if row["accepted"] else f": below {floor:.2f} dB, keeping round {round_no - 1}"))
        if not row["accepted"]:
            break
        kept_recipe, kept_model = candidate_recipe, candidate
        _publish(out, kept_recipe, kept_model, metrics, base, final=False)
    metrics = _publish(out, kept_recipe, kept_model, metrics, base, final=True)
    metrics["run_dir"] = str(out)
    return metrics


def _publish(out: Path, recipe, model, metrics: dict, base: dict, *, final: bool) -> dict:
    """Write the current best model as a normal run directory (atomically, file by file)."""
    kept = [r for r in metrics["pruning"] if r["accepted"]][-1]
    metrics = {**metrics, "parameters": kept["parameters"], "macs_full_hd": kept["macs_full_hd"],
               "best": {"val_psnr": kept["val_psnr"], "val_ssim": kept["val_ssim"]},
               "summary": {"rounds_kept": kept["round"],
                           "macs_removed": 1 - kept["macs_full_hd"] / base["macs_full_hd"],
                           "parameters_removed": 1 - kept["parameters"] / base["parameters"],
                           "psnr_change_db": kept["val_psnr"] - base["val_psnr"]},
               "finished": final}
    atomic.write_json(out / "recipe.json", recipe.to_dict())
    with atomic.replacing(out / "model.keras") as tmp:
        model.save(str(tmp))
    atomic.write_json(out / "metrics.json", metrics)
    if final:
        s = metrics["summary"]
        _log(f"done: kept round {s['rounds_kept']}: {s['macs_removed']:.1%} of MACs and {s['parameters_removed']:.1%} "
             f"of parameters removed, val PSNR {s['psnr_change_db']:+.2f} dB; model {out / 'model.keras'}")
    return metrics
