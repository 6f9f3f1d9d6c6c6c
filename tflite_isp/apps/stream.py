"""``python -m tflite_isp.stream``: an exported ``.tflite`` over a video stream, and how many frames per second.

    python -m tflite_isp.stream MODEL --input VIDEO|camera:N|/dev/videoN|FOLDER [--output out.mp4] [--show]
        [--side_by_side] [--threads 2] [--max_frames N] [--runtime local|jetson:HOST] [--json report.json]

A colourisation export (task "colorize") colourises each RGB frame (``run.stream_loop.Colorizer``: L* in, ab out,
joined with the frame's own L*); an ISP export runs a folder of RAW frames through enhance's per-file steps (read,
pack, tiled inference, orientation). The loop times decode, colour conversion, inference and encode per frame and
reports end-to-end FPS, inference latency (mean, p50, p95) and each stage's share of wall time. ``--runtime
jetson:HOST`` runs the same loop on a board over ssh (``devices.board_stream``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import flags

from tflite_isp.apps import enhance
from tflite_isp.apps.stream_model import StreamModel, load_model
from tflite_isp.apps.video import Source, check_output, open_source, video_out
from tflite_isp.core import atomic, cli
from tflite_isp.core.errors import UserError, fail
from tflite_isp.raw import rawio
from tflite_isp.run import timing
from tflite_isp.run.litert import Runner
from tflite_isp.run.stream_loop import Colorizer, StreamError, fit_size, machine, run_stream

FLAGS = flags.FLAGS
ISP_BUDGET_MB = 1000  # enhance's default --max_memory: the tile plan for RAW frames


def _define_flags():
    flags.DEFINE_string("input", None, "A video file, a camera (camera:N or /dev/videoN) or a folder of frames "
                                       "(images for a colourisation model, RAW files for an ISP model).")
    flags.DEFINE_string("output", None, "Write the processed frames as an H.264 video (.mp4, .mkv, .mov, .avi).",
                        short_name="o")
    flags.DEFINE_boolean("show", False, "Show the frames in a window as they are processed (needs a display).")
    flags.DEFINE_boolean("side_by_side", False, "Colourisation: original | grey | colourised | error (x4) panels.")
    flags.DEFINE_integer("max_frames", None, "Stop after this many frames (a camera runs until interrupted).")
    flags.DEFINE_string("runtime", "local", "Where the loop runs: local, or jetson:HOST (a board over ssh; see "
                                            "--ssh_config and --board_python).")
    flags.DEFINE_string("json", None, "Write the report (and the machine it ran on) to this JSON file.")


# --- Per-frame processing --------------------------------------------------------------------------------------------

def isp_frames(files):
    """RAW files -> (RawFrame, flip), read as the frames are pulled (the loop times this as decode)."""
    for path in files:
        yield enhance.read_frame(path)


class IspFrame:
    """One RAW frame through enhance's steps: pack and normalise, tile plan (once per size), tiled inference,
    orientation, 8 bits."""

    def __init__(self, model: StreamModel, threads: int):
        self.export, self.threads, self.plans = model.export, threads, {}

    def __call__(self, item, stages):
        frame, flip = item
        with stages.timed("colour"):
            packed = enhance.model_input(self.export, frame, 1.0)
            hw = packed.shape[:2]
            if hw not in self.plans:
                self.plans[hw] = enhance.plan(self.export, hw, ISP_BUDGET_MB, timing.current_rss_mb(),
                                              raw_pixels=frame.mosaic.size, where=frame.path)
            chosen = self.plans[hw]
        with stages.timed("inference"):
            rgb = enhance.enhance_frame(self.export, packed, chosen.tile, chosen.margin, self.threads)
        with stages.timed("colour"):
            return enhance.to_uint8(enhance.oriented(rgb, flip))


def check_fit(model: StreamModel, source: Source, side_by_side: bool) -> None:
    """The model takes what the source gives: RGB frames for colourisation, RAW frames for an ISP export."""
    if model.colorize and source.kind == "raw":
        raise fail(source.path, f"holds RAW frames; {model.file} is a colourisation model (RGB video or images)")
    if not model.colorize:
        if source.kind != "raw":
            raise fail(model.file, f"a {model.task} model takes packed RAW (1, H, W, 4): give a folder of RAW frames, "
                                   f"not a {source.kind} stream")
        if model.task == "lowlight":
            raise fail(model.file, "a low-light model needs an exposure ratio per frame: use python -m "
                                   "tflite_isp.enhance --ratio")
        if side_by_side:
            raise UserError("--side_by_side applies to colourisation models")


class Shower:
    """Frames in a matplotlib window; a machine without a display is one line before any frame is read."""

    def __init__(self):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UserError("--show needs a display (no DISPLAY here); write the video with --output instead")
        try:
            import matplotlib.pyplot as plt  # lazy: only --show draws
        except ImportError:
            raise UserError("--show needs matplotlib (pip install matplotlib)") from None
        self.plt, self.image = plt, None

    def __call__(self, frame) -> None:
        if self.image is None:
            self.image = self.plt.imshow(frame)
            self.plt.axis("off")
        else:
            self.image.set_data(frame)
        self.plt.pause(0.001)


# --- Running it ----------------------------------------------------------------------------------------------------

def stream_local(model: StreamModel, source: Source, *, output=None, show=False, side_by_side=False, threads=2,
                 max_frames=None) -> dict:
    """The loop on this machine: the report, with the frame size and whether frames were resized for the model."""
    seen, shower = {}, Shower() if show else None
    if model.colorize:
        colorize = Colorizer(Runner(model.file, threads=threads), l_scale=model.l_scale, ab_scale=model.ab_scale,
                             model_hw=model.model_hw, multiple=model.multiple, side_by_side=side_by_side)

        def process(frame, stages):
            seen.setdefault("frame", frame.shape[:2])
            return colorize(frame, stages)
        frames = source.frames
    else:
        process, frames = IspFrame(model, threads), isp_frames(source.files)
    with video_out(output, source.fps) as writer:
        def sink(out):
            seen.setdefault("out", out.shape[:2])
            if writer is not None:
                writer.write(out)
            if shower is not None:
                shower(out)
        try:
            report = run_stream(frames, process, sink, max_frames=max_frames,
                                finish=writer.close if writer is not None else None)
        except StreamError as err:
            raise fail(err.path, err.problem) from None
    if not report["frames"]:
        raise fail(source.path, "no frames")
    frame_hw = seen.get("frame") or seen["out"]
    return {**report, "frame_size": [int(frame_hw[1]), int(frame_hw[0])],
            "output_size": [int(seen["out"][1]), int(seen["out"][0])],
            "model_input": list(fit_size(frame_hw, model.model_hw, model.multiple)) if model.colorize else None,
            "machine": machine()}


def stream_board(host: str, model: StreamModel, source: Source, *, threads, max_frames, side_by_side) -> dict:
    """The same loop on a board over ssh: colourisation of a video file only."""
    from tflite_isp.devices.board import Board  # lazy: ssh only for --runtime jetson:HOST
    from tflite_isp.devices.board_stream import stream_on_board  # lazy: as above

    if not model.colorize or source.kind != "video":
        raise UserError(f"--runtime jetson:{host} streams a colourisation model over a video file "
                        f"(this is a {model.task} model on a {source.kind} source)")
    board = Board(host, ssh_config=FLAGS.ssh_config, python=FLAGS.board_python)
    return stream_on_board(board, model.file, source.path, l_scale=model.l_scale, ab_scale=model.ab_scale,
                           model_hw=model.model_hw, multiple=model.multiple, threads=threads,
                           max_frames=max_frames, side_by_side=side_by_side)


def parse_runtime(text: str):
    """None for local, the host for jetson:HOST; anything else is one line."""
    if text == "local":
        return None
    if text.startswith("jetson:") and text[len("jetson:"):]:
        return text[len("jetson:"):]
    raise UserError(f"--runtime must be local or jetson:HOST, not {text!r}")


def summary(report: dict) -> str:
    """Two lines for stderr: FPS and latency, then the shares of wall time."""
    lat, share = report["inference_ms"], report["share"]
    where = f" on {report['board']['host']}" if report.get("board") else ""
    size = f" of {report['frame_size'][0]}x{report['frame_size'][1]}" if report.get("frame_size") else ""
    shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in share.items() if v is not None)
    steady = f" ({report['steady_fps']:.1f} after the first frame)" if report.get("steady_fps") else ""
    return (f"{report['frames']} frames{size}{where} in {report['wall_s']:.2f} s: {report['fps']:.1f} FPS end to end"
            f"{steady}; inference mean {lat['mean']:.1f} ms, p50 {lat['p50']:.1f}, p95 {lat['p95']:.1f}\n"
            f"share of wall time: {shares}")


def main(argv) -> int:
    def body(_):
        if len(argv) != 2 or not FLAGS.input:
            raise UserError("usage: python -m tflite_isp.stream MODEL --input VIDEO|camera:N|FOLDER [--output out.mp4]")
        host = parse_runtime(FLAGS.runtime)
        if FLAGS.threads < 1 or (FLAGS.max_frames is not None and FLAGS.max_frames < 1):
            raise UserError("--threads and --max_frames must be at least 1")
        if host and (FLAGS.output or FLAGS.show):
            raise UserError("--output and --show are local: the board's video stays on the board")
        if FLAGS.output:
            check_output(FLAGS.output)
        model = load_model(argv[1])
        source = open_source(FLAGS.input, rawio.RAW_SUFFIXES)
        check_fit(model, source, FLAGS.side_by_side)
        options = {"threads": FLAGS.threads, "max_frames": FLAGS.max_frames, "side_by_side": FLAGS.side_by_side}
        if host:
            report = stream_board(host, model, source, **options)
        else:
            report = stream_local(model, source, output=FLAGS.output, show=FLAGS.show, **options)
        report = {"model": str(model.file), "task": model.task, "model_size": model.size_text(),
                  "input": FLAGS.input, "source": source.kind, "output": FLAGS.output, "threads": FLAGS.threads,
                  "runtime": FLAGS.runtime, **report}
        print(summary(report), file=sys.stderr)
        (w, h), ran = report.get("frame_size") or (None, None), report.get("model_input")
        if ran and w and ran != [h, w]:
            how = ("the file's fixed input; its ab was upsampled back and joined with each frame's own L*"
                   if model.model_hw else f"padded to a multiple of {model.multiple}, the ab cropped back")
            print(f"note: {w}x{h} frames ran at {ran[1]}x{ran[0]} ({how})", file=sys.stderr)
        if FLAGS.output:
            print(f"wrote {FLAGS.output}", file=sys.stderr)
        if FLAGS.json:
            Path(FLAGS.json).parent.mkdir(parents=True, exist_ok=True)
            atomic.write_json(FLAGS.json, report)
        return 0

    return cli.run_command(body)


def entry():
    _define_flags()
    cli.entry(main)


if __name__ == "__main__":
    entry()


__all__ = ["IspFrame", "check_fit", "load_model", "main", "parse_runtime", "stream_board", "stream_local", "summary"]
