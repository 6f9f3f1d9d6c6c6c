"""tf.data streaming of a dataset Split: parallel decode, random packed crops, phase-true
augmentation, normalisation by the model's InputSpec, batching and prefetch.

A split whose decoded size fits the cache budget (1 GiB by default) is decoded once and kept
in memory; PNG decoding costs more CPU than a small model's training step, and on CPU both
share the same cores. A larger split streams: each element decodes its own files and
nothing but the prefetch buffers is held, whatever the dataset's size.
"""
from __future__ import annotations

import numpy as np

from tflite_isp.core import colour
from tflite_isp.core.errors import fail
from tflite_isp.core.tf import tf
from tflite_isp.data.layouts import Split, input_levels
from tflite_isp.raw import bayer, rawio
from tflite_isp.raw.bayer import model_input  # noqa: F401  (the one definition; re-exported)

AUTOTUNE = tf.data.AUTOTUNE
tnp = tf.experimental.numpy  # NumPy's API on tensors: core.colour's formulas run in the graph

DEFAULT_CACHE_BYTES = 1 << 30


def _decoder(split: Split):
    """path -> uint16 H x W mosaic."""
    if split.raw_format == "png":
        def decode(path):
            return tf.io.decode_png(tf.io.read_file(path), channels=1, dtype=tf.uint16)[..., 0]
    else:

        def read(path):
            path = path.item() if isinstance(path, np.ndarray) else path  # eager calls pass a 0-d array
            return rawio.read_raw(path.decode()).mosaic

        def decode(path):
            m = tf.numpy_function(read, [path], tf.uint16, stateful=False)
            m.set_shape([None, None])
            return m
    return decode


def decode_target(path, dtype=tf.float32):
    """PNG (8 or 16 bit) or JPEG target as H x W x 3: float32 in [0, 1], or uint8/uint16 full scale."""
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, dtype=dtype, expand_animations=False)
    img.set_shape([None, None, 3])
    return img


def _tensors(split: Split, spec):
    blacks, whites = input_levels(split, spec)
    return (
        tf.constant([p.raw for p in split.pairs]),
        tf.constant([p.target for p in split.pairs]),
        tf.constant([p.ratio for p in split.pairs], tf.float32),
        tf.constant(blacks),
        tf.constant(whites),
    )


