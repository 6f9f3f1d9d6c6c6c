"""Amplification-ratio predictor for low-light RAW: estimate SID's exposure ratio from the short exposure.

SID-style enhancement nets take the short exposure multiplied by the exposure ratio (x100,
x250, x300). On a phone there is no long exposure to divide by, so this small CNN estimates
the ratio from a 64 x 64 RGB *view* of the short exposure alone, regressing log2(ratio) with
an L1 loss. It ships as its own ``.tflite`` next to the enhancement net::

    python -m tflite_isp.ratio [--data sid:PATH] [--out runs/ratio] [--ratio_epochs 30]

trains on the train split (default: the embedded low-light set), keeps the weights with the
best validation error, evaluates on the test split (per-image |log2(pred) - log2(true)|, the
mean, and the constant guess of the train set's mean log2 ratio), and writes ``model.tflite``
(float; ``model_int8.tflite`` too with ``--ratio_int8``), ``manifest.json`` (the view and
encoding settings :func:`predict_ratio` reads) and ``metrics.json`` into ``--out``.

Library use (``enhance --ratio auto``)::

    ratio = predict_ratio("runs/ratio/model.tflite", mosaic, black, white, pattern="RGGB")
"""
# long module: the exposure-ratio predictor end to end (views, net, training, export, prediction) reads as one story.
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from absl import flags

from tflite_isp.core import atomic, cli
from tflite_isp.core.errors import UserError, fail
from tflite_isp.data import layouts
from tflite_isp.export import convert
from tflite_isp.raw import bayer, rawio
from tflite_isp.run.litert import Runner

FLAGS = flags.FLAGS
flags.DEFINE_integer("ratio_epochs", 30, "ratio: training epochs (one epoch = every train crop once).")
flags.DEFINE_integer("ratio_crops", 16, "ratio: random crops (with random flips) per training RAW.")
flags.DEFINE_enum("ratio_encoding", "log", ["log", "linear"], "ratio: how the view is fed to the net: log2 "
                                                            "brightness or linear.")
flags.DEFINE_boolean("ratio_int8", False, "ratio: also export a full-integer model_int8.tflite.")

SIZE = 64
#: log encoding: (log2(max(v, LOG_FLOOR)) + LOG_OFFSET) / LOG_SCALE, about [-1, 1] for short exposures
LOG_FLOOR, LOG_OFFSET, LOG_SCALE = 2.0 ** -16, 8.0, 8.0
#: linear encoding: v * LINEAR_SCALE (a x100 short exposure's mid-grey is then about 0.2)
LINEAR_SCALE = 100.0
MIN_RATIO, MAX_RATIO = 1.0, 300.0  # predictions are clamped here (SID caps its ratio at 300)
MANIFEST = "manifest.json"

# --- The view -------------------------------------------------------------------------------


def _levels(black, white, n: int = 4) -> tuple:
    black = np.broadcast_to(np.asarray(black, np.float32).reshape(-1), (n,)).astype(np.float32)
    white = float(white)
    if not np.all(white > black):
        raise UserError(f"white level {white:g} must be above the black level(s) {black.tolist()}")
    return black, white


def area_resize(image: np.ndarray, size) -> np.ndarray:
    """H x W x C -> size x size x C (or ``size`` = (h, w)): mean over each output pixel's block
    (nearest sample where the image is smaller). Aspect ratio is not kept; brightness is."""
    out = np.asarray(image, np.float32)
    sizes = (size, size) if np.isscalar(size) else tuple(size)
    for axis in (0, 1):
        n, size = out.shape[axis], int(sizes[axis])
        if n >= size:
            edges = (np.arange(size) * n) // size
            counts = np.diff(np.append(edges, n)).astype(np.float32)
            out = np.add.reduceat(out, edges, axis=axis) / np.expand_dims(counts, [a for a in range(out.ndim)
                                                                                    if a != axis])
        else:
            out = np.take(out, ((np.arange(size) + 0.5) * n / size).astype(int), axis=axis)
    return out


