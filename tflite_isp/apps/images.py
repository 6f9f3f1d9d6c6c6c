"""Writing the enhanced frame: orientation, 8-bit JPEG and streamed 16-bit PNG, a band of rows at a time."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tflite_isp.apps.memory_plan import (
    MB,
)
from tflite_isp.core import atomic

CHUNK_BYTES = 2 * MB  # float rows converted at a time (model input, 8- and 16-bit output): a few of these live


ORIENT = {0: 0, 3: 2, 5: 1, 6: 3}  # LibRaw sizes.flip -> quarter turns counter-clockwise (np.rot90)


def _band_rows(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(1, row_bytes))


def oriented(rgb: np.ndarray, flip: int) -> np.ndarray:
    return np.rot90(rgb, ORIENT.get(flip, 0)) if ORIENT.get(flip, 0) else rgb


def png16_bytes(rgb16: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow, behind imageio, writes 16-bit grayscale only): big-endian rows, filter 0, zlib."""

    h, w, _ = rgb16.shape
    return b"".join([_PNG_SIGNATURE, _png_chunk(b"IHDR", _png_header(h, w)),
                     _png_chunk(b"IDAT", zlib.compress(_png_rows(rgb16), 6)), _png_chunk(b"IEND", b"")])


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, body: bytes) -> bytes:

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header(h: int, w: int) -> bytes:

    return struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)


def _png_rows(rgb16: np.ndarray) -> bytes:
    h, w, _ = rgb16.shape
    return np.concatenate([np.zeros((h, 1), np.uint8), rgb16.astype(">u2").view(np.uint8).reshape(h, w * 6)],
                          axis=1).tobytes()


def write_png16(path: Path, rgb: np.ndarray) -> Path:
    """``rgb`` (float, [0, 1]) as a 16-bit RGB PNG at ``path``, atomically, compressed a band of rows at a time
    into consecutive IDAT chunks: no 16-bit copy of the whole image is ever held."""

    h, w, _ = rgb.shape
    rows = _band_rows(w * 3 * 4)
    with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(_PNG_SIGNATURE + _png_chunk(b"IHDR", _png_header(h, w)))
        z = zlib.compressobj(6)
        for r in range(0, h, rows):
            data = z.compress(_png_rows(np.round(rgb[r:r + rows] * 65535).astype(np.uint16)))
            if data:
                f.write(_png_chunk(b"IDAT", data))
        f.write(_png_chunk(b"IDAT", z.flush()) + _png_chunk(b"IEND", b""))
    return path


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """round(rgb * 255) as uint8, a band of rows at a time (no full-size float temporaries)."""
    h, w, c = rgb.shape
    out = np.empty((h, w, c), np.uint8)
    rows = _band_rows(w * c * 4)
    for r in range(0, h, rows):
        out[r:r + rows] = np.round(rgb[r:r + rows] * 255).astype(np.uint8)
    return out


def write_jpeg(path: Path, rgb8: np.ndarray) -> Path:
    """An 8-bit RGB image as a JPEG (quality 95) at ``path``, atomically."""

    with atomic.replacing(path) as tmp:
        iio.imwrite(tmp, rgb8, extension=".jpg", quality=95)
    return path


def write_image(path: Path, rgb: np.ndarray, png16: bool = False) -> list:
    """JPEG (quality 95) at ``path``, plus a 16-bit PNG beside it with ``png16``; each written atomically."""
    written = [write_jpeg(path, to_uint8(rgb))]
    if png16:
        written.append(write_png16(path.with_suffix(".png"), rgb))
    return written
