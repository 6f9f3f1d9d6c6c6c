"""What to export and how: ExportConfig, and where the model and its calibration data come from."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tflite_isp.core.errors import UserError, fail
from tflite_isp.data import layouts
from tflite_isp.nets import recipes


@dataclass
class ExportConfig:
    source: str
    precisions: tuple = ("fp32",)
    onnx: bool = False
    size: tuple | None = None  # None: the size the runtime is timed at (Exporter)
    model_none: bool = True
    data: str | None = None
    out: str | None = None
    calibration_images: int = 100
    io_type: str | None = None
    raw_input: bool = False
    allow_float_ops: bool = False
    per_channel: bool = True
    qat_steps: int = 200
    qat_lr: float | None = None
    qat_target: str = "teacher"
    fidelity_images: int = 32
    max_psnr_drop: float | None = None
    debug_quant: bool = False
    keep_float: int = 0
    opset: int = 17
    targets: tuple = ()
    require_delegable: tuple = ()
    threads: int = 2
    recipe: str | None = None
    seed: int = 0
    bad_files: str = "fail"
    log: bool = True
    gate_failures: list = field(default_factory=list)


# --- Inputs --------------------------------------------------------------------------------


def parse_size(text: str) -> tuple:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise UserError(f"--size must be H W or HxW (packed pixels), not {text!r}") from None
    if h <= 0 or w <= 0:
        raise UserError(f"--size must be positive, not {text!r}")
    return h, w


def load_source(source: str, recipe_name: str | None = None):
    """(recipe, Keras model, run dir or None) from a run directory or a saved ``.keras`` file."""
    from tflite_isp.nets import architectures  # lazy: TensorFlow loads only when this runs

    path = Path(source)
    if path.is_dir():
        keras_path, run_dir = path / "model.keras", path
        if not (path / "recipe.json").is_file() or not keras_path.is_file():
            raise fail(path, "not a finished run directory (needs recipe.json and model.keras from "
                             "python -m tflite_isp.train)")
        recipe = recipes.load_recipe(path / "recipe.json")
    elif path.is_file() and path.suffix == ".keras":
        keras_path, run_dir = path, path.parent if (path.parent / "run.json").is_file() else None
        if recipe_name:
            recipe = recipes.load_recipe(recipe_name)
        elif (path.parent / "recipe.json").is_file():
            recipe = recipes.load_recipe(path.parent / "recipe.json")
        else:
            raise fail(path, "a bare .keras model needs --recipe (its packing order and normalisation)")
    elif path.exists():
        raise fail(path, "expected a run directory or a .keras model")
    else:
        raise fail(path, "no such run directory or model")
    model = architectures.load(keras_path)
    channels = recipe.input.channels
    if tuple(model.input_shape[-1:]) != (channels,) or len(model.input_shape) != 4:
        what = "an L plane (batch, H, W, 1)" if channels == 1 else "packed RAW (batch, H, W, 4)"
        raise fail(keras_path, f"input {model.input_shape} is not {what}, which {recipe.name}'s recipe expects")
    return recipe, model, run_dir


def data_source(cfg: ExportConfig, recipe, run_dir):
    """(layout, root) of the calibration/fidelity data: --data, else the run's training data."""

    if cfg.data:
        return layouts.parse_data_flag(cfg.data)
    if run_dir and (run_dir / "run.json").is_file():
        data = json.loads((run_dir / "run.json").read_text())["data"]
        if not Path(data["root"]).exists():
            raise fail(data["root"], "the run's training data is gone; pass --data LAYOUT:PATH")
        return data["layout"], Path(data["root"])
    return layouts.parse_data_flag(f"embedded:{recipe.task}")


def uniform_levels(split, spec, source) -> dict:
    """Black (one per packed plane, model order) and white for an in-graph Normalise: the split must agree on them."""

    blacks, whites = layouts.input_levels(split, spec)
    if not (np.allclose(blacks, blacks[0]) and np.allclose(whites, whites[0])):
        raise fail(source, "--raw_input needs one black/white level for every file, but this data's levels differ")
    black = [float(b) for b in blacks[0] for _ in range(spec.channels // 4)]  # per packed plane
    return {"black": black, "white": float(whites[0]), "clip": spec.clip}
