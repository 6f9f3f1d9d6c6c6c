"""Model recipes: the one source of truth for a model's architecture, input convention and training.

Built-in recipes live in the repository's ``models/`` folder (shipped in the wheel as
``tflite_isp.builtin_models``); a recipe can also be any TOML file of the same shape. A run
directory stores the resolved recipe as ``recipe.json``; export and score read it from there.
"""
from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from tflite_isp.core import colour
from tflite_isp.core.errors import UserError, fail
from tflite_isp.raw import bayer

TASKS = ("isp", "lowlight", "colorize")
CFAS = ("bayer", "quad")  # a recipe's input.cfa: 2 x 2 Bayer (4 packed planes) or Quad Bayer (16)


@dataclass(frozen=True)
class InputSpec:
    """How a RAW mosaic becomes the model's input tensor."""

    order: tuple  # colour names in channel order, e.g. ('B', 'Gr', 'R', 'Gb')
    black: object  # a number, or "file" (per-colour black level from the RAW file)
    white: object  # a number, or "file"
    clip: bool
    cfa: str = "bayer"  # "bayer" or "quad": the CFA the model takes, which sets channels and scale

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        for key in ("black", "white"):
            v = d.get(key)
            if not (v == "file" or isinstance(v, (int, float))):
                raise ValueError(f"input.{key} must be a number or \"file\", not {v!r}")
        cfa = d.get("cfa", "bayer")
        if cfa not in CFAS:
            raise ValueError(f"input.cfa must be one of {CFAS}, not {cfa!r}")
        return cls(bayer.check_order(d["order"]), d["black"], d["white"], bool(d.get("clip", True)), cfa)

    def to_dict(self) -> dict:
        d = {"order": list(self.order), "black": self.black, "white": self.white, "clip": self.clip}
        return {**d, "cfa": self.cfa} if self.cfa != "bayer" else d

    @property
    def channels(self) -> int:
        """Packed planes: 4 for a 2 x 2 Bayer CFA, 16 for Quad Bayer."""
        return 16 if self.cfa == "quad" else 4

    @property
    def scale(self) -> int:
        """Output pixels per packed input pixel (the CFA's period)."""
        return 4 if self.cfa == "quad" else 2

    @property
    def full_hd(self) -> tuple:
        """A Full HD RAW frame (1088 x 1920) as this input: 544 x 960 packed Bayer, 272 x 480 Quad Bayer."""
        return 1088 // self.scale, 1920 // self.scale

    def render(self, x, out, xp=np):
        """The model's output as sRGB in [0, 1]: an ISP model writes RGB already."""
        return out


@dataclass(frozen=True)
class LabSpec:
    """A colourisation model's IO: it reads L* / l_scale and writes (a*, b*) / ab_scale (core.colour)."""

    l_scale: float = 100.0
    ab_scale: float = 110.0

    channels = 1
    scale = 1
    cfa = None  # no CFA: the input is an L plane
    full_hd = (544, 960)  # the frame a colourisation net's MACs are counted at

    @classmethod
    def from_dict(cls, d: dict) -> "LabSpec":
        if d.get("colour", "lab") != "lab":
            raise ValueError(f"input.colour must be \"lab\", not {d.get('colour')!r}")
        spec = cls(float(d.get("l_scale", 100.0)), float(d.get("ab_scale", 110.0)))
        if spec.l_scale <= 0 or spec.ab_scale <= 0:
            raise ValueError("input.l_scale and input.ab_scale must be positive")
        return spec

    def to_dict(self) -> dict:
        return {"colour": "lab", "l_scale": self.l_scale, "ab_scale": self.ab_scale}

    def render(self, x, out, xp=np):
        """Input L and output ab back to sRGB in [0, 1]."""
        return colour.render(x, out, self.l_scale, self.ab_scale, xp)


@dataclass(frozen=True)
class Recipe:
    name: str
    task: str
    model: dict
    input: InputSpec | LabSpec
    train: dict
    summary: str = ""
    source: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> "Recipe":
        try:
            task = d.get("task", "isp")
            if task not in TASKS:
                raise ValueError(f"task must be one of {TASKS}, not {task!r}")
            return cls(
                name=d["name"], task=task, model=dict(d["model"]),
                input=(LabSpec if task == "colorize" else InputSpec).from_dict(d["input"]),
                train=dict(d.get("train", {})), summary=d.get("summary", ""), source=source,
            )
        except (KeyError, ValueError, TypeError) as err:
            raise fail(source or "recipe", f"invalid recipe ({type(err).__name__}: {err})") from None

    def to_dict(self) -> dict:
        return {"name": self.name, "summary": self.summary, "task": self.task, "model": copy.deepcopy(self.model),
                "input": self.input.to_dict(), "train": copy.deepcopy(self.train)}

    def with_model(self, **changes) -> "Recipe":
        """A copy with model settings changed (e.g. width_multiplier, separable)."""
        d = self.to_dict()
        d["model"].update({k: v for k, v in changes.items() if v is not None})
        return Recipe.from_dict(d, self.source)


def _builtin_dir():
    checkout = Path(__file__).resolve().parents[2] / "models"
    if checkout.is_dir() and any(checkout.glob("*.toml")):
        return checkout
    return resources.files("tflite_isp.builtin_models")


def builtin_names() -> list:
    return sorted(p.name[:-5] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_recipe(name_or_path) -> Recipe:
    """A built-in recipe by name (``smallnet``), a recipe TOML file, or a run's ``recipe.json``."""
    text = str(name_or_path)
    if text.endswith((".toml", ".json")) or "/" in text:
        path = Path(text)
        if path.is_dir():
            path = path / "recipe.json"
        if not path.is_file():
            raise fail(path, "recipe file not found")
        raw = path.read_text()
        try:
            data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
        except (ValueError, tomllib.TOMLDecodeError) as err:
            raise fail(path, f"cannot parse recipe: {err}") from None
        return Recipe.from_dict(data, str(path))
    if text not in builtin_names():
        raise UserError(f"unknown model {text!r}; built-in models: {', '.join(builtin_names())}")
    entry = _builtin_dir() / f"{text}.toml"
    return Recipe.from_dict(tomllib.loads(entry.read_text()), f"models/{text}.toml")
