"""A training run's directory before and after the loop: prepare a fresh one or resume one, open
its data, write recipe.json / run.json / data_report.json, read metrics.json back. No TensorFlow."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError, fail
from tflite_isp.data import layouts
from tflite_isp.nets import recipes
from tflite_isp.raw import bayer
from tflite_isp.train.config import TrainConfig, resolve, run_tag, train_section


@dataclass
class Data:
    """The opened dataset: its layout and root, the training and validation splits."""
    layout: str
    root: Path
    train: layouts.Split
    val: layouts.Split


def log(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)

# --- Prepare or resume the run directory ----------------------------------------------------


def prepare(cfg: TrainConfig) -> tuple:
    """(config, recipe, run_dir): --resume's stored run, or a fresh one resolved against its recipe."""
    return _resume(cfg) if cfg.resume else _fresh(cfg)


def _resume(cfg: TrainConfig) -> tuple:
    """The config stored in the run, with the flags given now on top."""
    run_dir = Path(cfg.out) if cfg.out else _newest_run()
    saved = run_dir / "recipe.json"
    if not saved.is_file() or not (run_dir / "checkpoints" / "checkpoint").is_file():
        raise fail(run_dir, "cannot resume: no recipe.json and checkpoints in this run directory")
    recipe = recipes.load_recipe(saved)
    if "model" in cfg.explicit and recipes.load_recipe(cfg.model).name != recipe.name:
        raise fail(run_dir, f"cannot resume: this run trains {recipe.name}, not {cfg.model}")
    stored = json.loads((run_dir / "run.json").read_text())["config"]
    if "mixed_precision" in cfg.explicit and cfg.mixed_precision != stored.get("mixed_precision"):
        raise fail(run_dir, f"cannot resume: this run trains in {stored.get('mixed_precision') or 'float32'}, not "
                            f"{cfg.mixed_precision or 'float32'} (its checkpoints hold that optimizer)")
    stored.update({k: getattr(cfg, k) for k in cfg.explicit if k not in ("model", "resume")})
    cfg = TrainConfig(**{**stored, "resume": True, "out": str(run_dir), "explicit": cfg.explicit})
    return cfg, recipe, run_dir


def _fresh(cfg: TrainConfig) -> tuple:
    """The recipe's settings under the user's; a run directory that has no checkpoints yet."""
    recipe = base_recipe(cfg)
    cfg = resolve(cfg, recipe)
    run_dir = Path(cfg.out or f"runs/{recipe.name}{run_tag(cfg)}-{time.strftime('%Y%m%d-%H%M%S')}")
    if (run_dir / "checkpoints" / "checkpoint").is_file():
        raise fail(run_dir, "run directory already has checkpoints; pass --resume or another --out")
    return cfg, recipe, run_dir


def _newest_run(root=Path("runs")) -> Path:
    runs = sorted((p for p in root.glob("*") if (p / "checkpoints" / "checkpoint").is_file()),
                  key=lambda p: p.stat().st_mtime)
    if not runs:
        raise fail(root, "--resume found no run with checkpoints; pass --out RUN_DIR")
    return runs[-1]


def finished_run(path) -> Path:
    """``path`` as a finished run directory (recipe.json and model.keras), or a one-line error."""
    run = Path(path)
    if not (run / "recipe.json").is_file() or not (run / "model.keras").is_file():
        raise fail(run, "not a finished run directory (needs recipe.json and model.keras from python -m "
                        "tflite_isp.train)")
    return run


def base_recipe(cfg: TrainConfig):
    """The recipe to train: --model, or --init_from's run; with a teacher's input convention under --teacher."""
    if cfg.init_from and "model" not in cfg.explicit:
        recipe = recipes.load_recipe(finished_run(cfg.init_from) / "recipe.json")
    else:
        recipe = recipes.load_recipe(cfg.model)
    recipe = recipe.with_model(width_multiplier=cfg.width_multiplier, separable=cfg.separable)
    if cfg.levels == "file":
        if recipe.task == "colorize":
            raise UserError(f"--levels is for RAW models; {recipe.name} is a colourisation model")
        recipe = replace(recipe, input=replace(recipe.input, black="file", white="file"))
    if cfg.teacher:
        teacher = recipes.load_recipe(finished_run(cfg.teacher) / "recipe.json")
        recipe = replace(recipe, input=teacher.input, task=teacher.task)
    return recipe

# --- Open the data and write the run files --------------------------------------------------


def _data_source(cfg: TrainConfig, recipe):
    task = cfg.task or recipe.task
    layout, root = layouts.parse_data_flag(cfg.data or f"embedded:{task}")
    implied = layouts.task_of(layout)
    if cfg.task and cfg.task != implied:
        raise UserError(f"--task {cfg.task} does not match --data {layout}, which is a {implied} layout")
    return layout, root


def open_data(cfg: TrainConfig, recipe, is_chief: bool) -> tuple:
    """(recipe with the data's task, the opened splits); a normalisation mismatch fails here."""
    layout, root = _data_source(cfg, recipe)
    data_task = layouts.task_of(layout)
    if "colorize" in (recipe.task, data_task) and recipe.task != data_task:
        raise fail(root, f"{layout} is {data_task} data but {recipe.name} is a {recipe.task} model")
    if recipe.task != data_task:  # e.g. SID's U-Net trained on ISP pairs is an ISP model from now on
        recipe = replace(recipe, task=data_task)
    train_split = layouts.open_split(layout, root, "train", on_bad=cfg.bad_files)
    val_name = layouts.validation_split(layout, root)
    if val_name != "val":
        log(is_chief, f"{layout}:{root} has no val split; validating on {val_name}")
    val_split = layouts.open_split(layout, root, val_name, on_bad=cfg.bad_files)
    if recipe.task != "colorize":
        kind = bayer.cfa_kind(train_split.pattern)
        if recipe.input.cfa != kind and not (cfg.resume or cfg.init_from or cfg.teacher or cfg.channel_prune):
            log(is_chief, f"{recipe.name}: input.cfa = \"{kind}\" from the data ({train_split.pattern})")
            recipe = replace(recipe, input=replace(recipe.input, cfa=kind))  # a fresh network takes the data's CFA
        layouts.check_cfa(recipe.source or recipe.name, recipe.input, train_split)
        heads = cfg.joint_large_head or (recipe.train.get("aux_weights") and not cfg.teacher)
        if recipe.input.cfa == "quad" and heads:
            raise UserError(f"{recipe.name} takes Quad Bayer: joint and level heads train Bayer models only")
        layouts.input_levels(train_split, recipe.input)  # fail early on a normalisation mismatch
    return recipe, Data(layout, root, train_split, val_split)


def write_run_files(run_dir: Path, cfg: TrainConfig, recipe, data: Data, is_chief: bool) -> None:
    """The run directory; the chief writes recipe.json, run.json and data_report.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not is_chief:
        return
    resolved = {**recipe.to_dict(), "train": {**recipe.train, **train_section(cfg)}}
    settings = {k: v for k, v in asdict(cfg).items() if k != "explicit"}
    atomic.write_json(run_dir / "recipe.json", resolved)
    atomic.write_json(run_dir / "run.json", {"config": settings, "data": {"layout": data.layout,
                                                                          "root": str(data.root)}})
    atomic.write_json(run_dir / "data_report.json", {"train": data.train.report(), "val": data.val.report()})


def load_metrics(run_dir: Path) -> dict:
    """metrics.json of a resumed run (epochs so far), or a fresh record."""
    path = run_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {"epochs": []}
