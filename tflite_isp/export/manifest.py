"""The manifest's records: file hashes and IO tensors, tool versions, and publishing a folder atomically."""
from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

from tflite_isp.core import atomic
from tflite_isp.export import lint
from tflite_isp.run import flatbuffer

# --- One export ----------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool_versions() -> dict:

    names = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tf2onnx", "onnxruntime",
             "numpy", "tflite-isp")
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def io_record(tensor) -> dict:
    d = {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape),
         "shape_signature": list(tensor.shape_signature)}
    if tensor.scales:
        d["quantization"] = {"scale": list(tensor.scales), "zero_point": list(tensor.zero_points)}
    return d


def file_record(data: bytes, name: str, targets=None) -> tuple:
    """(manifest record of a .tflite file with its lint findings for ``targets``, its parsed TFLiteModel)."""

    info = flatbuffer.parse(data, name)
    return {"file": name, "size_bytes": len(data), "sha256": sha256(data),
            "inputs": [io_record(t) for t in info.inputs], "outputs": [io_record(t) for t in info.outputs],
            "ops": info.to_dict()["ops"], "lint": lint.record(info, list(targets or ()) or None)}, info



def publish(folder: Path, files: dict, manifest: dict) -> None:
    """Write the folder under a temporary name, then rename it over any older one."""
    with atomic.staged_dir(folder) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
