"""Source photos for synthesis: the bundled scikit-image photos (fixed split by scene), or a folder of the user's
own sRGB photos (split by file name), and random crops of them."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tflite_isp.core.errors import fail

SPLITS = ("train", "val", "test")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")

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


def split_of(scene: str) -> str:
    """Fixed split table: chelsea is validation, astronaut test, every other scene training."""
    return _SCENE_SPLIT.get(scene, "train")




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




def file_split(name: str) -> str:
    """A flat image folder's split of one file, fixed by its name (adding files never moves another): 80 % train,
    10 % val, 10 % test."""
    bucket = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 10
    return "val" if bucket == 8 else "test" if bucket == 9 else "train"


@dataclass(frozen=True)
class Photo:
    """One source photo: its name (a bundled photo or a file path), split, and whether it was JPEG-compressed."""

    name: str
    split: str
    jpeg: bool

    def load(self) -> np.ndarray:
        return load_photo(self.name) if "/" not in self.name else load_file(self.name)


def bundled() -> list:
    """The bundled photos in table order, split by scene."""
    return [Photo(name, split_of(scene), jpeg) for name, scene, jpeg in PHOTOS]


def from_folder(folder) -> list:
    """The user's sRGB photos in ``folder`` (PNG/JPEG), split 80/10/10 by a hash of each file name; one line if
    none, or if a split would be empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise fail(folder, "no such folder of photos")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise fail(folder, f"no {'/'.join(IMAGE_EXTS)} photos here")
    photos = [Photo(str(p.resolve()), file_split(p.name), p.suffix.lower() != ".png") for p in files]
    empty = [s for s in SPLITS if not any(ph.split == s for ph in photos)]
    if empty:
        raise fail(folder, f"{len(files)} photo(s) leave no {' or '.join(empty)} split (split by file name, "
                           "80/10/10); add photos")
    return photos


@lru_cache(maxsize=16)
def load_file(path: str) -> np.ndarray:
    """A photo file as read-only float32 H x W x 3 in [0, 1]; an unreadable file is one line."""
    import imageio.v3 as iio  # lazy: only user photo folders need it

    try:
        img = np.asarray(iio.imread(path))
    except Exception as err:  # imageio raises many types for a damaged file
        raise fail(path, f"cannot read this photo ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    img = np.asarray(img[..., :3], np.float32) / np.float32(scale)
    img.setflags(write=False)
    return img
