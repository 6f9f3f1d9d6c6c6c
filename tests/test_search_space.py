"""The search space as data: axes narrowed by a file, sampled into ordinary recipes, and bad input in one line."""
import optuna
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.nets import architectures, recipes
from tflite_isp.search import space
from tflite_isp.search.config import SearchConfig
from tflite_isp.search.targets import parse_target


def test_every_sampled_candidate_is_an_ordinary_recipe(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=1))
    seen = {axis: set() for axis in space.AXES}
    for i in range(40):
        trial = study.ask()
        section = space.suggest(trial, space.load_space(None))
        for axis, value in trial.params.items():
            seen[axis].add(value)
        path = tmp_path / f"c{i}.toml"
        path.write_text(space.to_toml(space.recipe(section, "smallnet", name=f"c{i}")))
        recipe = recipes.load_recipe(path)  # the pick trains, exports and scores like any zoo model
        assert recipe.model == section and recipe.input == recipes.load_recipe("smallnet").input
        assert architectures.input_multiple(section) >= 1
        if not section["levels"]:
            assert not set(space.UNET_ONLY) & set(trial.params)  # U-Net axes only where they mean something
    assert all(len(values) >= 2 for values in seen.values())


def test_axes_map_to_searchnet_settings():
    section = space.model_section({"conv": "reparam", "activation": "tanh_first", "levels": 0})
    assert section == {"architecture": "searchnet", "conv": "full", "reparam": True, "activation": "relu",
                       "tanh_first": True, "levels": 0}
    assert architectures.deploy_form(section)["reparam"] is False
    assert space.describe(section).startswith("flat")


def test_a_space_file_narrows_axes_and_bad_ones_are_one_line(tmp_path):
    good = tmp_path / "space.toml"
    good.write_text('levels = [2]\nactivation = "relu6"\n')
    narrowed = space.load_space(good)
    assert narrowed["levels"] == [2] and narrowed["activation"] == ["relu6"] and narrowed["stem"] == ["conv", "s2d"]
    for text, words in (('kernel = [5]\n', "unknown axis 'kernel'"), ('levels = [7]\n', "axis 'levels' takes"),
                        ('levels = [\n', "not a TOML search space")):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(UserError, match=words) as err:
            space.load_space(bad)
        assert "\n" not in str(err.value) and "bad.toml" in str(err.value)


def test_smallnet_is_a_point_of_the_space_and_a_search_can_start_from_it(tmp_path):
    from tflite_isp.search import study as studies
    from tflite_isp.search.trial import Trial

    point = space.load_point("smallnet", space.load_space(None))
    net = architectures.build(space.model_section(point), height=64, width=64)
    zoo = architectures.build(recipes.load_recipe("smallnet").model, height=64, width=64)
    assert net.count_params() == zoo.count_params() == 4652  # the same convs; only Smallnet's last ReLU differs
    cfg = SearchConfig(name="warm", root=str(tmp_path), start_from="smallnet")
    for _ in range(2):  # queued once, not again when the search is resumed with the same flag
        study, _cfg = studies.open_study(cfg, ("start_from",))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.WAITING]
    first = study.ask()
    assert space.suggest(first, space.load_space(None)) == space.model_section(point)
    assert first.user_attrs["start_from"] == "smallnet"
    # the proxy crop is the base recipe's unless given (128 ranked separable nets above Smallnet; see docs)
    path = Trial(cfg, parse_target("local"), runtime=None)._write_recipe(tmp_path, space.model_section(point), 0)
    assert recipes.load_recipe(path).train["patch"] == recipes.load_recipe("smallnet").train["patch"] == 256


