"""What every benchmark records about the machine it ran on (no TensorFlow import: versions from metadata)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def version(dist: str):
    """An installed distribution's version, or None."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info(**extra) -> dict:
    """CPU model, cores, memory, platform and the stack's versions, plus ``extra`` fields."""
    import numpy as np

    cpu = platform.processor() or "unknown"
    mem = None
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.lower().startswith("model name")), cpu)
        mem = next((round(int(ln.split()[1]) / 2**20, 1) for ln in Path("/proc/meminfo").read_text().splitlines()
                    if ln.startswith("MemTotal:")), None)
    except (OSError, ValueError):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": usable, "memory_gib": mem,
            "platform": platform.platform(), "python": platform.python_version(),
            "ai_edge_litert": version("ai-edge-litert"), "numpy": np.__version__,
            "tensorflow": version("tensorflow"), **extra}


def load_average():
    """The 1, 5 and 15 minute load averages, or None where the platform has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