def rgb_from_packed(packed: np.ndarray, black, white, order="canonical") -> np.ndarray:
    """Packed H x W x 4 (channels in ``order``) -> black-subtracted, normalised RGB, greens averaged.

    ``black`` is one value or four in :data:`bayer.COLOURS` order (R, Gr, Gb, B). Not clipped and
    not amplified: the short exposure's own brightness, noise below black included.
    """
    black, white = _levels(black, white)
    order = bayer.check_order(order)
    x = np.asarray(packed, np.float32)
    if x.ndim != 3 or x.shape[-1] != 4:
        raise UserError(f"expected a H x W Bayer mosaic or a packed H x W x 4 array, got shape {x.shape}")
    ch = {c: (x[..., i] - black[bayer.COLOURS.index(c)]) / (white - black[bayer.COLOURS.index(c)])
          for i, c in enumerate(order)}
    return np.stack([ch["R"], 0.5 * (ch["Gr"] + ch["Gb"]), ch["B"]], axis=-1)


def full_rgb(mosaic_or_packed, black, white, pattern: str = "RGGB", order="canonical") -> np.ndarray:
    """A mosaic (H x W, packed with ``pattern``) or packed array (H x W x 4 in ``order``) -> normalised RGB.

    A Quad Bayer mosaic is pixel-swap remosaiced to its base Bayer pattern first (bayer.remosaic_quad): the view is
    downsized far below the 1.4 px the swap moves a sample, and its brightness per colour is unchanged."""
    x = np.asarray(mosaic_or_packed)
    if x.ndim == 2:
        p = bayer.period(pattern)
        h, w = x.shape
        x = x[: h - h % p, : w - w % p].astype(np.float32)
        if bayer.is_quad(pattern):
            x, pattern = bayer.remosaic_quad(x, pattern)
        x = bayer.pack(x, pattern, "canonical")
        order = "canonical"
    return rgb_from_packed(x, black, white, order)


def view(mosaic_or_packed, black, white, pattern: str = "RGGB", size: int = SIZE, order="canonical") -> np.ndarray:
    """The short exposure as the ratio net sees it: (size, size, 3) float32, linear.

    Black-subtracted and divided by (white - black), NOT amplified and NOT normalised per image:
    the exposure's absolute brightness is what the ratio is read from, so a 2x brighter RAW gives a
    2x brighter view. Packed (``pattern`` for a mosaic; ``order`` for an already packed input),
    greens averaged to RGB, then area-downsized to size x size (aspect ratio not kept).
    """
    return area_resize(full_rgb(mosaic_or_packed, black, white, pattern, order), size)


def encode(v: np.ndarray, encoding: str = "log") -> np.ndarray:
    """A linear view -> the net's input: scaled log2 brightness (``log``) or scaled linear values."""
    v = np.asarray(v, np.float32)
    if encoding == "log":
        return ((np.log2(np.maximum(v, LOG_FLOOR)) + LOG_OFFSET) / LOG_SCALE).astype(np.float32)
    if encoding == "linear":
        return v * np.float32(LINEAR_SCALE)
    raise UserError(f"unknown ratio view encoding {encoding!r}; expected log or linear")


def to_ratio(log2_ratio) -> np.ndarray:
    """The net's output (log2 ratio) -> the ratio, clamped to [MIN_RATIO, MAX_RATIO]."""
    return np.clip(np.exp2(np.asarray(log2_ratio, np.float64)), MIN_RATIO, MAX_RATIO)

# --- The model ------------------------------------------------------------------------------


def build_model(size: int = SIZE, width: int = 16, bias: float = 7.5, seed: int = 0):
    """Strided convs + global average pool (plus the input's own channel means) + dense -> log2 ratio.

    The batch is free for training; export traces it at (1, size, size, 3)."""
    from tflite_isp.core.tf import keras  # lazy: TensorFlow loads only when this runs

    keras.utils.set_random_seed(seed)
    L = keras.layers
    inp = keras.Input((size, size, 3), name="view")
    x = inp
    for i, filters in enumerate((width, 2 * width, 4 * width, 4 * width)):
        x = L.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    features = L.Concatenate(name="features")([L.GlobalAveragePooling2D(name="pool")(x),
                                               L.GlobalAveragePooling2D(name="input_mean")(inp)])
    x = L.Dense(32, activation="relu", name="dense")(features)
    out = L.Dense(1, name="log2_ratio", bias_initializer=keras.initializers.Constant(bias))(x)
    return keras.Model(inp, out, name="ratio_net")

# --- Data -----------------------------------------------------------------------------------


def _split_ratios(split) -> np.ndarray:
    ratios = np.asarray([p.ratio for p in split.pairs], np.float64)
    for p in split.pairs:
        if not p.ratio > 0:
            raise fail(p.raw, f"amplification ratio {p.ratio:g} must be > 0")
    return ratios


