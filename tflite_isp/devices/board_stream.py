"""A colourisation stream on a board (``python -m tflite_isp.stream --runtime jetson:HOST``): the same per-frame loop.

The model, the video, ``run/stream_loop.py`` and ``core/colour.py`` go into the board's SHA-256 keyed cache
(:meth:`Board.ensure`); ``board_programs/stream_fps.py`` runs ``stream_loop.board_main`` there under the timing
runner (peak RSS by wait4, tegrastats beside it when the board has it) and prints the loop's FPS report.
"""
from __future__ import annotations

import json
from pathlib import Path

from tflite_isp.core.errors import fail
from tflite_isp.devices import tegrastats
from tflite_isp.devices.board import Board, _last_json, _last_line, program, sha256

PACKAGE = Path(__file__).resolve().parent.parent
SHIPPED = {"loop": PACKAGE / "run" / "stream_loop.py", "colour": PACKAGE / "core" / "colour.py"}


def stream_on_board(board: Board, model, video, *, l_scale: float, ab_scale: float, model_hw=None, multiple: int = 1,
                    threads: int = 2, max_frames=None, side_by_side: bool = False) -> dict:
    """Run the colourisation stream of ``video`` through ``model`` on ``board``; the loop's report plus the board's
    description, peak RSS (MiB) and tegrastats summary. Failures are one line naming the board."""
    model, video = Path(model), Path(video)
    info = board.check("timing")  # numpy and ai_edge_litert; stream_fps.py checks imageio_ffmpeg itself
    files = {f"{sha256(model)}.tflite": (model, "644"),
             f"video-{sha256(video)[:16]}{video.suffix}": (video, "644"),
             **{f"{k}-{sha256(p)[:16]}.py": (p, "644") for k, p in SHIPPED.items()}}
    before = len(board.uploads)
    remote = dict(zip(("model", "video", "loop", "colour"), board.ensure(files).values()))
    spec = {**remote, "video_name": video.name, "l_scale": l_scale, "ab_scale": ab_scale, "threads": threads,
            "model_hw": list(model_hw) if model_hw else None, "multiple": multiple, "max_frames": max_frames,
            "side_by_side": side_by_side}
    cmd = [board.python, "-c", program("stream_fps"), json.dumps(spec)]
    raw = board._run_timed(cmd, None, step=f"streaming {video.name}")
    found = _last_json(raw["stdout"]) if raw["rc"] == 0 else None
    if found is None:
        raise fail(board.host, f"streaming {video.name} failed ({_last_line(raw.get('stderr')) or raw['rc']})")
    if found.get("error"):
        raise fail(board.host, f"streaming {video.name} failed: {found['error']}")
    board_info = {k: info.get(k) for k in ("host", "machine", "model", "l4t", "python", "cpus")}
    return {**found, "peak_rss_mb": round(raw["maxrss_kb"] / 1024, 1) if raw.get("maxrss_kb") else None,
            "tegrastats": tegrastats.summarise(raw["tegrastats"]) if raw.get("tegrastats") is not None else None,
            "board": board_info, "uploaded": board.uploads[before:]}


__all__ = ["stream_on_board"]
