"""The model zoo: published parameter counts, MACs, shapes, serialisation, and learning."""
import numpy as np
import pytest
from conftest import fit_steps

from tflite_isp.core.tf import keras, tf
from tflite_isp.nets import architectures, recipes
from tflite_isp.nets.stats import count_macs, count_params

# Parameter counts derived from the reference codes (reference-architectures.md §0).
PUBLISHED = {"smallnet": 4652, "sid_unet": 7_760_268, "punet": 5_725_199, "csanet": 28_511,
             "pynet_v2_mobile": 930_255,
             "syenet": 103_911,  # the recipe builds the training form (5,640 fused; see test_zoo_syenet.py)
             "enerzai": 1567, "isp_forever": 43_001, "noahtcv": 60_104}  # the last three: inferred widths


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_full_hd_build_matches_published_counts(name):
    recipe = recipes.load_recipe(name)
    model = architectures.build(recipe.model, height=544, width=960, batch=1)
    assert model.input_shape == (1, 544, 960, 4)
    assert model.output_shape == (1, 1088, 1920, 3)
    assert count_params(model) == PUBLISHED[name]


def test_macs():
    # Smallnet: 544*960 * 9 * (4*16 + 16*16 + 16*12) = 2.406 GMAC (reference: about 2.41 GMAC).
    smallnet = architectures.build(recipes.load_recipe("smallnet").model, height=544, width=960, batch=1)
    assert count_macs(smallnet) == 544 * 960 * 9 * (4 * 16 + 16 * 16 + 16 * 12)
    punet = architectures.build(recipes.load_recipe("punet").model, height=544, width=960, batch=1)
    assert 39.0e9 < count_macs(punet) < 39.6e9  # reference: about 39 GMAC


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_dynamic_height_and_width(name):
    model = architectures.build(recipes.load_recipe(name).model)
    assert model.input_shape == (None, None, None, 4)
    out = model(tf.zeros([1, 32, 48, 4]))
    assert out.shape == (1, 64, 96, 3)


@pytest.mark.parametrize("name,sep_macs", [("sid_unet", 0.2), ("punet", 0.25)])
def test_width_multiplier_and_separable_shrink_the_unets(name, sep_macs):
    base = recipes.load_recipe(name)
    full = architectures.build(base.model, height=64, width=64, batch=1)
    slim = architectures.build(base.with_model(width_multiplier=0.5).model, height=64, width=64, batch=1)
    sep = architectures.build(base.with_model(separable=True).model, height=64, width=64, batch=1)
    assert count_params(slim) < 0.3 * count_params(full)
    assert count_macs(sep) < sep_macs * count_macs(full)
    assert any(isinstance(layer, keras.layers.DepthwiseConv2D) for layer in sep.layers)
    assert sep.output_shape == full.output_shape == (1, 128, 128, 3)


def test_wrong_input_multiple_is_refused():
    with pytest.raises(ValueError, match="not divisible by 16"):
        architectures.build(recipes.load_recipe("sid_unet").model, height=40, width=64)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_saved_model_round_trip_without_lambda(tmp_path, name):
    model = architectures.build(recipes.load_recipe(name).model)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model.layers)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)
    x = tf.random.uniform([1, 32, 32, 4], seed=1)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-6)


def _kernels(model):
    """Every kernel (convs, transposed convs, depthwise; not PReLU slopes, constant at the start) by layer and
    weight name."""
    return {w.name: w.numpy() for w in model.weights if len(w.shape) > 1 and "kernel" in w.name.split("/")[-1]}


def _build_seeded(model_section, seed):
    keras.utils.set_random_seed(seed)  # what train does with --seed before it builds the model
    return architectures.build(model_section)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_no_two_kernels_start_identical(name):
    """Each layer draws its own initial weights: no two kernels of the same shape are equal (PUNET once shared
    one seeded initialiser, which made every same-shaped kernel a copy)."""
    kernels = sorted(_kernels(_build_seeded(recipes.load_recipe(name).model, 0)).items())
    assert len(kernels) > 1
    for i, (a, ka) in enumerate(kernels):
        assert np.std(ka) > 0, f"{a} is constant"
        for b, kb in kernels[i + 1:]:
            if ka.shape == kb.shape:
                assert not np.array_equal(ka, kb), f"{a} and {b} start identical"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_initial_weights_follow_the_seed(name):
    """The same seed builds the same weights (biases included); another seed builds other kernels."""
    section = recipes.load_recipe(name).model
    first = _build_seeded(section, 3).get_weights()
    again = _build_seeded(section, 3).get_weights()
    other = _kernels(_build_seeded(section, 4))
    assert len(first) == len(again)
    for x, y in zip(first, again):
        np.testing.assert_array_equal(x, y)
    for key, kernel in _kernels(_build_seeded(section, 3)).items():
        assert not np.array_equal(kernel, other[key]), f"{key} does not depend on the seed"


@pytest.mark.parametrize("init", ["reference", "he_normal", "glorot_uniform"])
def test_punet_init_setting(init):
    """PUNET's ``[model] init``: the reference's std 0.01 truncated normal, or a fan-in-scaled one."""
    from tflite_isp.nets.punet import INITS

    assert init in INITS
    section = {**recipes.load_recipe("punet").model, "init": init}
    kernel = _build_seeded(section, 0).get_layer("mid1a").kernel.numpy()  # 3x3x128x256, fan-in 1152
    # std of a normal truncated at 2 sigma is 0.8796 sigma (HeNormal rescales for it); Glorot: 2 / (fan in + out)
    expected = {"reference": 0.01 * 0.8796, "he_normal": (2 / 1152) ** 0.5, "glorot_uniform": (2 / 3456) ** 0.5}
    expected = expected[init]
    assert abs(kernel.std() / expected - 1) < 0.05
    with pytest.raises(ValueError, match="no init 'xavier'"):
        architectures.build({**section, "init": "xavier"})


@pytest.mark.parametrize("name,size", [("smallnet", 32), ("sid_unet", 32), ("punet", 32)])
def test_each_model_learns_on_real_pairs(isp_data, name, size):
    """A few optimizer steps on one batch of the generated data lower the loss."""
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.train.losses import make_loss, parse_loss

    recipe = recipes.load_recipe(name)
    split = layouts.open_split("mai21", isp_data, "train")
    # sid_unet normalises with the file's levels: the generated set's sensor.json provides them.
    x, y = next(iter(pipeline.training_dataset(split, recipe.input, patch=2 * size, batch=4, seed=0)))
    keras.utils.set_random_seed(0)
    model = architectures.build(recipe.model)
    loss_fn = make_loss(parse_loss("l1"))
    losses = fit_steps(lambda: loss_fn(y, model(x, training=True)), model.trainable_variables, steps=25, lr=1e-3)
    assert losses[-1] < 0.7 * losses[0], losses