def shrink(rgb: np.ndarray, longest: int) -> np.ndarray:
    """Area-downsize so the longer side is at most ``longest`` (aspect kept): what crops are cut from."""
    h, w, _ = rgb.shape
    scale = min(1.0, longest / max(h, w))
    return area_resize(rgb, (max(1, round(h * scale)), max(1, round(w * scale))))


def load_split(split, size: int = SIZE, verbose: bool = False) -> tuple:
    """(frames, views) of a split's short exposures: normalised RGB frames shrunk to a longer side of
    4 x ``size`` (bounded memory for full-size SID), and each frame's exact :func:`view`."""

    _split_ratios(split)
    frames, out = [], []
    for i, p in enumerate(split.pairs):
        if p.white <= 0:
            raise fail(p.raw, "no white level known for this RAW")
        frame = rawio.read_raw(p.raw)
        rgb = full_rgb(frame.mosaic, frame.black, frame.white, frame.pattern)
        out.append(area_resize(rgb, size))
        frames.append(shrink(rgb, 4 * size))
        if verbose and (i + 1) % 100 == 0:
            log(True, f"ratio: read {i + 1}/{len(split.pairs)} {split.name} RAWs")
    return frames, np.stack(out).astype(np.float32)


def crops(rgbs, ratios, n: int, rng, size: int = SIZE, min_frac: float = 0.5) -> tuple:
    """``n`` random crops (side 50-100 % of the frame) with random flips/transposes per image."""
    xs, ys = [], []
    for rgb, r in zip(rgbs, ratios):
        h, w, _ = rgb.shape
        for _ in range(n):
            ch, cw = (max(1, int(d * rng.uniform(min_frac, 1.0))) for d in (h, w))
            oy, ox = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            v = bayer.dihedral(area_resize(rgb[oy:oy + ch, ox:ox + cw], size), int(rng.integers(8)))
            xs.append(v)
            ys.append(np.log2(r))
    return np.stack(xs).astype(np.float32), np.asarray(ys, np.float32)


def open_lowlight(data: str | None, split: str, bad_files: str = "fail"):

    layout, root = layouts.parse_data_flag(data or "embedded:lowlight")
    if layout != "sid":
        raise UserError(f"the ratio predictor needs low-light data in the sid layout, not {layout}")
    s = layouts.open_split(layout, root, split, on_bad=bad_files)
    if not s.pairs:
        raise fail(root, f"empty split: no pairs in {split}")
    return s

# --- Training and evaluation ----------------------------------------------------------------


def log(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)


def predict_keras(model, x: np.ndarray) -> np.ndarray:
    return model.predict(x, batch_size=1, verbose=0).reshape(-1)


def errors(pred_log2, true_ratios) -> np.ndarray:
    """Per-image |log2(pred) - log2(true)|, the prediction clamped as :func:`predict_ratio` does."""
    return np.abs(np.log2(to_ratio(pred_log2)) - np.log2(np.asarray(true_ratios, np.float64)))


def train(train_frames, train_ratios, val_views, val_ratios, *, encoding: str = "log", epochs: int = 30,
          crops_per_image: int = 16, batch: int = 16, lr: float = 2e-3, seed: int = 0, verbose: bool = True):
    """Train a ratio net; returns (model, history dict). Weights are those of the best validation epoch."""
    from tflite_isp.core.tf import keras  # lazy: TensorFlow loads only when this runs

    rng = np.random.default_rng(seed)
    train_ratios = np.asarray(train_ratios, np.float64)
    mean_log2 = float(np.mean(np.log2(train_ratios)))
    model = trainer = build_model(bias=mean_log2, seed=seed)
    trainer.compile(keras.optimizers.Adam(lr), loss="mae")
    x_val = encode(val_views, encoding)
    best, best_weights, history = np.inf, trainer.get_weights(), []
    start = time.perf_counter()
    for epoch in range(epochs):
        x, y = crops(train_frames, train_ratios, crops_per_image, rng)
        fit = trainer.fit(encode(x, encoding), y, batch_size=batch, epochs=1, shuffle=True, verbose=0)
        lr_now = lr * 0.5 * (1 + np.cos(np.pi * (epoch + 1) / epochs))
        trainer.optimizer.learning_rate.assign(lr_now)
        val = float(np.mean(errors(trainer.predict(x_val, batch_size=64, verbose=0).reshape(-1), val_ratios)))
        history.append({"epoch": epoch + 1, "loss": float(fit.history["loss"][-1]), "val_abs_log2": val})
        if val < best:
            best, best_weights = val, trainer.get_weights()
        log(verbose, f"ratio epoch {epoch + 1}/{epochs}  loss {history[-1]['loss']:.4f}  val |log2 err| "
                     f"{val:.4f}  best {best:.4f}  {time.perf_counter() - start:.0f}s")
    model.set_weights(best_weights)
    return model, {"epochs": history, "best_val_abs_log2": best, "train_mean_log2": mean_log2}