def test_a_start_point_outside_the_space_is_one_line(tmp_path):
    narrowed = space.load_space(None) | {"conv": ["separable"]}
    cases = (("smallnet", narrowed, "axis 'conv' is 'full', not one value of the space's \\['separable'\\]"),
             ("width = [16, 24]\n", None, "axis 'width' is \\[16, 24\\]"),
             ("kernel = 5\n", None, "unknown axis 'kernel'"),
             ("levels = 0\nmerge = \"add\"\n", None, "merge only mean something for a U-Net"),
             ("levels = [\n", None, "not a TOML point"),
             (str(tmp_path / "none.toml"), None, "no such point file"))
    for i, (text, axes, words) in enumerate(cases):
        if text.endswith("\n"):
            (tmp_path / f"p{i}.toml").write_text(text)
            text = str(tmp_path / f"p{i}.toml")
        with pytest.raises(UserError, match=words) as err:
            space.load_point(text, axes or space.load_space(None))
        assert "\n" not in str(err.value)


def test_targets_and_settings_are_checked_in_one_line():
    assert parse_target("local").delegate == "xnnpack"
    assert parse_target("adb:R58M:gpu").delegate == "gpu" and parse_target("adb:R58M").delegate == "xnnpack"
    assert parse_target("jetson:nano").address == "nano"
    for bad in ("phone", "adb", "adb:X:tpu", "jetson:", "local:2"):
        with pytest.raises(UserError, match="unknown target") as err:
            parse_target(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="--trial_steps 10 is less than --eval_steps 50"):
        SearchConfig(trial_steps=10, eval_steps=50)
    with pytest.raises(UserError, match="--latency must be measure or predict"):
        SearchConfig(latency="guess")


def test_a_trial_clearly_behind_a_faster_finished_one_is_pruned(tmp_path):
    from tflite_isp.search.trial import Trial

    study = optuna.create_study(directions=["maximize", "minimize"])
    done = study.ask()
    done.set_user_attr("curve", [[150, 20.0], [300, 22.0]])
    study.tell(done, [22.5, 40.0])
    judge = Trial(SearchConfig(prune_margin=1.0, root=str(tmp_path)), parse_target("local"), runtime=None)
    slower = study.ask()
    judge._check_dominated(slower, [150, 19.5], early_ms=45.0)  # behind, but not by the margin: goes on
    judge._check_dominated(slower, [300, 23.0], early_ms=45.0)  # ahead
    faster = study.ask()
    judge._check_dominated(faster, [150, 15.0], early_ms=30.0)  # far behind, but faster than the finished one
    with pytest.raises(optuna.TrialPruned, match="at step 150: 18.00 dB against trial 0's 20.00 dB at 40.0 ms"):
        judge._check_dominated(slower, [150, 18.0], early_ms=45.0)
    assert slower.user_attrs["pruned_at"] == "dominated"


def test_a_child_s_failure_becomes_the_trial_s_reason(tmp_path):
    from tflite_isp.search.trial import _last_line

    log = tmp_path / "export.log"
    log.write_text("int8: converting\nerror: runs/x: cannot load the Keras model\n")
    assert _last_line(log) == "error: runs/x: cannot load the Keras model"
    log.write_text("INFO: Created delegate\ndouble free or corruption (!prev)\nFatal Python error: Aborted\n\n"
                   "Current thread:\n  File \"litert.py\", line 65\nExtension modules: numpy\n")
    assert _last_line(log) == "Fatal Python error: Aborted after 'double free or corruption (!prev)'"


def test_a_point_already_finished_is_not_trained_again(tmp_path):
    from tflite_isp.search.trial import Trial

    study = optuna.create_study(directions=["maximize", "minimize"])
    params = {axis: 8 if axis == "width" else values[0] for axis, values in space.AXES.items()
              if axis not in space.UNET_ONLY}
    dists = {k: optuna.distributions.CategoricalDistribution(space.AXES[k]) for k in params}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=[23.0, 12.0],
                                              user_attrs={"summary": "flat", "tflite": "x.tflite"}))
    narrowed = tmp_path / "space.toml"
    narrowed.write_text("".join(f"{k} = [{space._value(v)}]\n" for k, v in params.items()))
    objective = Trial(SearchConfig(space=str(narrowed), root=str(tmp_path)), parse_target("local"), runtime=None)
    study.optimize(objective, n_trials=1)
    again = study.trials[-1]
    assert again.values == [23.0, 12.0] and again.user_attrs["same_as"] == 0
    assert again.constraints == {"requirements": 0.0}
    assert not (tmp_path / "default" / "trials").exists()


