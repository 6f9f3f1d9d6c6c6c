"""The model a stream runs: an export folder (or a run directory, or a ``.tflite`` beside its manifest) read as a
colourisation file (L in, ab out) or an ISP export (packed RAW in, RGB out; :func:`exported.load_export`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tflite_isp.apps.exported import Export, load_export
from tflite_isp.core.errors import fail
from tflite_isp.run import flatbuffer, receptive_field


@dataclass(frozen=True)
class StreamModel:
    """``task`` "colorize" (file, scales, fixed size or the dynamic file's multiple) or an ISP task (``export``)."""

    task: str
    file: Path
    manifest: dict
    l_scale: float = 100.0
    ab_scale: float = 110.0
    model_hw: tuple | None = None  # the fixed file's (H, W); None: dynamic
    multiple: int = 1
    export: Export | None = None

    @property
    def colorize(self) -> bool:
        return self.task == "colorize"

    def size_text(self) -> str:
        if self.export is not None:
            return f"packed {self.export.tile[0]}x{self.export.tile[1]} tiles"
        return f"{self.model_hw[0]}x{self.model_hw[1]}" if self.model_hw else f"dynamic (multiple {self.multiple})"


def _locate(spec) -> tuple:
    """(folder, .tflite file) of MODEL: a run directory means its export/int8."""
    path = Path(spec)
    if path.suffix == ".tflite":
        if not path.is_file():
            raise fail(path, "file not found")
        return path.parent, path
    if not path.is_dir():
        raise fail(path, "no such model (an export folder, a run directory or a .tflite beside its manifest.json)")
    if (path / "export" / "int8" / "manifest.json").is_file():
        path = path / "export" / "int8"
    file = path / "model.tflite"
    if not file.is_file() and (path / "model_none.tflite").is_file():
        file = path / "model_none.tflite"
    return path, file


def load_model(spec) -> StreamModel:
    """Read MODEL's manifest and file; a folder without both, or a file that is neither task's shape, is one line."""
    folder, file = _locate(spec)
    mpath = folder / "manifest.json"
    if not mpath.is_file() or not file.is_file():
        raise fail(folder, "not an export folder (manifest.json and model.tflite; run python -m tflite_isp.export)")
    try:
        manifest = json.loads(mpath.read_text())
        task = (manifest.get("recipe") or {}).get("task") or (manifest.get("input") or {}).get("task") or "isp"
    except (ValueError, AttributeError) as err:
        raise fail(mpath, f"not a tflite_isp export manifest ({err})") from None
    if task != "colorize":
        if file.name != "model.tflite":
            raise fail(file, f"the {task} export streams its fixed-shape model.tflite (tiled), not {file.name}")
        return StreamModel(task, file, manifest, export=load_export(folder))
    model = flatbuffer.parse(file.read_bytes(), str(file))
    shape = tuple(int(d) for d in model.inputs[0].shape_signature)
    if len(shape) != 4 or shape[-1] != 1:
        raise fail(file, f"input {shape} is not a colourisation model's L (1, H, W, 1)")
    try:
        l_scale, ab_scale = float(manifest["input"]["l_scale"]), float(manifest["output"]["ab_scale"])
    except (KeyError, TypeError, ValueError) as err:
        raise fail(mpath, f"a colorize manifest needs input.l_scale and output.ab_scale ({err})") from None
    fixed = None if -1 in shape[1:3] else shape[1:3]
    multiple = 1 if fixed else receptive_field.input_multiple(model)
    return StreamModel(task, file, manifest, l_scale, ab_scale, fixed, multiple)


__all__ = ["StreamModel", "load_model"]