def evaluate(predict, views_, ratios, constant_log2: float, encoding: str, names=None) -> dict:
    """Per-image and mean |log2 error| of ``predict(x) -> log2 ratio`` on each view, and of the constant guess."""
    per, err_model, err_const = [], [], []
    for i, (v, r) in enumerate(zip(views_, ratios)):
        x = encode(v, encoding)[None]
        pred = float(np.asarray(predict(x)).reshape(-1)[0])
        e, c = float(errors([pred], [r])[0]), float(abs(constant_log2 - np.log2(r)))
        err_model.append(e)
        err_const.append(c)
        per.append({"image": names[i] if names else i, "ratio": float(r), "predicted": float(to_ratio(pred)),
                    "abs_log2_error": round(e, 5)})
    return {"mean_abs_log2_error": float(np.mean(err_model)), "constant_mean_abs_log2_error": float(np.mean(err_const)),
            "constant_ratio": float(2 ** constant_log2), "images": len(per), "per_image": per}

# --- Export and inference -------------------------------------------------------------------


def export_tflite(model, representative=None) -> dict:
    """{"fp32": bytes} and, given representative inputs, {"int8": bytes} (int8 IO)."""

    precisions = convert.precisions()
    out = {"fp32": convert.convert(model, (1, SIZE, SIZE, 3), precisions["fp32"])}
    if representative is not None:
        out["int8"] = convert.convert(model, (1, SIZE, SIZE, 3), precisions["int8"],
                                      representative=convert.representative_from(representative))
    return out


def manifest_for(encoding: str, metrics: dict | None = None, files: dict | None = None) -> dict:
    return {
        "task": "ratio",
        "input": {"shape": [1, SIZE, SIZE, 3], "view": {"size": SIZE, "channels": "R, (Gr+Gb)/2, B",
                                                          "levels": "(x - black) / (white - black), not clipped, "
                                                                    "not amplified", "resize": "area"},
                  "encoding": encoding,
                  "log": {"floor": LOG_FLOOR, "offset": LOG_OFFSET, "scale": LOG_SCALE},
                  "linear": {"scale": LINEAR_SCALE}},
        "output": {"meaning": "log2(amplification ratio)", "clamp": [MIN_RATIO, MAX_RATIO]},
        "files": files or {},
        "metrics": metrics or {},
    }


def _encode_from_manifest(v: np.ndarray, manifest: dict) -> np.ndarray:
    inp = manifest["input"]
    if inp["encoding"] == "log":
        p = inp["log"]
        return ((np.log2(np.maximum(v, p["floor"])) + p["offset"]) / p["scale"]).astype(np.float32)
    if inp["encoding"] == "linear":
        return (v * inp["linear"]["scale"]).astype(np.float32)
    raise UserError(f"unknown ratio view encoding {inp['encoding']!r} in the manifest")


