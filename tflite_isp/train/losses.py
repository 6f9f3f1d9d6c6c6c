"""Training losses as a weighted sum of named terms: ``--loss "l1:1,ssim:0.2"``.

Terms: l1, mse, charbonnier, ssim (1 - SSIM), ms_ssim (1 - MS-SSIM), vgg (VGG-19
block5_conv4 feature MSE, only from a local weights file the user names: never downloaded), chroma
(colourisation only: L1 between predicted and true chroma |ab|, against MSE's grey cast).
"""
from __future__ import annotations

from pathlib import Path

from tflite_isp.core.errors import UserError, fail
from tflite_isp.core.tf import keras, tf

TERMS = ("l1", "mse", "charbonnier", "ssim", "ms_ssim", "vgg", "chroma")
CHARBONNIER_EPS = 1e-3
MS_SSIM_MIN_SIZE = 161  # five scales of an 11-tap filter: (11 - 1) * 2**4 + 1


def parse_loss(spec: str) -> list:
    """``"l1:1,ssim:0.2"`` -> [("l1", 1.0), ("ssim", 0.2)]; a bare name has weight 1."""
    terms = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition(":")
        if name not in TERMS:
            raise UserError(f"unknown loss term {name!r} in --loss {spec!r}; terms: {', '.join(TERMS)}")
        try:
            terms.append((name, float(weight) if weight else 1.0))
        except ValueError:
            raise UserError(f"loss weight {weight!r} of {name} is not a number") from None
    if not terms:
        raise UserError("--loss is empty")
    return terms


def _vgg_features(weights_path):
    path = Path(weights_path or "")
    if not weights_path or not path.is_file():
        raise fail(path if weights_path else "--vgg_weights",
                   "the vgg loss needs a local VGG-19 weights file (Keras .h5, include_top=False); "
                   "nothing is downloaded")
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    try:
        vgg.load_weights(str(path))
    except Exception as err:  # h5py/Keras raise several types for a wrong file
        raise fail(path, f"not a Keras VGG-19 weights file ({err})") from None
    vgg.trainable = False
    features = keras.Model(vgg.input, vgg.get_layer("block5_conv4").output)
    mean = tf.constant([123.68, 116.779, 103.939]) # ImageNet RGB mean, as the MAI baseline uses

    def extract(img):
        return features((img * 255.0 - mean)[..., ::-1])  # Keras VGG expects BGR

    return extract


def make_loss(terms, *, vgg_weights=None, patch=None):
    """A callable (y_true, y_pred) -> scalar loss, averaged over the batch."""
    names = [n for n, _ in terms]
    if "ms_ssim" in names and patch is not None and patch < MS_SSIM_MIN_SIZE:
        raise UserError(f"ms_ssim needs patches of at least {MS_SSIM_MIN_SIZE} px, got --patch {patch}")
    vgg = _vgg_features(vgg_weights) if "vgg" in names else None

    def term(name, y, p):
        d = p - y
        if name == "l1":
            return tf.reduce_mean(tf.abs(d))
        if name == "mse":
            return tf.reduce_mean(tf.square(d))
        if name == "charbonnier":
            return tf.reduce_mean(tf.sqrt(tf.square(d) + CHARBONNIER_EPS ** 2))
        if name == "ssim":
            return 1.0 - tf.reduce_mean(tf.image.ssim(y, p, max_val=1.0))
        if name == "chroma":
            # Where the hue is uncertain MSE's optimum is the mean of the plausible (a, b): a shorter vector, a
            # greyer colour. Matching |ab| itself rewards saturation without committing to a hue.
            return tf.reduce_mean(tf.abs(tf.norm(p, axis=-1) - tf.norm(y, axis=-1)))
        if name == "ms_ssim":
            return 1.0 - tf.reduce_mean(tf.image.ssim_multiscale(y, tf.clip_by_value(p, 0.0, 1.0), max_val=1.0))
        return tf.reduce_mean(tf.square(vgg(y) - vgg(p)))

    def loss(y_true, y_pred):
        return tf.add_n([w * term(n, y_true, y_pred) for n, w in terms])

    return loss
