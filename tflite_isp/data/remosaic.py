"""A Quad Bayer MAI/Zurich-layout set -> the same set remosaiced to its base Bayer pattern (bayer.remosaic_quad),
so the ordinary 4-channel Bayer models train and score on it: the alternative to 16-channel packing that
benchmarks/quad.py measures. Targets are linked (or copied) unchanged; only the RAW PNGs and sensor.json change."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tflite_isp.core.errors import fail
from tflite_isp.data.synth import staging
from tflite_isp.raw import bayer

RAW_DIRS = ("mediatek_raw", "huawei_raw")  # the PNG layouts' RAW folders (layouts._RAW_DIRS)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _remosaic_png(src: Path, dst: Path, pattern: str) -> None:
    raw = iio.imread(src, extension=".png")
    if raw.ndim != 2 or raw.dtype != np.uint16 or raw.shape[0] % 4 or raw.shape[1] % 4:
        raise fail(src, f"not a 16-bit Quad Bayer mosaic with sides multiple of 4 ({raw.dtype} {raw.shape})")
    iio.imwrite(dst, bayer.remosaic_quad(raw, pattern)[0], extension=".png", compress_level=1)


def remosaic_dataset(src, out) -> Path:
    """Write ``out``: ``src`` (a Quad Bayer PNG-layout set with sensor.json) with every RAW remosaiced to Bayer and
    sensor.json's pattern set to the base Bayer pattern; the targets and other files are the same files."""
    src = Path(src)
    sensor_path = src / "sensor.json"
    if not sensor_path.is_file():
        raise fail(src, "no sensor.json: a Quad Bayer set must name its pattern there")
    sensor = json.loads(sensor_path.read_text())
    pattern = bayer.check_pattern(sensor.get("pattern", "RGGB"))
    if not bayer.is_quad(pattern):
        raise fail(sensor_path, f"pattern {pattern} is already Bayer; nothing to remosaic")
    with staging(out) as tmp:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            dst = tmp / rel
            if path.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            elif rel == Path("sensor.json"):
                dst.write_text(json.dumps({**sensor, "pattern": bayer.base_pattern(pattern),
                                           "remosaiced_from": pattern}, indent=1, sort_keys=True) + "\n")
            elif path.suffix.lower() == ".png" and rel.parent.name in RAW_DIRS:
                _remosaic_png(path, dst, pattern)
            else:
                _link_or_copy(path, dst)
    return Path(out)


__all__ = ["remosaic_dataset"]