def load_manifest(tflite_path) -> dict:
    path = Path(tflite_path).parent / MANIFEST
    if not path.is_file():
        raise fail(tflite_path, f"no {MANIFEST} beside it (export the ratio net with python -m tflite_isp.ratio)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as err:
        raise fail(path, f"not valid JSON ({err})") from None
    if manifest.get("task") != "ratio":
        raise fail(path, "not a ratio-predictor manifest")
    return manifest


def predict_ratio(tflite_path_or_runner, mosaic_or_packed, black, white, *, pattern: str = "RGGB",
                  order="canonical", manifest: dict | None = None, threads: int = 2) -> float:
    """The estimated amplification ratio of one short exposure.

    ``mosaic_or_packed``: an H x W Bayer mosaic in sensor values (``pattern``), or a packed
    H x W x 4 array (channels in ``order``). ``black``: one value or four in (R, Gr, Gb, B) order;
    ``white``: the white level. The view settings come from the ``manifest.json`` beside the
    ``.tflite`` file (or ``manifest``, needed when a Runner built from bytes is given).
    """

    if isinstance(tflite_path_or_runner, Runner):
        runner = tflite_path_or_runner
        manifest = manifest or load_manifest(runner.name)
    else:
        manifest = manifest or load_manifest(tflite_path_or_runner)
        runner = Runner(tflite_path_or_runner, threads=threads)
    size = int(manifest["input"]["view"]["size"])
    x = _encode_from_manifest(view(mosaic_or_packed, black, white, pattern, size, order), manifest)[None]
    lo, hi = manifest.get("output", {}).get("clamp", [MIN_RATIO, MAX_RATIO])
    return float(np.clip(np.exp2(float(np.asarray(runner(x)).reshape(-1)[0])), lo, hi))

# --- The command ----------------------------------------------------------------------------


def run(data: str | None = None, out="runs/ratio", *, encoding: str = "log", epochs: int = 30,
        crops_per_image: int = 16, seed: int = 0, int8: bool = False, threads: int = 2, bad_files: str = "fail",
        verbose: bool = True) -> dict:
    """Train, evaluate on test, export; returns the metrics written to ``out/metrics.json``."""

    encode(np.zeros(1), encoding)  # bad encoding -> one-line error before any work
    if epochs < 1 or crops_per_image < 1:
        raise UserError("--ratio_epochs and --ratio_crops must be at least 1")
    splits = {name: open_lowlight(data, name, bad_files) for name in ("train", "val", "test")}
    log(verbose, "ratio: " + ", ".join(f"{k} {len(s.pairs)} pairs" for k, s in splits.items()))
    loaded = {k: load_split(s, verbose=verbose) for k, s in splits.items()}
    ratios = {k: _split_ratios(s) for k, s in splits.items()}
    model, history = train(loaded["train"][0], ratios["train"], loaded["val"][1], ratios["val"], encoding=encoding,
                           epochs=epochs, crops_per_image=crops_per_image, seed=seed, verbose=verbose)
    names = [Path(p.raw).name for p in splits["test"].pairs]
    const = history["train_mean_log2"]
    keras_eval = evaluate(lambda x: predict_keras(model, x), loaded["test"][1], ratios["test"], const, encoding, names)
    rep = encode(loaded["train"][1], encoding)[:, None] if int8 else None
    blobs = export_tflite(model, rep)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    results = {}
    for precision, blob in blobs.items():
        name = "model.tflite" if precision == "fp32" else f"model_{precision}.tflite"
        atomic.write_bytes(out / name, blob)
        files[precision] = name
        runner = Runner(blob, threads=threads)
        results[precision] = evaluate(runner, loaded["test"][1], ratios["test"], const, encoding, names)
    metrics = {
        "data": {k: {"root": s.root, "pairs": len(s.pairs), "ratios": sorted(set(map(float, ratios[k])))}
                 for k, s in splits.items()},
        "encoding": encoding, "epochs": epochs, "crops_per_image": crops_per_image, "seed": seed,
        "best_val_abs_log2_error": history["best_val_abs_log2"],
        "test": {"keras": keras_eval, **{f"tflite_{k}": v for k, v in results.items()}},
        "history": history["epochs"],
    }
    summary = {k: round(v["mean_abs_log2_error"], 4) for k, v in metrics["test"].items()}
    atomic.write_json(out / MANIFEST, manifest_for(encoding, {"test_mean_abs_log2_error": summary,
                                                              "constant_mean_abs_log2_error":
                                                              round(keras_eval["constant_mean_abs_log2_error"], 4)},
                                                   files))
    atomic.write_json(out / "metrics.json", metrics)
    log(verbose, f"ratio: test mean |log2 error| {summary} vs constant guess x{2 ** const:.1f}: "
                 f"{keras_eval['constant_mean_abs_log2_error']:.4f}; wrote {out}")
    return metrics


def main(argv) -> int:
    def body(_):
        if len(argv) > 1:
            raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
        run(FLAGS.data, FLAGS.out or "runs/ratio", encoding=FLAGS.ratio_encoding, epochs=FLAGS.ratio_epochs,
            crops_per_image=FLAGS.ratio_crops, seed=FLAGS.seed, int8=FLAGS.ratio_int8, threads=FLAGS.threads,
            bad_files=FLAGS.bad_files)

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
