"""Runs on the board: python -m tflite_isp.stream's per-frame loop (run/stream_loop.py, shipped with core/colour.py
beside it) over a video; argv[1] is a JSON spec; prints one JSON line, the FPS report or {"error": ...}."""
import json
import os
import shutil
import sys
import tempfile

spec = json.loads(sys.argv[1])
work = tempfile.mkdtemp(prefix="tflite_isp-stream-")
try:
    shutil.copyfile(spec["loop"], os.path.join(work, "stream_loop.py"))
    shutil.copyfile(spec["colour"], os.path.join(work, "colour.py"))
    sys.path.insert(0, work)
    missing = []
    for name in ("numpy", "ai_edge_litert", "imageio_ffmpeg"):
        try:
            __import__(name)
        except Exception:
            missing.append(name)
    if missing:
        result = {"error": "the board's python lacks " + ", ".join(missing)}
    else:
        import stream_loop
        try:
            result = stream_loop.board_main(spec, work)
        except stream_loop.StreamError as err:
            result = {"error": str(err).replace(spec["video"], spec.get("video_name", spec["video"]))}
except Exception as err:  # the board's one line, whatever went wrong
    result = {"error": "%s: %s" % (type(err).__name__, str(err).strip().splitlines()[0] if str(err).strip() else "")}
finally:
    shutil.rmtree(work, ignore_errors=True)
print(json.dumps(result))
