"""Runs on the board: what it is, what it lacks (ai_edge_litert, numpy) and where its cache is; prints one JSON line."""
import json
import os
import platform
import shutil


def first_line(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").strip("\x00\n ").splitlines()[0]
    except (OSError, IndexError):
        return None


missing = []
for name in ("ai_edge_litert", "numpy"):
    try:
        __import__(name)
    except Exception:
        missing.append(name)
try:
    from importlib import metadata  # lazy: runs on the board with whatever it has
    litert = metadata.version("ai-edge-litert")
except Exception:
    litert = None
cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tflite_isp", "board")
os.makedirs(cache, exist_ok=True)
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "missing": missing,
                  "litert": litert, "tegrastats": shutil.which("tegrastats"), "cache": cache, "cpus": os.cpu_count(),
                  "model": first_line("/proc/device-tree/model"), "l4t": first_line("/etc/nv_tegra_release")}))
