"""Which ``.tflite`` files a MODEL argument names, and the conventions each was exported with.

A MODEL is an export folder (``RUN/export/int8``: its manifest gives packing, normalisation and IO
quantisation), an export root or run directory (every precision exported there), or a bare ``.tflite``
(its folder's manifest, else ``--recipe``). Used by score and the device harnesses alike.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tflite_isp.core.errors import fail
from tflite_isp.nets import recipes
from tflite_isp.run import flatbuffer

IO_CHANNELS = {4: 3, 16: 3, 1: 2}  # input -> output channels: packed Bayer or Quad Bayer RAW -> RGB; L -> ab


@dataclass
class Entry:
    """One ``.tflite`` to score and the conventions it was exported with."""

    name: str
    given: str
    path: Path
    recipe: object  # recipes.Recipe
    precision: str
    manifest: dict | None = None
    input_shape: tuple = ()
    details: dict = field(default_factory=dict)

    def keys(self) -> list:
        """Names a runtime JSON may use for this model."""
        return [self.name, self.given, str(self.path), hashlib.sha256(self.path.read_bytes()).hexdigest()]

    @property
    def levels(self):
        """In-graph black/white levels (files exported with --raw_input take sensor values), or None."""
        return (self.manifest or {}).get("input", {}).get("levels")


def _manifest_for(path: Path):
    """The export manifest that describes ``path`` (model.tflite or model_none.tflite), or None."""
    mpath = path.parent / "manifest.json"
    if not mpath.is_file():
        return None
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError as err:
        raise fail(mpath, f"not valid JSON ({err})") from None
    names = {(manifest.get("file") or {}).get("file"), (manifest.get("model_none") or {}).get("file")}
    return manifest if path.name in names else None


def model_files(arg: str) -> list:
    """The .tflite files one MODEL argument names."""
    path = Path(arg)
    if path.is_file():
        if path.suffix != ".tflite":
            raise fail(path, "expected a .tflite file, an export folder or a run directory")
        return [path]
    if not path.is_dir():
        raise fail(path, "no such model file or folder")
    if (path / "model.tflite").is_file():
        return [path / "model.tflite"]
    root = path / "export" if (path / "export").is_dir() else path
    found = sorted(root.glob("*/model.tflite"))
    if not found:
        raise fail(path, "no model.tflite here or in its export folders (run python -m tflite_isp.export first)")
    return found


def make_entry(path: Path, given: str, recipe_flag: str | None) -> Entry:
    """Read a file's conventions: its manifest, else the --recipe given for bare files."""

    model = flatbuffer.read(path)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise fail(path, f"expected one input and one output, found {len(model.inputs)} and {len(model.outputs)}")
    shape = tuple(model.inputs[0].shape_signature)
    if len(shape) != 4 or shape[-1] not in IO_CHANNELS:
        raise fail(path, f"input shape {shape} is neither packed RAW (1, H, W, 4 or 16) nor an L plane "
                         "(1, H, W, 1)")
    out_shape = tuple(model.outputs[0].shape_signature)
    if len(out_shape) != 4 or out_shape[-1] != IO_CHANNELS[shape[-1]]:
        raise fail(path, f"output shape {out_shape} is not " + ("an RGB image (1, sH, sW, 3)" if shape[-1] != 1 else
                                                                "the ab planes (1, H, W, 2) of an L input"))
    manifest = _manifest_for(path)
    if manifest:
        recipe = recipes.Recipe.from_dict(manifest["recipe"], str(path.parent / "manifest.json"))
        precision = manifest["precision"]["name"]
    elif recipe_flag:
        recipe, precision = recipes.load_recipe(recipe_flag), flatbuffer.file_precision(model)
    else:
        raise fail(path, "no export manifest.json beside it: pass --recipe NAME|FILE.toml for its packing order "
                         "and normalisation")
    if recipe.input.channels != shape[-1]:
        raise fail(path, f"takes {shape[-1]} input channel(s) but its recipe {recipe.name} ({recipe.task}) takes "
                         f"{recipe.input.channels}")
    name = f"{recipe.name} {precision}" + (" (dynamic)" if path.name == "model_none.tflite" else "")
    macs = flatbuffer.count_macs(model)
    details = {"size_kb": model.size_bytes / 1024, "macs": macs, "ops": model.op_counts()}
    return Entry(name, given, path, recipe, precision, manifest, shape, details)


def unique_names(entries) -> None:
    """Two entries with one name (the same model from two runs) get their folder added."""
    seen: dict = {}
    for e in entries:
        seen.setdefault(e.name, []).append(e)
    for same in seen.values():
        if len(same) > 1:
            for e in same:
                e.name = f"{e.name} ({e.path.parent})"


def entries_for(models, recipe_flag: str | None = None) -> list:
    """Every file the MODEL arguments name, as entries with unique names."""
    entries = [make_entry(path, arg, recipe_flag) for arg in models for path in model_files(arg)]
    unique_names(entries)
    return entries


__all__ = ["Entry", "model_files", "make_entry", "unique_names", "entries_for"]