def training_dataset(split: Split, spec, *, patch: int, batch: int, augment: bool = True, seed: int = 0,
                     num_shards: int = 1, shard_index: int = 0, cache_bytes: int = DEFAULT_CACHE_BYTES,
                     cache_one_batch: bool = False):
    """Endless batches of (packed input, target): ``patch`` is the RAW/target crop size in pixels.

    The split is decoded once into memory when its decoded size is at most ``cache_bytes``
    (0 always streams). ``cache_one_batch`` repeats the first batch forever (the benchmark's
    pipeline-free baseline).
    """
    rep = bayer.period(split.pattern) if split.task != "colorize" else 1
    if patch % rep:
        raise ValueError(f"patch must be a multiple of the CFA period {rep}")
    if split.task == "colorize":
        return _colour_batches(split, spec, patch=patch, batch=batch, augment=augment, seed=seed,
                               num_shards=num_shards, shard_index=shard_index, cache_bytes=cache_bytes,
                               cache_one_batch=cache_one_batch)
    decode = _decoder(split)
    crop = patch + rep if augment else patch  # augmentation trims one CFA period per dimension
    pattern = split.pattern
    for p in split.pairs:
        if 0 < min(p.shape) < crop:
            raise fail(p.raw, f"{p.shape[1]}x{p.shape[0]} is smaller than the {crop}x{crop} training crop (patch "
                              f"{patch}{f' + {rep} for phase-true augmentation' if augment else ''}); lower --patch")

    target_dtype = tf.uint16 if any(p.target_bits > 8 for p in split.pairs) else tf.uint8

    def decode_pair(raw_path, target_path, ratio, black, white):
        return decode(raw_path), decode_target(target_path, target_dtype), ratio, black, white

    def load(decoded, rnd):
        mosaic, target, ratio, black, white = decoded
        h, w = tf.shape(mosaic)[0], tf.shape(mosaic)[1]
        rnd = tf.cast(rnd % 65536, tf.int32)
        oy = rep * (rnd[0] % ((h - crop) // rep + 1))  # offsets on the CFA period keep its phase
        ox = rep * (rnd[1] % ((w - crop) // rep + 1))
        mosaic = tf.ensure_shape(mosaic[oy:oy + crop, ox:ox + crop], [crop, crop])
        target = tf.ensure_shape(target[oy:oy + crop, ox:ox + crop], [crop, crop, 3])
        if augment:
            branches = [lambda k=k: bayer.augment_mosaic(mosaic, target, k, pattern) for k in range(8)]
            mosaic, target = tf.switch_case(rnd[2] % 8, branches)
        mosaic = tf.cast(tf.ensure_shape(mosaic, [patch, patch]), tf.float32)
        target = tf.image.convert_image_dtype(tf.ensure_shape(target, [patch, patch, 3]), tf.float32)
        return model_input(mosaic, pattern, spec, black, white, ratio), target

    files = tf.data.Dataset.from_tensor_slices(_tensors(split, spec))
    if num_shards > 1:
        files = files.shard(num_shards, shard_index)
    n = len(split.pairs)
    if split.decoded_bytes() <= cache_bytes:
        decoded = files.map(decode_pair, num_parallel_calls=AUTOTUNE).cache()
        decoded = decoded.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        files = files.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
        decoded = files.map(decode_pair, num_parallel_calls=AUTOTUNE, deterministic=True)
    return _batches(decoded, load, batch=batch, seed=seed, cache_one_batch=cache_one_batch)


def _batches(decoded, load, *, batch: int, seed: int, cache_one_batch: bool):
    """Endless decoded images -> ``load(image, 3 random ints)`` crops, batched and prefetched."""
    randoms = tf.data.Dataset.random(seed=seed).batch(3)
    ds = tf.data.Dataset.zip((decoded, randoms)).map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    ds = ds.batch(batch, drop_remainder=True)
    if cache_one_batch:
        ds = ds.take(1).cache().repeat()
    return ds.prefetch(AUTOTUNE)


def eval_dataset(split: Split, spec, *, multiple: int = 1, max_size: int = 0):
    """Whole images, batch 1, centre-cropped so the packed size is divisible by ``multiple``.

    ``max_size`` > 0 caps the crop (RAW pixels) to bound evaluation time.
    """
    if split.task == "colorize":
        return _colour_eval(split, spec, multiple=multiple, max_size=max_size)
    decode = _decoder(split)
    p = bayer.period(split.pattern)
    step = p * multiple
    pattern = split.pattern

    def load(raw_path, target_path, ratio, black, white):
        mosaic, target = tf.cast(decode(raw_path), tf.float32), decode_target(target_path)
        h, w = tf.shape(mosaic)[0], tf.shape(mosaic)[1]
        ch, cw = (h // step) * step, (w // step) * step
        if max_size:
            cap = (max_size // step) * step
            ch, cw = tf.minimum(ch, cap), tf.minimum(cw, cap)
        oy, ox = ((h - ch) // (2 * p)) * p, ((w - cw) // (2 * p)) * p  # offsets on the period keep the CFA phase
        mosaic, target = mosaic[oy:oy + ch, ox:ox + cw], target[oy:oy + ch, ox:ox + cw]
        return model_input(mosaic, pattern, spec, black, white, ratio)[None], target[None]

    ds = tf.data.Dataset.from_tensor_slices(_tensors(split, spec))
    return ds.map(load, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


# --- Colourisation: RGB images in, L -> ab pairs out ----------------------------------------


def _colour_files(split: Split, num_shards: int = 1, shard_index: int = 0):
    files = tf.data.Dataset.from_tensor_slices(tf.constant([p.raw for p in split.pairs]))
    return files.shard(num_shards, shard_index) if num_shards > 1 else files


def _colour_batches(split: Split, spec, *, patch, batch, augment, seed, num_shards, shard_index, cache_bytes,
                    cache_one_batch):
    """Endless batches of (L / l_scale (patch, patch, 1), ab / ab_scale (patch, patch, 2)) from random crops,
    flipped and rotated when ``augment`` (colour has no CFA phase to keep)."""
    small = [p for p in split.pairs if 0 < min(p.shape) < patch]
    if small:
        raise fail(small[0].raw, f"{small[0].shape[1]}x{small[0].shape[0]} is smaller than the {patch}x{patch} "
                                 "training crop; lower --patch")

    def load(rgb, rnd):
        rnd = tf.cast(rnd % 65536, tf.int32)
        h, w = tf.shape(rgb)[0], tf.shape(rgb)[1]
        oy, ox = rnd[0] % (h - patch + 1), rnd[1] % (w - patch + 1)
        rgb = tf.ensure_shape(rgb[oy:oy + patch, ox:ox + patch], [patch, patch, 3])
        if augment:
            rgb = tf.image.rot90(rgb, rnd[2] % 4)
            rgb = tf.cond(rnd[2] % 8 >= 4, lambda: tf.image.flip_left_right(rgb), lambda: rgb)
        return (colour.model_input(rgb, spec.l_scale, tnp), colour.model_target(rgb, spec.ab_scale, tnp))

    files = _colour_files(split, num_shards, shard_index)
    n = len(split.pairs)
    decoded = files.map(decode_target, num_parallel_calls=AUTOTUNE)
    if split.decoded_bytes() <= cache_bytes:
        decoded = decoded.cache()
    decoded = decoded.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    return _batches(decoded, load, batch=batch, seed=seed, cache_one_batch=cache_one_batch)


def _colour_eval(split: Split, spec, *, multiple: int, max_size: int):
    """Whole images, batch 1, centre-cropped to ``multiple``: (L / l_scale, the RGB target)."""
    small = [p for p in split.pairs if 0 < min(p.shape) < multiple]
    if small:
        raise fail(small[0].raw, f"{small[0].shape[1]}x{small[0].shape[0]} is smaller than the model's input "
                                 f"multiple {multiple}")

    def load(path):
        rgb = decode_target(path)
        h, w = tf.shape(rgb)[0], tf.shape(rgb)[1]
        ch, cw = h // multiple * multiple, w // multiple * multiple
        if max_size:
            cap = max_size // multiple * multiple
            ch, cw = tf.minimum(ch, cap), tf.minimum(cw, cap)
        rgb = rgb[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw]
        return colour.model_input(rgb, spec.l_scale, tnp)[None], rgb[None]

    return _colour_files(split).map(load, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def read_image(split: Split, pair) -> np.ndarray:
    """One image of a colourisation split as float32 H x W x 3 in [0, 1]; a file that does not decode is a
    one-line error naming it."""
    try:
        return decode_target(tf.constant(pair.raw)).numpy()
    except tf.errors.OpError as err:
        raise fail(pair.raw, f"cannot decode the image ({err.message.splitlines()[0]})") from None


def read_pair(split: Split, pair) -> tuple:
    """One whole pair as NumPy: (mosaic float32 H x W in sensor values, target float32 H x W x 3 in [0, 1]),
    decoded exactly as training does; a file that does not decode is a one-line error naming it."""
    try:
        mosaic = _decoder(split)(tf.constant(pair.raw)).numpy().astype(np.float32)
    except tf.errors.OpError as err:
        raise fail(pair.raw, f"cannot decode the RAW ({err.message.splitlines()[0]})") from None
    try:
        target = decode_target(tf.constant(pair.target)).numpy()
    except tf.errors.OpError as err:
        raise fail(pair.target, f"cannot decode the target ({err.message.splitlines()[0]})") from None
    p = bayer.period(split.pattern)
    h, w = mosaic.shape[0] // p * p, mosaic.shape[1] // p * p
    if target.shape[:2] != mosaic.shape[:2]:
        raise fail(pair.target, f"target is {target.shape[1]}x{target.shape[0]} but its RAW is "
                                f"{mosaic.shape[1]}x{mosaic.shape[0]}")
    return mosaic[:h, :w], target[:h, :w]


__all__ = ["model_input", "training_dataset", "eval_dataset", "decode_target", "read_pair", "read_image"]
