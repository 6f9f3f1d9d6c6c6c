"""The per-frame loop of ``python -m tflite_isp.stream``: decode, colourise, encode, each stage timed.

This module imports only the standard library, NumPy, ``imageio_ffmpeg`` and ``ai_edge_litert`` (both lazily) and
the colour convention (:mod:`tflite_isp.core.colour`, itself NumPy only), so the same file runs on a board:
``devices/board_programs/stream_fps.py`` copies it there beside ``colour.py`` and calls :func:`board_main`, which
runs :func:`run_stream` with :class:`Colorizer` exactly as the local command does; only the interpreter wrapper
differs (:class:`Interp` there, ``tflite_isp.run.litert.Runner`` here: the same quantise arithmetic).

Frames are uint8, so the colour conversion takes two shortcuts with colour's own constants and curves
(:func:`l_of_uint8`, :func:`render_uint8`; tested against ``colour.model_input`` and ``colour.render``): sRGB ->
linear and linear -> sRGB are tables, and only the Y row is computed for L*. At 640x480 that is about 35 ms of
conversion per frame instead of 80 on one core.

ffmpeg decodes and encodes in its own process: "decode" is the time this process waits for the next frame from
its pipe, "encode" the time spent handing a frame to the encoder's pipe (it blocks when the encoder falls behind)
plus the final flush.
"""
from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager

import numpy as np

try:
    from tflite_isp.core import colour
except ImportError:  # on a board: shipped beside this file as colour.py
    import colour

STAGES = ("decode", "colour", "inference", "encode")
ERROR_GAIN = 4.0  # the side-by-side error panel: |colourised - original| x 4, so small hue errors show


class StreamError(RuntimeError):
    """A source, model or sink that cannot be streamed; ``str()`` is ``PATH: problem``."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


def _ffmpeg_line(err) -> str:
    """The useful line of an imageio_ffmpeg error: ffmpeg's last stderr line, else the message's first."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    tail = [ln for ln in lines if not ln.startswith(("ffmpeg version", "built with", "configuration:", "lib", "==="))]
    return (tail[-1] if tail else lines[0] if lines else type(err).__name__)[:200]


# --- Video in and out ----------------------------------------------------------------------------------------------

def read_video(source, input_params=None):
    """(fps, (w, h), frames): ``frames`` yields H x W x 3 uint8 frames decoded by imageio_ffmpeg; StreamError when
    ffmpeg cannot open the source or stops with an error part way."""
    import imageio_ffmpeg  # lazy: only where video is decoded

    gen = imageio_ffmpeg.read_frames(str(source), input_params=input_params)
    try:
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as err:
        raise StreamError(source, f"ffmpeg cannot decode it ({_ffmpeg_line(err)})") from None
    w, h = meta["size"]

    def frames():
        count = 0
        try:
            for buf in gen:
                count += 1
                yield np.frombuffer(buf, np.uint8).reshape(h, w, 3)
        except (OSError, RuntimeError) as err:
            raise StreamError(source, f"decoding stopped after {count} frames ({_ffmpeg_line(err)})") from None
        finally:
            gen.close()
        if not count:
            raise StreamError(source, "no frame could be decoded (truncated or not a video)")

    return float(meta.get("fps") or 25.0), (w, h), frames()


class VideoWriter:
    """H.264 (yuv420p) through imageio_ffmpeg, opened at the first frame; odd sides are padded by one edge pixel
    (yuv420p needs even sizes). ``close()`` flushes the encoder."""

    def __init__(self, path, fps: float, name=None):
        self.path, self.fps, self._gen, self.size = str(path), fps, None, None
        self.name = str(name or path)  # what errors call it (the final name of a temporary file)

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if self._gen is None:
            import imageio_ffmpeg  # lazy: only where video is encoded

            self.size = (h, w)
            self._gen = imageio_ffmpeg.write_frames(self.path, (w + w % 2, h + h % 2), fps=self.fps,
                                                    macro_block_size=1, ffmpeg_log_level="error")
            self._gen.send(None)
        if (h, w) != self.size:
            raise StreamError(self.name, f"frame size {w}x{h} differs from the first frame's "
                                         f"{self.size[1]}x{self.size[0]}")
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._gen.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        if self._gen is not None:
            gen, self._gen = self._gen, None
            gen.close()


