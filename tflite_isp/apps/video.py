"""Where ``python -m tflite_isp.stream`` reads frames (a video file, a camera, a folder) and how it writes the video.

Video files and cameras are decoded by imageio_ffmpeg's own ffmpeg (``stream_loop.read_video``); a camera is
``camera:N`` or ``/dev/videoN``, read through ffmpeg's v4l2 input. A folder is read in name order: images for a
colourisation model, RAW frames for an ISP one (the caller reads those). Every problem is one line.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflite_isp.core import atomic
from tflite_isp.core.errors import fail
from tflite_isp.run.stream_loop import StreamError, VideoWriter, read_video

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
FOLDER_FPS = 25.0  # a folder of frames has no rate of its own: the video is written at this one


@dataclass
class Source:
    """What a stream reads: ``kind`` (video, camera, images, raw), its fps, and the frames or files."""

    kind: str
    path: str
    fps: float
    frames: object = None  # an iterator of H x W x 3 uint8 frames (video, camera, images)
    files: list = None  # the RAW files (kind raw), in name order


def camera_device(spec: str):
    """``camera:N`` -> /dev/videoN, ``/dev/videoN`` as is; None for anything else."""
    m = re.fullmatch(r"camera:(\d+)", spec)
    if m:
        return f"/dev/video{m.group(1)}"
    return spec if re.fullmatch(r"/dev/video\d+", spec) else None


def open_camera(device: str) -> Source:
    if not os.path.exists(device):
        raise fail(device, "no such camera (no video device here)")
    try:
        fps, _, frames = read_video(device, input_params=["-f", "v4l2"])
    except StreamError as err:
        busy = "busy" in err.problem.lower()
        raise fail(device, "the camera is busy (another program has it open)" if busy else
                   f"cannot open the camera ({err.problem})") from None
    return Source("camera", device, fps, frames=frames)


def folder_files(folder: Path, raw_suffixes) -> Source:
    """The folder's images (kind images) or RAW frames (kind raw), in name order; an empty folder is an error."""
    entries = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
    raws = [p for p in entries if p.suffix.lower() in raw_suffixes]
    if images and raws:
        raise fail(folder, f"holds both images ({len(images)}) and RAW frames ({len(raws)}): give one kind")
    if not images and not raws:
        raise fail(folder, f"no frames here (images: {', '.join(IMAGE_SUFFIXES[:3])}, ...; RAW: "
                           f"{', '.join(raw_suffixes[:3])}, ...)")
    if raws:
        return Source("raw", str(folder), FOLDER_FPS, files=raws)
    return Source("images", str(folder), FOLDER_FPS, frames=_read_images(images))


def _read_images(files):
    import imageio.v3 as iio  # lazy: only a folder of images needs it

    for path in files:
        try:
            img = np.asarray(iio.imread(path))
        except Exception as err:  # any reader failure is this file's one line
            raise fail(path, f"cannot read this image ({str(err).splitlines()[0] if str(err) else err})") from None
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        if img.dtype != np.uint8:
            raise fail(path, f"{img.dtype} image: 8-bit images only")
        yield img[..., :3]


def open_source(spec: str, raw_suffixes) -> Source:
    """A video file, a camera or a folder; the first frame of a video is not read yet (decode is timed)."""
    device = camera_device(spec)
    if device:
        return open_camera(device)
    path = Path(spec)
    if path.is_dir():
        return folder_files(path, raw_suffixes)
    if not path.is_file():
        raise fail(path, "no such video, folder or camera (camera:N or /dev/videoN)")
    if path.suffix.lower() in raw_suffixes or path.suffix.lower() in IMAGE_SUFFIXES:
        raise fail(path, "a single image, not a stream: give its folder")
    try:
        fps, _, frames = read_video(path)
    except StreamError as err:
        raise fail(path, err.problem) from None
    return Source("video", str(path), fps, frames=_one_line(frames, path))


def _one_line(frames, path):
    """The frames, with a decode failure part way turned into the one-line UserError."""
    try:
        yield from frames
    except StreamError as err:
        raise fail(path, err.problem) from None


def check_output(path) -> Path:
    """The output video's path; a suffix ffmpeg would not write H.264 into is one line."""
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".mkv", ".mov", ".avi"):
        raise fail(path, "the output video must be .mp4, .mkv, .mov or .avi")
    return path


@contextmanager
def video_out(path, fps: float):
    """A VideoWriter on a temporary name beside ``path``, renamed onto it when the block succeeds; on an error or
    an interrupt the encoder is stopped and the temporary file removed, so ``path`` is never half-written."""
    if path is None:
        yield None
        return
    path = check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(path) as tmp:
        writer = VideoWriter(tmp, fps, name=path)
        try:
            yield writer
        finally:
            writer.close()
        if writer.size is None:
            raise fail(path, "no frame was written")


__all__ = ["FOLDER_FPS", "IMAGE_SUFFIXES", "Source", "camera_device", "check_output", "open_source", "video_out"]
