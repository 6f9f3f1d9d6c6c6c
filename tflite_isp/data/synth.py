"""The embedded default datasets, synthesised offline from photos bundled in scikit-image.

Three tasks, each in the on-disk layout of the public dataset it stands in for:

* ``isp``: MAI 2021 style pairs ``{split}/mediatek_raw/<i>.png`` (uint16 Bayer) and
  ``{split}/fujifilm/<i>.png`` (8-bit sRGB target), from one simulated 10-bit RGGB sensor.
* ``lowlight``: SID style ``Sony/{short,long}/*.dng`` with ``Sony_{split}_list.txt``, the
  shorts made with ELD's Gaussian+Poisson model at ratios 100, 250 and 300.
* ``colorize``: plain sRGB crops ``{split}/<i>.png`` (the ``images`` layout), each its own target.

RAW is made by unprocessing (Brooks et al. 2019, see :mod:`tflite_isp.unprocess`). Splits
go by source photo (a fixed table), so no scene is in two splits. Everything is drawn from
generators seeded by (seed, task, photo, item): the same seed gives the same bytes.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tflite_isp.core.cache import cache_dir
from tflite_isp.core.errors import UserError, fail
from tflite_isp.data.photos import SPLITS, bundled, random_crop
from tflite_isp.raw import bayer, sensor
from tflite_isp.raw import unprocess as up
from tflite_isp.raw.dng import write_dng

VERSION = "embedded-v1"


#: The embedded sets' sensors, as built-in profiles (tflite_isp.raw.sensor.BUILTIN).
ISP_PROFILE, LOWLIGHT_PROFILE = "mai21-10bit", "sony-a7s2"
LONG_EXPOSURE = "10"
#: (exposure in seconds as SID spells it, ratio to the 10 s long exposure)
SHORT_EXPOSURES = (("0.1", 100), ("0.04", 250), ("0.033", 300))
_SPLIT_DIGIT = {"train": 0, "test": 1, "val": 2}
_F_NUMBERS = (2.8, 4.0, 5.6, 8.0, 11.0)
_TASK_ID = {"isp": 1, "lowlight": 2, "colorize": 3, "camera": 4}  # camera: camera_files


def _rng(seed: int, task: str, photo_index: int, item: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TASK_ID[task], photo_index, item])


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

# --- Output folders ---------------------------------------------------------------------


@contextmanager
def staging(out_dir):
    """Yield a temporary sibling of ``out_dir`` and rename it into place only if the block succeeds."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise fail(out_dir, "exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise fail(out_dir, "folder is not empty; give a new or empty folder")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
        os.chmod(tmp, 0o755)
    except OSError as err:
        raise fail(out_dir.parent, f"cannot create a folder here ({err.strerror or err})") from None
    try:
        yield tmp
        try:
            os.replace(tmp, out_dir)
        except OSError as err:
            raise fail(out_dir, f"cannot move the finished dataset into place ({err.strerror or err})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _write_png(path: Path, image: np.ndarray) -> None:
    """Lossless PNG; zlib level 1 is 4x faster than the default on noisy RAW and only ~5 % larger."""

    iio.imwrite(path, image, extension=".png", compress_level=1)

# --- Task 1: ISP pairs (MAI 2021 layout) ---------------------------------------------------


def isp_pair(srgb, rng: np.random.Generator, profile=None, isos=None):
    """(uint16 RAW mosaic, uint8 sRGB target) for one crop, as the profiled sensor (default: the embedded one)."""
    profile = profile or sensor.builtin(ISP_PROFILE)
    target = np.round(srgb * 255.0).astype(np.uint8)
    gains = sensor.draw_gains(profile, rng)  # white balance differs per shot, as illuminants vary
    # the matrix as sensor.json records it (6 decimals), so the file describes the data exactly
    linear = up.unprocess(target / np.float32(255.0), profile.rgb_to_cam.round(6), gains)
    clean = up.mosaic(linear, profile.pattern)
    return sensor.capture(clean, profile, sensor.draw_noise(profile, rng, isos), rng), target


def sensor_json(profile: sensor.SensorProfile) -> dict:
    """The PNG layouts' ``sensor.json``: pattern and levels the loader reads, and the whole profile."""
    return {"pattern": profile.pattern, "black": profile.black_level, "white": profile.white,
            "bit_depth": profile.bit_depth,
            "xyz_to_cam": [list(r) for r in profile.xyz_to_cam], "rgb_to_cam": profile.rgb_to_cam.round(6).tolist(),
            "sensor": profile.to_dict()}


def make_isp(out_dir, *, seed: int = 0, crops_per_photo=None, eval_crops_per_photo=None,
             size=None, small: bool = False, profile=None, photos=None, isos=None) -> Path:
    """Write a MAI 2021 style ``isp`` set; defaults 48 crops per training photo, 32 per val/test photo, 272 px.

    272 px leaves room for 256 px training patches plus the pixels that phase-true augmentation trims (see
    bayer.augment_mosaic). ``profile`` is the sensor (default: the embedded ``mai21-10bit``), ``photos`` a list of
    :class:`photos.Photo` (default: the bundled ones), ``isos`` the ISOs to draw noise at (default: the profile's
    range). ``small`` gives a tiny set (2 crops per photo, 64 px) for tests.
    """
    profile = profile or sensor.builtin(ISP_PROFILE)
    sources = photos or bundled()
    crops_per_photo = crops_per_photo or (2 if small else 48)
    eval_crops_per_photo = eval_crops_per_photo or (2 if small else 32)
    size = int(size or (64 if small else 272))
    if size % bayer.period(profile.pattern):
        raise UserError(f"size must be a multiple of the {profile.pattern} CFA's period, got {size}")
    counts = dict.fromkeys(SPLITS, 0)
    with staging(out_dir) as tmp:
        for split in SPLITS:
            for sub in ("mediatek_raw", "fujifilm"):
                (tmp / split / sub).mkdir(parents=True)
        for index, photo in enumerate(sources):
            n = crops_per_photo if photo.split == "train" else eval_crops_per_photo
            image = photo.load()
            for item in range(n):
                rng = _rng(seed, "isp", index, item)
                raw, target = isp_pair(random_crop(image, (size, size), photo.jpeg, rng), rng, profile, isos)
                i = counts[photo.split]
                _write_png(tmp / photo.split / "mediatek_raw" / f"{i}.png", raw)
                _write_png(tmp / photo.split / "fujifilm" / f"{i}.png", target)
                counts[photo.split] += 1
            _progress(f"synth isp: {Path(photo.name).name} -> {photo.split} ({n} pairs)")
        _write_json(tmp / "sensor.json", sensor_json(profile))
        _write_json(tmp / "MANIFEST.json", {
            "task": "isp", "generator": f"tflite_isp.synth {VERSION}", "seed": seed, "size": size,
            "crops_per_photo": {"train": crops_per_photo, "val": eval_crops_per_photo, "test": eval_crops_per_photo},
            "counts": counts, "photos": _split_names(sources), "sensor": profile.name, "isos": isos,
            "source": "photos unprocessed after Brooks et al. 2019",
            "layout": f"{{split}}/mediatek_raw/<i>.png (uint16 {profile.pattern}, levels in sensor.json) + "
                      "{split}/fujifilm/<i>.png (sRGB)",
        })
    return Path(out_dir)


def _split_names(sources) -> dict:
    return {s: [Path(p.name).name for p in sources if p.split == s] for s in SPLITS}

# --- Task 2: low-light pairs (SID layout) -------------------------------------------------


def lowlight_frame_shape(size: int) -> tuple:
    """Landscape 2:3 frame (like SID's 2848 x 4256) of width ``size``, height a multiple of 32."""
    return (max(32, (size * 2 // 3) // 32 * 32), size)


def short_exposures(ratios=None) -> tuple:
    """(exposure as the SID file name spells it, the ratio the loader reads back from the names) per ratio."""
    if not ratios:
        return SHORT_EXPOSURES
    out = []
    for r in ratios:
        if not 1 < float(r) <= 300:
            raise UserError(f"low-light ratio {r:g} outside (1, 300] (SID amplifies by at most 300)")
        name = f"{float(LONG_EXPOSURE) / float(r):.4g}"
        out.append((name, min(float(LONG_EXPOSURE) / float(name), 300.0)))
    return tuple(out)


def lowlight_scene(srgb, rng: np.random.Generator, profile=None, isos=None, exposures=SHORT_EXPOSURES):
    """One scene: long-exposure DN mosaic, short ones per exposure, and the scene's metadata."""
    profile = profile or sensor.builtin(LOWLIGHT_PROFILE)
    if profile.noise["model"] != "eld":
        raise UserError(f"sensor {profile.name}: low-light data needs a calibrated noise model (K, read, row: "
                        "data calibrate, or a DNG NoiseProfile), not Brooks' random levels")
    gains = sensor.draw_gains(profile, rng)
    clean = up.mosaic(up.unprocess(srgb, profile.rgb_to_cam, gains), profile.pattern)
    noise = sensor.draw_noise(profile, rng, isos)
    span = profile.white - float(np.mean(profile.black))
    # The long exposure: the same sensor's noise in its Gaussian form, mild at full exposure.
    long = sensor.capture(clean, profile, {"shot": noise["K"] / span, "read": (noise["read_sigma"] / span) ** 2}, rng)
    shorts = {exp: sensor.capture(clean, profile, noise, rng, ratio) for exp, ratio in exposures}
    meta = dict(noise, iso=int(noise.get("iso") or sensor.gain_iso(profile, noise["K"])),
                f_number=float(rng.choice(_F_NUMBERS)), as_shot_neutral=[1.0 / gains[1], 1.0, 1.0 / gains[2]],
                rgb_gain=gains[0])
    return long, shorts, meta


def _write_scene_dngs(root: Path, name: str, long, shorts, meta, profile) -> list:
    common = dict(pattern=profile.pattern, black=profile.black_level, white=int(profile.white),
                  xyz_to_cam=profile.xyz_to_cam, as_shot_neutral=meta["as_shot_neutral"], make=profile.make,
                  model=profile.model, iso=meta["iso"], noise_profile=sensor.noise_profile_tag(profile, meta))
    long_name = f"{name}_00_{LONG_EXPOSURE}s.dng"
    write_dng(root / "Sony" / "long" / long_name, long, exposure_time=float(LONG_EXPOSURE), **common)
    lines = []
    for exp in shorts:
        short_name = f"{name}_00_{exp}s.dng"
        write_dng(root / "Sony" / "short" / short_name, shorts[exp], exposure_time=float(exp), **common)
        lines.append(f"./Sony/short/{short_name} ./Sony/long/{long_name} ISO{meta['iso']} F{meta['f_number']:g}")
    return lines


def make_lowlight(out_dir, *, seed: int = 0, scenes_per_photo=None, eval_scenes_per_photo=None,
                  size=None, small: bool = False, profile=None, photos=None, isos=None, ratios=None) -> Path:
    """Write a SID style ``lowlight`` set; defaults 5 scenes per training photo, 6 per val/test photo, 288 x 448.

    ``profile``, ``photos``, ``isos`` as for :func:`make_isp` (default sensor: the embedded ``sony-a7s2``);
    ``ratios`` the amplification ratios (default SID's 100, 250, 300). ``small``: 1 scene per photo, 64 x 128.
    """
    profile = profile or sensor.builtin(LOWLIGHT_PROFILE)
    sources = photos or bundled()
    exposures = short_exposures(ratios)
    scenes_per_photo = scenes_per_photo or (1 if small else 5)
    eval_scenes_per_photo = eval_scenes_per_photo or (1 if small else 6)
    shape = lowlight_frame_shape(int(size or (128 if small else 448)))
    lists = {s: [] for s in SPLITS}
    scenes = []
    with staging(out_dir) as tmp:
        for sub in ("short", "long"):
            (tmp / "Sony" / sub).mkdir(parents=True)
        for index, photo in enumerate(sources):
            n = scenes_per_photo if photo.split == "train" else eval_scenes_per_photo
            image = photo.load()
            for item in range(n):
                rng = _rng(seed, "lowlight", index, item)
                long, shorts, meta = lowlight_scene(random_crop(image, shape, photo.jpeg, rng), rng, profile, isos,
                                                    exposures)
                name = f"{_SPLIT_DIGIT[photo.split]}{len(lists[photo.split]) // len(exposures) + 1:04d}"
                lists[photo.split] += _write_scene_dngs(tmp, name, long, shorts, meta, profile)
                scenes.append(dict(meta, scene=name, photo=Path(photo.name).name, split=photo.split))
            _progress(f"synth lowlight: {Path(photo.name).name} -> {photo.split} ({n} scenes)")
        for split, lines in lists.items():
            (tmp / f"Sony_{split}_list.txt").write_text("".join(line + "\n" for line in lines))
        _write_json(tmp / "MANIFEST.json", {
            "task": "lowlight", "generator": f"tflite_isp.synth {VERSION}", "seed": seed, "frame": list(shape),
            "scenes_per_photo": {"train": scenes_per_photo, "val": eval_scenes_per_photo,
                                 "test": eval_scenes_per_photo},
            "counts": {s: {"scenes": len(v) // len(exposures), "pairs": len(v)} for s, v in lists.items()},
            "photos": _split_names(sources), "ratios": {f"{e}s": r for e, r in exposures},
            "sensor": profile.to_dict(), "noise_model": profile.noise.get("source", profile.noise["model"]),
            "isos": isos, "scenes": scenes,
        })
    return Path(out_dir)

# --- Task 3: colourisation images (a folder of sRGB images per split) ------------------------


def make_colorize(out_dir, *, seed: int = 0, crops_per_photo=None, eval_crops_per_photo=None, size=None,
                  small: bool = False) -> Path:
    """Write the ``colorize`` set, ``{split}/<i>.png`` sRGB crops of the same photos and split; defaults 16 crops
    per training photo, 8 per val/test photo, 288 px (256 px training patches plus room to move)."""
    crops_per_photo = crops_per_photo or (2 if small else 16)
    eval_crops_per_photo = eval_crops_per_photo or (2 if small else 8)
    size = int(size or (64 if small else 288))
    counts = dict.fromkeys(SPLITS, 0)
    with staging(out_dir) as tmp:
        for split in SPLITS:
            (tmp / split).mkdir()
        for index, photo in enumerate(bundled()):
            n = crops_per_photo if photo.split == "train" else eval_crops_per_photo
            for item in range(n):
                crop = random_crop(photo.load(), (size, size), photo.jpeg, _rng(seed, "colorize", index, item))
                _write_png(tmp / photo.split / f"{counts[photo.split]}.png", np.round(crop * 255.0).astype(np.uint8))
                counts[photo.split] += 1
            _progress(f"synth colorize: {photo.name} -> {photo.split} ({n} images)")
        _write_json(tmp / "MANIFEST.json", {"task": "colorize", "generator": f"tflite_isp.synth {VERSION}",
                                            "seed": seed, "size": size, "counts": counts, "layout":
                                            "{split}/<i>.png (8-bit sRGB)", "photos": _split_names(bundled())})
    return Path(out_dir)

# --- The embedded cache --------------------------------------------------------------------


MAKERS = {"isp": make_isp, "lowlight": make_lowlight, "colorize": make_colorize}
# data synth --task camera (camera_files.make_camera) is not an embedded set: it needs a sensor


def embedded_root(task: str, *, seed: int = 0) -> Path:
    """Where the embedded ``task`` dataset lives (or will): ``<cache>/embedded-v1/<task>``."""
    if task not in MAKERS:
        raise UserError(f"unknown embedded dataset {task!r}; expected one of {sorted(MAKERS)}")
    return cache_dir() / VERSION / (task if seed == 0 else f"{task}-seed{seed}")


def ensure_embedded(task: str, *, seed: int = 0) -> Path:
    """The embedded ``task`` dataset, generated on first use (atomically: all or nothing)."""
    root = embedded_root(task, seed=seed)
    if (root / "MANIFEST.json").is_file():
        return root
    _progress(f"synth: generating the embedded {task} dataset into {root} (once)")
    try:
        MAKERS[task](root, seed=seed)
    except UserError:
        if (root / "MANIFEST.json").is_file():  # another process finished it first
            return root
        raise
    return root
