"""The search space: the design axes of ``searchnet`` as data, sampled by Optuna into ordinary recipes.

A candidate is a recipe whose ``[model]`` is ``architecture = "searchnet"`` plus one value per axis; the
``[input]`` and ``[train]`` sections come from a base recipe (Smallnet's by default), so a pick trains, exports
and scores like any zoo model. A space file (TOML, ``--space``) narrows any axis to some of its values.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from tflite_isp.core.errors import fail
from tflite_isp.nets import recipes

#: axis -> its values; the first value of each is searchnet's default
AXES = {
    "levels": [0, 1, 2, 3, 4],
    "stem": ["conv", "s2d"],
    "width": [8, 12, 16, 24, 32, 48],
    "growth": [1.0, 1.5, 2.0],
    "align": [4, 8, 16],
    "depth": [1, 2, 3],
    "conv": ["full", "separable", "reparam"],
    "activation": ["relu", "relu6", "leaky", "prelu", "tanh_first"],
    "upsample": ["transpose", "d2s", "bilinear"],
    "merge": ["concat", "add"],
    "attention": ["none", "channel", "spatial"],
    "head": ["shuffle", "shuffle1x1"],
}
UNET_ONLY = ("growth", "upsample", "merge")  # axes that mean something only with levels >= 1

#: zoo models that are points of the space, for ``--start_from``. Smallnet is its own point but for the ReLU
#: after its last conv, which searchnet's linear head drops (the same 2.41 GMAC).
POINTS = {
    "smallnet": {"levels": 0, "stem": "conv", "width": 16, "align": 4, "depth": 2, "conv": "full",
                 "activation": "tanh_first", "attention": "none", "head": "shuffle"},
}


def load_space(path: str | Path | None) -> dict:
    """The full space, or a TOML file's narrowing of it (``activation = ["relu", "relu6"]``, ``levels = [2]``)."""
    if path is None:
        return {k: list(v) for k, v in AXES.items()}
    path = Path(path)
    try:
        given = tomllib.loads(path.read_text())
    except OSError as err:
        raise fail(path, f"cannot read the search space ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise fail(path, f"not a TOML search space ({err})") from None
    space = {k: list(v) for k, v in AXES.items()}
    for axis, values in given.items():
        if axis not in AXES:
            raise fail(path, f"unknown axis {axis!r}; axes: {', '.join(AXES)}")
        values = values if isinstance(values, list) else [values]
        odd = [v for v in values if v not in AXES[axis]]
        if odd or not values:
            raise fail(path, f"axis {axis!r} takes values from {AXES[axis]}, not {odd or values}")
        space[axis] = values
    return space


def load_point(text: str, space: dict) -> dict:
    """A point of ``space`` to train first: a name from :data:`POINTS` or a TOML file of one value per axis
    (axes it leaves out are sampled). A value outside the space is one line."""
    if text in POINTS:
        where, given = f"--start_from {text}", dict(POINTS[text])
    else:
        path = Path(text)
        where = str(path)
        if not path.is_file():
            raise fail(path, f"no such point file, and not one of the built-in points ({', '.join(POINTS)})")
        try:
            given = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise fail(path, f"not a TOML point ({err})") from None
    for axis, value in given.items():
        if axis not in AXES:
            raise fail(where, f"unknown axis {axis!r}; axes: {', '.join(AXES)}")
        if isinstance(value, list) or value not in space[axis]:
            raise fail(where, f"axis {axis!r} is {value!r}, not one value of the space's {space[axis]}")
    if not given.get("levels", 1):
        if flat := [a for a in UNET_ONLY if a in given]:
            raise fail(where, f"{', '.join(flat)} only mean something for a U-Net (levels >= 1), not a flat net")
    return given


def suggest(trial, space: dict) -> dict:
    """One candidate's ``[model]`` section, sampled axis by axis (U-Net axes only for U-Nets)."""
    pick = {axis: trial.suggest_categorical(axis, values) for axis, values in space.items()
            if axis not in UNET_ONLY}
    if pick["levels"]:
        pick.update({axis: trial.suggest_categorical(axis, space[axis]) for axis in UNET_ONLY})
    return model_section(pick)


def sample(seed: int, space: dict | None = None):
    """Sections drawn uniformly from ``space`` (default the full space), endless and the same for a seed: the
    preflight's candidates, the latency table's whole-graph probes, the predictor benchmark's held-out ones."""
    import optuna  # lazy: a recipe writer should not need the engine

    space = space or load_space(None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draws = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    while True:
        yield suggest(draws.ask(), space)


def model_section(pick: dict) -> dict:
    """searchnet settings from axis values: ``conv = "reparam"`` is a full conv trained re-parameterised, and
    ``activation = "tanh_first"`` is ReLU with Smallnet's tanh on the first conv."""
    section = {"architecture": "searchnet", **pick}
    if section.get("conv") == "reparam":
        section.update(conv="full", reparam=True)
    if section.get("activation") == "tanh_first":
        section.update(activation="relu", tanh_first=True)
    return section


def recipe(section: dict, base: str = "smallnet", name: str = "candidate") -> dict:
    """A whole recipe: the candidate's model on the base recipe's input convention and schedule."""
    d = recipes.load_recipe(base).to_dict()
    return {**d, "name": name, "summary": describe(section), "model": dict(section)}


def describe(section: dict) -> str:
    """One line, e.g. 'U-Net 2 levels, s2d stem, width 16 x1.5 (align 8), 2 separable convs, relu, d2s + add'."""
    s = section
    conv = "reparam" if s.get("reparam") else s.get("conv", "full")
    act = "tanh + " + s.get("activation", "relu") if s.get("tanh_first") else s.get("activation", "relu")
    body = (f"U-Net {s['levels']} levels" if s.get("levels") else "flat") + f", {s.get('stem', 'conv')} stem, "
    body += f"width {s.get('width', 16)}" + (f" x{s.get('growth', 2.0)}" if s.get("levels") else "")
    body += f" (align {s.get('align', 8)}), {s.get('depth', 2)} {conv} convs per stage, {act}"
    if s.get("levels"):
        body += f", {s.get('upsample', 'transpose')} + {s.get('merge', 'concat')}"
    if s.get("attention", "none") != "none":
        body += f", {s['attention']} attention"
    return body + f", {s.get('head', 'shuffle')} head"


def to_toml(recipe_dict: dict) -> str:
    """A recipe as TOML, shaped like ``models/*.toml`` (top-level keys, then one table per section)."""
    lines = [f"{k} = {_value(v)}" for k, v in recipe_dict.items() if not isinstance(v, dict)]
    for section, table in recipe_dict.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"] + [f"{k} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
