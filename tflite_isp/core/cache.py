"""The user's cache folder (embedded datasets, rendered ground truths): one place decides where it is."""
import os
from pathlib import Path


def cache_dir() -> Path:
    """``$TFLITE_ISP_CACHE``, else ``$XDG_CACHE_HOME/tflite_isp``, else ``~/.cache/tflite_isp``."""
    if os.environ.get("TFLITE_ISP_CACHE"):
        return Path(os.environ["TFLITE_ISP_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "tflite_isp"
