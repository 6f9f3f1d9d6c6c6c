"""An export folder as enhance runs it: its manifest's conventions, the file, its receptive radius."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tflite_isp.core.errors import fail
from tflite_isp.nets import recipes
from tflite_isp.run import flatbuffer, receptive_field


@dataclass(frozen=True)
class Export:
    """An export folder as enhance needs it: the fixed-shape file and the conventions it was made with."""

    folder: Path
    manifest: dict
    spec: object  # recipes.InputSpec
    task: str
    data: bytes  # model.tflite
    tile: tuple  # the file's own packed (h, w)
    multiple: int  # packed sides of a tile are multiples of this
    radius: float  # receptive radius in packed pixels (inf: unbounded, tiles never exact)
    levels: dict | None  # in-graph levels: the file takes sensor values


def load_export(folder) -> Export:
    """Read ``folder``'s manifest and fixed-shape ``model.tflite``; a run directory means its int8 export."""

    folder = Path(folder)
    if (folder / "export" / "int8" / "manifest.json").is_file():
        folder = folder / "export" / "int8"
    mpath, fpath = folder / "manifest.json", folder / "model.tflite"
    if not mpath.is_file() or not fpath.is_file():
        raise fail(folder, "not an export folder (manifest.json and model.tflite; run python -m tflite_isp.export)")
    try:
        manifest = json.loads(mpath.read_text())
        recipe = recipes.Recipe.from_dict(manifest["recipe"], str(mpath))
    except (ValueError, KeyError) as err:
        raise fail(mpath, f"not a tflite_isp export manifest ({err})") from None
    data = fpath.read_bytes()
    model = flatbuffer.parse(data, str(fpath))
    shape = tuple(model.inputs[0].shape_signature)
    channels = recipe.input.channels
    if len(shape) != 4 or shape[-1] != channels or -1 in shape:
        raise fail(fpath, f"input {shape} is not a fixed-shape packed RAW (1, H, W, {channels})")
    return Export(folder, manifest, recipe.input, recipe.task, data, shape[1:3], receptive_field.input_multiple(model),
                  receptive_field.receptive_radius(model), (manifest.get("input") or {}).get("levels"))