def test_the_time_budget_starts_no_trial_that_would_end_past_it():
    import datetime
    import time

    from tflite_isp.search.study import Budget

    study = optuna.create_study(directions=["maximize", "minimize"])
    start = datetime.datetime(2026, 1, 1)
    dist = {"width": optuna.distributions.CategoricalDistribution([8])}
    study.add_trial(optuna.trial.create_trial(params={"width": 8}, distributions=dist, values=[20.0, 10.0]))
    study.add_trial(optuna.trial.FrozenTrial(
        number=1, trial_id=1, state=optuna.trial.TrialState.COMPLETE, value=None, values=[21.0, 12.0],
        datetime_start=start, datetime_complete=start + datetime.timedelta(seconds=30), params={"width": 8},
        distributions=dist, user_attrs={}, system_attrs={}, intermediate_values={}))
    cfg = SearchConfig(timeout=100, n_trials=10)
    # median finished trial: 15 s (0 s and 30 s); 80 s gone + 15 s fits in 100 s, 90 s gone + 15 s does not
    assert not Budget(cfg, time.monotonic() - 80).out_of_time(study)
    assert Budget(cfg, time.monotonic() - 90).out_of_time(study)
    assert not Budget(SearchConfig(n_trials=3), time.monotonic()).done(study)
    assert Budget(SearchConfig(n_trials=2), time.monotonic()).done(study)


def test_a_candidate_over_the_latency_budget_is_pruned_before_training(tmp_path):
    from tflite_isp.run.records import Measured
    from tflite_isp.search.trial import Trial

    class Slow:  # the target's runtime, as score.sources gives it, answering 500 ms
        label = "a slow target"

        def measure(self, entry):
            return Measured(500.0, self.label, {})

    narrowed = tmp_path / "space.toml"
    narrowed.write_text("".join(f"{k} = [{space._value(8 if k == 'width' else v[0])}]\n"
                                for k, v in space.AXES.items()))  # one candidate: a flat 8-wide ReLU net
    cfg = SearchConfig(space=str(narrowed), root=str(tmp_path), max_ms=100.0)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(Trial(cfg, parse_target("local"), runtime=Slow()), n_trials=1)
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["pruned_at"] == "latency"
    assert t.user_attrs["reason"] == "500.0 ms > --max_ms 100 on local" and t.constraints == {"requirements": 4.0}
    assert not (tmp_path / "default" / "trials" / "0000" / "run").exists()  # nothing trained


def test_an_untrained_file_xnnpack_would_refuse_is_drawn_again():
    """A unit dead on every random input collapses its INT8 range (XNNPACK refuses the file): the quick file's
    weights are drawn again, so the candidate is judged on its graph, not on one unlucky initialisation."""
    from tflite_isp.core.tf import keras
    from tflite_isp.run import flatbuffer, litert
    from tflite_isp.search.trial import untrained_int8

    built = []

    def build():
        bias = keras.initializers.Constant(-100.0 if not built else 0.0)  # the first draw is dead
        built.append(bias)
        x = keras.Input(batch_size=1, shape=(16, 16, 4))
        y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", bias_initializer=bias)(x)
        return keras.Model(x, keras.layers.Conv2D(4, 3, padding="same")(y))

    data = untrained_int8(build, 4)
    assert len(built) == 2 and not litert.xnnpack_refusals(flatbuffer.parse(data))


def test_a_probe_the_runtime_refuses_is_left_out_and_recorded(tmp_path):
    from tflite_isp.search import profile

    class Timer:
        def time(self, path):
            if path.name == "bad.tflite":
                raise UserError(f"{path}: LiteRT cannot load it (failed to prepare)")
            return {"ms": 1.0}

    paths = [tmp_path / "tiny.tflite", tmp_path / "bad.tflite", tmp_path / "ok.tflite"]
    lines = []
    best, refused = profile._time_rounds(Timer(), paths, 2, lines.append, 0.0)
    assert best[1] is None and best[2] == {"ms": 1.0} and list(refused) == [1]
    assert sum("left out bad.tflite" in ln for ln in lines) == 1  # tried once, not every round
