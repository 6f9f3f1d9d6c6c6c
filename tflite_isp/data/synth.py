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
from functools import lru_cache
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tflite_isp.core.cache import cache_dir
from tflite_isp.core.errors import UserError, fail
from tflite_isp.raw import unprocess as up
from tflite_isp.raw.dng import write_dng

VERSION = "embedded-v1"
SPLITS = ("train", "val", "test")

#: (photo, scene, JPEG?) for the bundled photos used. Both motorcycle views are one scene.
PHOTOS = (
    ("astronaut", "astronaut", False),
    ("coffee", "coffee", False),
    ("chelsea", "chelsea", False),
    ("rocket", "rocket", True),
    ("motorcycle_left", "stereo_motorcycle", False),
    ("motorcycle_right", "stereo_motorcycle", False),
    ("hubble_deep_field", "hubble_deep_field", True),
    ("retina", "retina", True),
    ("immunohistochemistry", "immunohistochemistry", False),
)
_SCENE_SPLIT = {"chelsea": "val", "astronaut": "test"}

#: The simulated ``isp`` sensor: fixed colour (Brooks' DND matrix #1), 10-bit RGGB.
ISP_SENSOR = {
    "pattern": "RGGB",
    "black": 64,
    "white": 1023,
    "bit_depth": 10,
    "xyz_to_cam": up.DND_XYZ_TO_CAM[0].tolist(),
    "rgb_to_cam": up.rgb_to_cam(up.DND_XYZ_TO_CAM[0]).round(6).tolist(),
}

#: The simulated ``lowlight`` camera: SID's Sony A7S II levels and dcraw colour matrix.
LOWLIGHT_SENSOR = {
    "pattern": "RGGB",
    "black": 512,
    "white": 16383,
    "bit_depth": 14,
    "xyz_to_cam": up.SONY_A7S2_XYZ_TO_CAM.tolist(),
    "make": "SONY",
    "model": "ILCE-7SM2 (tflite_isp synthetic)",
}
LONG_EXPOSURE = "10"
#: (exposure in seconds as SID spells it, ratio to the 10 s long exposure)
SHORT_EXPOSURES = (("0.1", 100), ("0.04", 250), ("0.033", 300))
_SPLIT_DIGIT = {"train": 0, "test": 1, "val": 2}
_F_NUMBERS = (2.8, 4.0, 5.6, 8.0, 11.0)
_TASK_ID = {"isp": 1, "lowlight": 2, "colorize": 3}


def split_of(scene: str) -> str:
    """Fixed split table: chelsea is validation, astronaut test, every other scene training."""
    return _SCENE_SPLIT.get(scene, "train")


def split_photos() -> dict:
    """Photo names per split, in table order."""
    return {s: [p for p, scene, _ in PHOTOS if split_of(scene) == s] for s in SPLITS}


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

# --- Photos and crops --------------------------------------------------------------------


@lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as read-only float32 H x W x 3 in [0, 1] (no download)."""
    import skimage.data as data  # lazy: scikit-image (and scipy) only when photos are read, not for enhance

    if name.startswith("motorcycle_"):
        left, right, _ = data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(data, name)()
    img = np.asarray(img, np.float32)[..., :3] / 255.0
    img.setflags(write=False)
    return img


def _crop_scale(photo_shape, out_shape, jpeg: bool, rng) -> float:
    """Random down-scale factor for one crop; JPEGs at least 2x (Brooks) where the photo allows."""
    fit = min(photo_shape[0] / out_shape[0], photo_shape[1] / out_shape[1])
    if fit < 1:
        raise ValueError(f"photo {photo_shape[:2]} is smaller than the crop {out_shape}")
    base = 2.0 if jpeg else 1.0
    return float(min(base * np.exp(rng.uniform(0.0, np.log(2.0))), fit))


def random_crop(photo, out_shape, jpeg: bool, rng, tries: int = 8) -> np.ndarray:
    """A randomly placed, randomly down-scaled H x W x 3 crop, avoiding near-black or flat windows."""

    for _ in range(tries):
        scale = _crop_scale(photo.shape, out_shape, jpeg, rng)
        wh = [min(int(round(n * scale)), m) for n, m in zip(out_shape, photo.shape)]
        y = int(rng.integers(0, photo.shape[0] - wh[0] + 1))
        x = int(rng.integers(0, photo.shape[1] - wh[1] + 1))
        window = photo[y:y + wh[0], x:x + wh[1]]
        if tuple(wh) != tuple(out_shape):
            from skimage.transform import resize  # lazy: scipy only when a set is generated

            window = resize(window, out_shape, order=1, anti_aliasing=True)
        if window.mean() >= 0.05 and window.std() >= 0.03:
            break
    return np.clip(window, 0.0, 1.0).astype(np.float32)


def _rng(seed: int, task: str, photo_index: int, item: int) -> np.random.Generator:
    return np.random.default_rng([seed, _TASK_ID[task], photo_index, item])

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


def isp_pair(srgb, rng: np.random.Generator):
    """(uint16 Bayer RAW, uint8 sRGB target) for one crop from the fixed ``isp`` sensor."""
    target = np.round(srgb * 255.0).astype(np.uint8)
    gains = up.random_gains(rng)  # white balance differs per shot, as illuminants vary
    linear = up.unprocess(target / np.float32(255.0), np.asarray(ISP_SENSOR["rgb_to_cam"]), gains)
    bayer = up.mosaic(linear, ISP_SENSOR["pattern"])
    shot, read = up.brooks_noise_levels(rng)
    noisy = up.add_heteroscedastic_noise(bayer, shot, read, rng)
    return up.to_dn(noisy, ISP_SENSOR["black"], ISP_SENSOR["white"]), target


def make_isp(out_dir, *, seed: int = 0, crops_per_photo=None, eval_crops_per_photo=None,
             size=None, small: bool = False) -> Path:
    """Write the MAI 2021 style ``isp`` set; defaults 48 crops per training photo, 32 per val/test photo, 272 px.

    272 px leaves room for 256 px training patches plus the two pixels that phase-true
    augmentation trims (see bayer.augment_mosaic).

    ``small`` gives a tiny set (2 crops per photo, 64 px) for tests.
    """
    crops_per_photo = crops_per_photo or (2 if small else 48)
    eval_crops_per_photo = eval_crops_per_photo or (2 if small else 32)
    size = int(size or (64 if small else 272))
    if size % 2:
        raise ValueError(f"size must be even for a Bayer mosaic, got {size}")
    out_dir = Path(out_dir)
    counts = dict.fromkeys(SPLITS, 0)
    with staging(out_dir) as tmp:
        for split in SPLITS:
            for sub in ("mediatek_raw", "fujifilm"):
                (tmp / split / sub).mkdir(parents=True)
        for index, (photo, scene, jpeg) in enumerate(PHOTOS):
            split = split_of(scene)
            n = crops_per_photo if split == "train" else eval_crops_per_photo
            image = load_photo(photo)
            for item in range(n):
                rng = _rng(seed, "isp", index, item)
                raw, target = isp_pair(random_crop(image, (size, size), jpeg, rng), rng)
                i = counts[split]
                _write_png(tmp / split / "mediatek_raw" / f"{i}.png", raw)
                _write_png(tmp / split / "fujifilm" / f"{i}.png", target)
                counts[split] += 1
            _progress(f"synth isp: {photo} -> {split} ({n} pairs)")
        sensor = dict(ISP_SENSOR, source="scikit-image bundled photos, unprocessed after Brooks et al. 2019")
        _write_json(tmp / "sensor.json", sensor)
        _write_json(tmp / "MANIFEST.json", {
            "task": "isp",
            "generator": f"tflite_isp.synth {VERSION}",
            "seed": seed,
            "size": size,
            "crops_per_photo": {"train": crops_per_photo, "val": eval_crops_per_photo, "test": eval_crops_per_photo},
            "counts": counts,
            "photos": split_photos(),
            "layout": "{split}/mediatek_raw/<i>.png (uint16 RGGB, black 64, white 1023) + "
                      "{split}/fujifilm/<i>.png (sRGB)",
        })
    return out_dir

# --- Task 2: low-light pairs (SID layout) -------------------------------------------------


def lowlight_frame_shape(size: int) -> tuple:
    """Landscape 2:3 frame (like SID's 2848 x 4256) of width ``size``, height a multiple of 32."""
    return (max(32, (size * 2 // 3) // 32 * 32), size)


def lowlight_scene(srgb, rng: np.random.Generator):
    """One scene: long-exposure DN mosaic, short ones per exposure, and the scene's metadata."""
    black, white = LOWLIGHT_SENSOR["black"], LOWLIGHT_SENSOR["white"]
    gains = up.random_gains(rng)
    rgb2cam = up.rgb_to_cam(up.SONY_A7S2_XYZ_TO_CAM)
    clean = up.mosaic(up.unprocess(srgb, rgb2cam, gains), LOWLIGHT_SENSOR["pattern"])
    noise = up.sample_eld_noise(rng)
    span = white - black
    # The long exposure: the same sensor's noise in its Gaussian form, mild at full exposure.
    long = up.to_dn(up.add_heteroscedastic_noise(clean, noise["K"] / span, (noise["read_sigma"] / span) ** 2, rng),
                    black, white)
    shorts = {exp: up.lowlight_capture(clean * span, ratio, rng, noise=noise, black=black, white=white)
              for exp, ratio in SHORT_EXPOSURES}
    meta = dict(noise, iso=up.iso_for_gain(noise["K"]), f_number=float(rng.choice(_F_NUMBERS)),
                as_shot_neutral=[1.0 / gains[1], 1.0, 1.0 / gains[2]], rgb_gain=gains[0])
    return long, shorts, meta


def _write_scene_dngs(root: Path, name: str, long, shorts, meta) -> list:

    common = dict(pattern=LOWLIGHT_SENSOR["pattern"], black=LOWLIGHT_SENSOR["black"],
                  white=LOWLIGHT_SENSOR["white"], xyz_to_cam=LOWLIGHT_SENSOR["xyz_to_cam"],
                  as_shot_neutral=meta["as_shot_neutral"], make=LOWLIGHT_SENSOR["make"],
                  model=LOWLIGHT_SENSOR["model"], iso=meta["iso"])
    long_name = f"{name}_00_{LONG_EXPOSURE}s.dng"
    write_dng(root / "Sony" / "long" / long_name, long, exposure_time=float(LONG_EXPOSURE), **common)
    lines = []
    for exp, _ in SHORT_EXPOSURES:
        short_name = f"{name}_00_{exp}s.dng"
        write_dng(root / "Sony" / "short" / short_name, shorts[exp], exposure_time=float(exp), **common)
        lines.append(f"./Sony/short/{short_name} ./Sony/long/{long_name} ISO{meta['iso']} F{meta['f_number']:g}")
    return lines


def make_lowlight(out_dir, *, seed: int = 0, scenes_per_photo=None, eval_scenes_per_photo=None,
                  size=None, small: bool = False) -> Path:
    """Write the SID style ``lowlight`` set; defaults 5 scenes per training photo, 6 per val/test photo, 288 x 448.

    ``small`` gives a tiny set (1 scene per photo, 64 x 128) for tests.
    """
    scenes_per_photo = scenes_per_photo or (1 if small else 5)
    eval_scenes_per_photo = eval_scenes_per_photo or (1 if small else 6)
    shape = lowlight_frame_shape(int(size or (128 if small else 448)))
    out_dir = Path(out_dir)
    lists = {s: [] for s in SPLITS}
    scenes = []
    with staging(out_dir) as tmp:
        for sub in ("short", "long"):
            (tmp / "Sony" / sub).mkdir(parents=True)
        for index, (photo, scene, jpeg) in enumerate(PHOTOS):
            split = split_of(scene)
            n = scenes_per_photo if split == "train" else eval_scenes_per_photo
            image = load_photo(photo)
            for item in range(n):
                rng = _rng(seed, "lowlight", index, item)
                long, shorts, meta = lowlight_scene(random_crop(image, shape, jpeg, rng), rng)
                name = f"{_SPLIT_DIGIT[split]}{len(lists[split]) // len(SHORT_EXPOSURES) + 1:04d}"
                lists[split] += _write_scene_dngs(tmp, name, long, shorts, meta)
                scenes.append(dict(meta, scene=name, photo=photo, split=split))
            _progress(f"synth lowlight: {photo} -> {split} ({n} scenes)")
        for split, lines in lists.items():
            (tmp / f"Sony_{split}_list.txt").write_text("".join(line + "\n" for line in lines))
        _write_json(tmp / "MANIFEST.json", {
            "task": "lowlight",
            "generator": f"tflite_isp.synth {VERSION}",
            "seed": seed,
            "frame": list(shape),
            "scenes_per_photo": {"train": scenes_per_photo, "val": eval_scenes_per_photo,
                                 "test": eval_scenes_per_photo},
            "counts": {s: {"scenes": len(v) // len(SHORT_EXPOSURES), "pairs": len(v)} for s, v in lists.items()},
            "photos": split_photos(),
            "ratios": {f"{e}s": r for e, r in SHORT_EXPOSURES},
            "sensor": LOWLIGHT_SENSOR,
            "noise_model": "ELD Gaussian+Poisson+row, SonyA7S2 calibration (Wei et al. 2020)",
            "scenes": scenes,
        })
    return out_dir

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
        for index, (photo, scene, jpeg) in enumerate(PHOTOS):
            split = split_of(scene)
            n = crops_per_photo if split == "train" else eval_crops_per_photo
            for item in range(n):
                crop = random_crop(load_photo(photo), (size, size), jpeg, _rng(seed, "colorize", index, item))
                _write_png(tmp / split / f"{counts[split]}.png", np.round(crop * 255.0).astype(np.uint8))
                counts[split] += 1
            _progress(f"synth colorize: {photo} -> {split} ({n} images)")
        _write_json(tmp / "MANIFEST.json", {"task": "colorize", "generator": f"tflite_isp.synth {VERSION}",
                                            "seed": seed, "size": size, "counts": counts, "photos": split_photos(),
                                            "layout": "{split}/<i>.png (8-bit sRGB)"})
    return Path(out_dir)

# --- The embedded cache --------------------------------------------------------------------


MAKERS = {"isp": make_isp, "lowlight": make_lowlight, "colorize": make_colorize}


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