# --- One frame -----------------------------------------------------------------------------------------------------

def resize_bilinear(x: np.ndarray, hw: tuple) -> np.ndarray:
    """(H, W, C) float -> (h, w, C), bilinear with half-pixel centres (as tf.image.resize and OpenCV)."""
    out = x
    for axis, n in ((0, hw[0]), (1, hw[1])):
        size = out.shape[axis]
        if size == n:
            continue
        pos = np.clip((np.arange(n, dtype=np.float32) + 0.5) * (size / n) - 0.5, 0, size - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, size - 1)
        t = (pos - lo).reshape((-1, 1, 1) if axis == 0 else (1, -1, 1))
        a, b = np.take(out, lo, axis=axis), np.take(out, hi, axis=axis)
        out = a + (b - a) * t
    return out.astype(np.float32, copy=False)


def fit_size(frame_hw: tuple, model_hw, multiple: int = 1) -> tuple:
    """The L size the file runs at: its fixed (h, w), or (dynamic file) the frame's size padded up to a multiple of
    ``multiple``."""
    if model_hw is not None:
        return tuple(model_hw)
    return tuple(-(-n // multiple) * multiple for n in frame_hw)


def model_l(l_full: np.ndarray, model_hw, multiple: int) -> np.ndarray:
    """What the file sees of the frame's L (H, W, 1): a fixed file, L resized to its input (bilinear); a dynamic
    file, the whole frame padded bottom and right (symmetric) to its multiple (score uses the same rule)."""
    frame_hw = l_full.shape[:2]
    hw = fit_size(frame_hw, model_hw, multiple)
    if hw == frame_hw:
        return l_full
    if model_hw is None:
        return np.pad(l_full, ((0, hw[0] - frame_hw[0]), (0, hw[1] - frame_hw[1]), (0, 0)), mode="symmetric")
    return resize_bilinear(l_full, hw)


def frame_ab(ab: np.ndarray, frame_hw: tuple, model_hw) -> np.ndarray:
    """The file's ab back on the frame: resized (bilinear) from a fixed file, cropped from a padded dynamic run."""
    if ab.shape[:2] == tuple(frame_hw):
        return ab
    return resize_bilinear(ab, frame_hw) if model_hw is not None else ab[:frame_hw[0], :frame_hw[1]]


# sRGB <-> linear as tables made from colour's own curves: a frame is uint8, so its 256 levels are exact; the way
# back is looked up at 65536 steps of linear light (within one level of the exact curve; the sRGB curve's steepest
# slope, 12.92, moves a step by at most 0.05 of a level)
LINEAR_OF_U8 = colour.srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
LINEAR_STEPS = 65535
U8_OF_LINEAR = (colour.linear_to_srgb(np.arange(LINEAR_STEPS + 1, dtype=np.float64) / LINEAR_STEPS) * 255.0
                + 0.5).astype(np.uint8)
Y_OF_LINEAR = (colour.XYZ_FROM_RGB[1] / colour.WHITE_D65[1]).astype(np.float32)
LINEAR_OF_XYZ = (colour.RGB_FROM_XYZ.T * colour.WHITE_D65[:, None]).astype(np.float32)


def l_of_uint8(rgb8: np.ndarray, l_scale: float) -> np.ndarray:
    """``colour.model_input`` of an sRGB uint8 frame, (H, W, 1) float32: L* = 116 f(Y) - 16 from colour's matrix and
    f, only the Y row computed (L* needs no X or Z) and sRGB -> linear looked up (about 7x faster per frame)."""
    y = LINEAR_OF_U8[rgb8] @ Y_OF_LINEAR
    return ((116.0 * colour._f(y, np) - 16.0) / l_scale).astype(np.float32)[..., None]


def render_uint8(l_in: np.ndarray, ab: np.ndarray, l_scale: float, ab_scale: float) -> np.ndarray:
    """``to_uint8(colour.render(...))``: colour's Lab -> XYZ -> linear steps, linear -> sRGB uint8 looked up (within
    one level of the exact value; out-of-gamut colours clipped as colour clips them)."""
    fy = (l_in[..., 0] * l_scale + 16.0) / 116.0
    fx = fy + ab[..., 0] * (ab_scale / 500.0)
    fz = np.maximum(fy - ab[..., 1] * (ab_scale / 200.0), 0.0)
    linear = colour._f_inverse(np.stack([fx, fy, fz], axis=-1), np) @ LINEAR_OF_XYZ
    return U8_OF_LINEAR[np.clip(linear * LINEAR_STEPS + 0.5, 0, LINEAR_STEPS).astype(np.uint16)]


class Colorizer:
    """Frame RGB uint8 -> colourised RGB uint8 through ``run`` (float L (1, h, w, 1) -> ab (1, h, w, 2)).

    A fixed file sees L* resized to its input; its ab is upsampled back to the frame (bilinear) and joined with the
    frame's own full-resolution L*: the standard colourisation trick, since chroma carries little detail, so the
    output keeps every luminance edge of the input whatever size the model ran at. A dynamic file runs on the
    whole frame, padded to its multiple (:func:`model_l`, :func:`frame_ab`).
    ``side_by_side``: original | grey | colourised | error (|colourised - original| x ERROR_GAIN) in one row.
    """

    def __init__(self, run, *, l_scale: float, ab_scale: float, model_hw=None, multiple: int = 1,
                 side_by_side: bool = False):
        self.run, self.l_scale, self.ab_scale = run, float(l_scale), float(ab_scale)
        self.model_hw, self.multiple, self.side_by_side = model_hw, multiple, side_by_side

    def __call__(self, rgb8: np.ndarray, stages: "Stages") -> np.ndarray:
        with stages.timed("colour"):
            l_full = l_of_uint8(rgb8, self.l_scale)
            l_in = model_l(l_full, self.model_hw, self.multiple)
        with stages.timed("inference"):
            ab = self.run(l_in[None])[0]
        with stages.timed("colour"):
            if ab.shape[-1] != 2:
                raise StreamError("model", f"output has {ab.shape[-1]} channels, not ab (2)")
            ab = frame_ab(ab, rgb8.shape[:2], self.model_hw)
            out = render_uint8(l_full, ab, self.l_scale, self.ab_scale)
            if not self.side_by_side:
                return out
            grey = render_uint8(l_full, np.zeros_like(ab), self.l_scale, self.ab_scale)
            error = np.minimum(np.abs(out.astype(np.int16) - rgb8) * ERROR_GAIN, 255).astype(np.uint8)
            return np.concatenate([rgb8, grey, out, error], axis=1)


# --- Timing --------------------------------------------------------------------------------------------------------

class Stages:
    """Seconds spent per stage, and each frame's inference time (a tiled frame's invokes summed)."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.latencies, self._frame = [], 0.0

    @contextmanager
    def timed(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.seconds[stage] = self.seconds.get(stage, 0.0) + dt
            if stage == "inference":
                self._frame += dt

    def end_frame(self) -> None:
        self.latencies.append(self._frame)
        self._frame = 0.0

    def report(self, wall_s: float, frame_s=(), flush_s: float = 0.0) -> dict:
        """frames, wall_s, fps (end to end: frames / wall time), inference_ms (mean, p50, p95, min, max), stage_s
        and share (of wall time; "other" is the loop's own remainder), and the start-up apart: first_frame_s (the
        first frame, the encoder's start included), flush_s (the encoder's flush at the end) and steady_fps (the
        frames after the first over their own time)."""
        n = len(self.latencies)
        ms = np.asarray(self.latencies or [0.0], np.float64) * 1e3
        stage_s = {k: round(v, 4) for k, v in self.seconds.items()}
        other = max(0.0, wall_s - sum(self.seconds.values()))
        share = {k: round(v / wall_s, 4) if wall_s > 0 else None for k, v in {**self.seconds, "other": other}.items()}
        rest = sum(frame_s[1:])
        return {"frames": n, "wall_s": round(wall_s, 4), "fps": round(n / wall_s, 3) if wall_s > 0 else None,
                "steady_fps": round((n - 1) / rest, 3) if n > 1 and rest > 0 else None,
                "first_frame_s": round(frame_s[0], 4) if len(frame_s) else None, "flush_s": round(flush_s, 4),
                "inference_ms": {"mean": round(float(ms.mean()), 3), "p50": round(float(np.median(ms)), 3),
                                 "p95": round(float(np.percentile(ms, 95)), 3), "min": round(float(ms.min()), 3),
                                 "max": round(float(ms.max()), 3)},
                "stage_s": stage_s, "share": share}


def run_stream(frames, process, sink, *, max_frames=None, finish=None) -> dict:
    """Pull frames, ``process(frame, stages)``, ``sink(out)`` (timed as encode) until the source ends or
    ``max_frames``; ``finish()`` (the encoder's flush) is timed as encode too. The :meth:`Stages.report`."""
    stages, it, frame_s, flush_s = Stages(), iter(frames), [], 0.0
    t0 = time.perf_counter()
    while max_frames is None or len(frame_s) < max_frames:
        start = time.perf_counter()
        with stages.timed("decode"):
            frame = next(it, None)
        if frame is None:
            break
        out = process(frame, stages)
        if sink is not None:
            with stages.timed("encode"):
                sink(out)
        stages.end_frame()
        frame_s.append(time.perf_counter() - start)
    if hasattr(it, "close"):
        it.close()  # stopped early (max_frames): the decoder (a camera's capture) stops now
    if finish is not None:
        start = time.perf_counter()
        with stages.timed("encode"):
            finish()
        flush_s = time.perf_counter() - start
    return stages.report(time.perf_counter() - t0, frame_s, flush_s)


# --- Where it ran --------------------------------------------------------------------------------------------------

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp",
             "i8mm", "sve", "neon")


def machine() -> dict:
    """CPU model and ISA flags (/proc/cpuinfo), architecture, cores, load average, Python and LiteRT versions."""
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if model is None and key in ("model name", "cpu model", "hardware") and value.strip():
                    model = value.strip()
                elif not flags and key in ("flags", "features"):
                    flags = set(value.split())
    except OSError:
        pass
    try:
        from importlib import metadata  # lazy: runs on a board with whatever it has

        litert = metadata.version("ai-edge-litert")
    except Exception:
        litert = None
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"cpu_model": model or platform.processor() or None, "isa": [f for f in ISA_FLAGS if f in flags],
            "arch": platform.machine(), "logical_cores": os.cpu_count(), "load_average": load,
            "python": platform.python_version(), "ai_edge_litert": litert}


# --- On a board ----------------------------------------------------------------------------------------------------

class Interp:
    """A LiteRT interpreter as ``run`` (float in, float out; int8/uint8 IO quantised with the file's own scale and
    zero point, resized when a dynamic input changes size): what the board uses in place of litert.Runner."""

    def __init__(self, path, threads: int):
        from ai_edge_litert.interpreter import Interpreter  # lazy: the board's own LiteRT

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.shape = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        ip = self.interpreter
        if tuple(x.shape) != self.shape:
            ip.resize_tensor_input(ip.get_input_details()[0]["index"], list(x.shape), strict=False)
            ip.allocate_tensors()
            self.shape = tuple(x.shape)
        i, o = ip.get_input_details()[0], ip.get_output_details()[0]
        if np.issubdtype(i["dtype"], np.integer):
            scale, zero = i["quantization"]
            info = np.iinfo(i["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        ip.set_tensor(i["index"], x.astype(i["dtype"]))
        ip.invoke()
        y = ip.get_tensor(o["index"])
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = o["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


def board_main(spec: dict, work: str) -> dict:
    """The board's run: ``spec`` names the model, the video and the settings; the output video goes to ``work``
    (encoded and timed like the local one, then deleted with it)."""
    fps, size, frames = read_video(spec["video"])
    writer = VideoWriter(os.path.join(work, "out.mp4"), fps)
    model_hw = tuple(spec["model_hw"]) if spec.get("model_hw") else None
    colorize = Colorizer(Interp(spec["model"], spec["threads"]), l_scale=spec["l_scale"], ab_scale=spec["ab_scale"],
                         model_hw=model_hw, multiple=spec.get("multiple", 1), side_by_side=spec["side_by_side"])
    try:
        report = run_stream(frames, colorize, writer.write, max_frames=spec.get("max_frames"), finish=writer.close)
    finally:
        writer.close()
    return {**report, "frame_size": list(size), "model_input": list(fit_size(size[::-1], model_hw, colorize.multiple)),
            "machine": machine(), "threads": spec["threads"]}


__all__ = ["Colorizer", "Interp", "Stages", "StreamError", "VideoWriter", "board_main", "fit_size", "machine",
           "frame_ab", "l_of_uint8", "model_l", "read_video", "render_uint8", "resize_bilinear", "run_stream"]
