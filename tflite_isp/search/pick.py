"""``search pick``: the chosen candidate as an ordinary recipe, trained at its full schedule, exported, scored on
the test split next to the runs it is compared with, and its INT8 file's Model Explorer overlays written."""
from __future__ import annotations

import json
from pathlib import Path

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError
from tflite_isp.nets import recipes
from tflite_isp.score import zoo
from tflite_isp.search import report, space
from tflite_isp.search.targets import parse_target


def choose(study, number: int | None) -> dict:
    """The trial ``number`` (finished), or the Pareto trial with the best MAI score."""
    records = report.rows(study)
    if number is None:
        chosen = report.pick(records)
        if chosen is None:
            raise UserError(f"search {study.study_name!r} has no finished trial to pick yet")
        return chosen
    found = [r for r in records if r["trial"] == number]
    if not found or found[0]["state"] != "complete":
        raise UserError(f"search {study.study_name!r} has no finished trial {number}")
    return found[0]


def pick_recipe(chosen: dict, settings: dict, out: Path, name: str) -> Path:
    """The candidate's model on its base recipe's whole schedule, as ``out`` (TOML, like models/*.toml)."""
    section = recipes.load_recipe(chosen["recipe"]).model
    rec = space.recipe(section, settings.get("base", "smallnet"), name=name)
    rec["summary"] = f"searched: trial {chosen['trial']} ({chosen['psnr']:.2f} dB INT8 at {chosen['ms']:.1f} ms " \
                     f"on {settings.get('target')} after {settings.get('trial_steps')} steps); {rec['summary']}"
    atomic.write_text(out, space.to_toml(rec))
    return out


def pick_folder(study_folder: Path, trial: int | None) -> Path:
    """Where ``search pick`` writes: ``pick/`` for the pick by MAI score, ``pick-trialN/`` for ``--trial N``."""
    return Path(study_folder) / ("pick" if trial is None else f"pick-trial{trial}")


def pick(study, cfg, *, trial: int | None = None, fraction: float = 1.0, compare=(), log=print) -> Path:
    """Train, export and score the pick; returns the leaderboard (Markdown) it is scored in."""
    if not 0 < fraction <= 1:
        raise UserError(f"--fraction must be in (0, 1], not {fraction}")
    settings = study.user_attrs.get("settings", {})
    chosen = choose(study, trial)
    folder = pick_folder(cfg.folder, trial)
    folder.mkdir(parents=True, exist_ok=True)
    recipe_path = pick_recipe(chosen, settings, folder / "recipe.toml", f"{cfg.name}-{folder.name}")
    run_dir = folder / "run"
    data = settings.get("data", "embedded:isp")
    for path in compare:
        if not (Path(path) / "export" / "int8" / "model.tflite").is_file():
            raise UserError(f"{path}: no export/int8/model.tflite to compare with (train and export it first)")
    log(f"pick: trial {chosen['trial']}: {chosen['summary']}")
    if not zoo.trained(run_dir):
        train = recipes.load_recipe(recipe_path).train
        steps = max(1, round(train["epochs"] * train["steps_per_epoch"] * fraction))
        zoo.command("train", zoo.train_args(str(recipe_path), run_dir, data=data, steps=steps if fraction < 1 else 0,
                                            seed=settings.get("seed", 0)), "training the pick", log)
    if not zoo.exported(run_dir):
        for precision in zoo.PRECISIONS:
            zoo.command("export", [run_dir, f"--{precision}", "--debug_quant"] if precision == "int8" else
                        [run_dir, f"--{precision}"], f"exporting the pick {precision}", log)
    models = [run_dir / "export" / "int8"] + [Path(p) / "export" / "int8" for p in compare]
    zoo.command("score", [*models, "--data", data, "--out", folder / "score"], "scoring the pick", log)
    _overlays(run_dir / "export" / "int8", settings, log)
    atomic.write_json(folder / "pick.json", {"trial": chosen, "recipe": str(recipe_path), "run": str(run_dir),
                                             "leaderboard": str(folder / "score" / "leaderboard.md")})
    return folder / "score" / "leaderboard.md"


def _overlays(export_dir: Path, settings: dict, log) -> None:
    """Per-op predicted latency (when this device has a table) and INT8 per-layer error, for Model Explorer."""
    from tflite_isp.search import latency, overlay  # lazy: only a pick writes overlays

    per_op = None
    try:
        table = latency.table_for(parse_target(settings.get("target", "local")), settings.get("table"))
        per_op = latency.predict(export_dir / "model.tflite", table)["per_op"]
    except UserError as err:
        log(f"pick: no per-op latency overlay ({err})")
    manifest = json.loads((export_dir / "manifest.json").read_text())
    written = overlay.write_overlays(export_dir / "model.tflite", export_dir / "overlays", latency_per_op=per_op,
                                     int8_error_per_layer=manifest.get("debug_quant"))
    for path in written:
        log(f"pick: Model Explorer overlay {path}")
