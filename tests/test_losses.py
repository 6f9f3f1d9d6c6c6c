"""Loss terms: weighted sums, SSIM as tf.image.ssim, and VGG only from a local file."""
import numpy as np
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras, tf
from tflite_isp.train.losses import make_loss, parse_loss

rng = np.random.default_rng(0)
Y = tf.constant(rng.random((2, 32, 32, 3)), tf.float32)
P = tf.clip_by_value(Y + tf.constant(rng.normal(0, 0.05, (2, 32, 32, 3)), tf.float32), 0, 1)


def test_parse_and_weighting():
    assert parse_loss("l1:1,ssim:0.2") == [("l1", 1.0), ("ssim", 0.2)]
    assert parse_loss("mse") == [("mse", 1.0)]
    l1 = float(make_loss(parse_loss("l1"))(Y, P))
    mse = float(make_loss(parse_loss("mse"))(Y, P))
    both = float(make_loss(parse_loss("l1:2,mse:20"))(Y, P))
    assert l1 == pytest.approx(float(tf.reduce_mean(tf.abs(P - Y))))
    assert both == pytest.approx(2 * l1 + 20 * mse, rel=1e-5)


def test_ssim_and_charbonnier_terms():
    ssim = float(make_loss(parse_loss("ssim"))(Y, P))
    assert ssim == pytest.approx(1 - float(tf.reduce_mean(tf.image.ssim(Y, P, 1.0))), abs=1e-6)
    charb = float(make_loss(parse_loss("charbonnier"))(Y, P))
    l1 = float(make_loss(parse_loss("l1"))(Y, P))
    assert l1 < charb < l1 + 1e-3
    assert float(make_loss(parse_loss("ssim"))(Y, Y)) == pytest.approx(0, abs=1e-6)


def test_bad_loss_specs():
    for spec, msg in [("l2", "unknown loss term"), ("l1:x", "not a number"), ("", "empty")]:
        with pytest.raises(UserError, match=msg):
            parse_loss(spec)
    with pytest.raises(UserError, match="at least 161"):
        make_loss(parse_loss("ms_ssim"), patch=128)


def test_vgg_term_from_a_local_weights_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))  # nothing may be fetched into it
    weights = tmp_path / "vgg19_notop.h5"
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    for layer in vgg.layers:  # He-scaled random weights, so features survive 16 ReLU convs
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:3])
            layer.set_weights([rng.normal(0, np.sqrt(2 / fan_in), kernel.shape), np.full_like(bias, 0.01)])
    vgg.save_weights(str(weights))
    loss = make_loss(parse_loss("l1,vgg:0.001"), vgg_weights=str(weights))
    value = float(loss(Y, P))
    assert np.isfinite(value) and value > float(make_loss(parse_loss("l1"))(Y, P))
    assert float(loss(Y, Y)) == pytest.approx(0, abs=1e-6)
    assert not (tmp_path / "keras_home").exists()
    with pytest.raises(UserError, match="not a Keras VGG-19 weights file"):
        bogus = tmp_path / "bogus.h5"
        bogus.write_bytes(b"nope")
        make_loss(parse_loss("vgg"), vgg_weights=str(bogus))
