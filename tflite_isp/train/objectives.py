"""What a training step minimises: the task loss alone, distillation from a teacher, the
ENERZAi-style joint training of a large and a small head on one feature extractor, or PyNET-V2's
coarser levels' auxiliary heads trained beside its output.

Each objective owns the Keras model that is checkpointed (``model``), its loss on a batch,
the prediction validation scores, and the deployable model saved as ``model.keras``.
"""
from __future__ import annotations

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import keras, tf
from tflite_isp.nets import architectures
from tflite_isp.nets import pynet_v2 as pynet_v2_net
from tflite_isp.nets import unet as unet_net


def validate(recipe_model: dict, *, teacher: bool = False, alpha: float = 0.5, features: float = 0.0,
             large: float | None = None) -> None:
    """One-line errors for settings no objective can train with (checked before a run starts)."""
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--distill_alpha must be in [0, 1], not {alpha}")
    if features < 0:
        raise UserError(f"--distill_features must be >= 0, not {features}")
    if large is None:
        if features and not teacher:
            raise UserError("--distill_features needs --teacher")
        return
    if teacher:
        raise UserError("--joint_large_head trains its own large head; it does not take --teacher")
    if recipe_model.get("architecture") != "unet":
        raise UserError(f"--joint_large_head needs a U-Net recipe (shared encoder, two decoders), not "
                        f"{recipe_model.get('architecture')}")
    if large <= 1.0:
        raise UserError(f"--joint_large_head is the large decoder's width relative to the small one; it must be "
                        f"> 1, not {large}")


class Plain:
    """The task loss on the model's output."""

    def __init__(self, model, loss_fn):
        self.model, self.loss_fn = model, loss_fn
        self.extra = []  # further trainable layers, checkpointed beside the model

    @property
    def variables(self):
        return self.model.trainable_variables + [v for layer in self.extra for v in layer.trainable_variables]

    def loss(self, x, y):
        return self.loss_fn(y, self.model(x, training=True))

    def predict(self, x):
        return self.model(x, training=False)

    def deployable(self, model):
        """The single-output network to save (``model`` is ``self.model``, stripped of pruning wrappers)."""
        return model


def feature_layer(model):
    """The tensor feeding the model's last convolution: the features its output is made from."""
    def is_conv(layer):
        layer = getattr(layer, "layer", layer)  # through a pruning wrapper
        return isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)) and \
            not isinstance(layer, keras.layers.DepthwiseConv2D)

    convs = [layer for layer in model.layers if is_conv(layer)]
    if not convs:
        raise UserError(f"{model.name} has no convolution to take distillation features from")
    return convs[-1].input


class Distill(Plain):
    """(1 - alpha) task loss + alpha * the same loss against the frozen teacher's output, plus
    ``features`` x MSE between the student's last features (through a trained 1x1 adapter) and
    the teacher's (FitNets-style; the adapter is dropped at export)."""

    def __init__(self, model, loss_fn, teacher, *, alpha: float, features: float = 0.0):
        super().__init__(model, loss_fn)
        validate({}, teacher=True, alpha=alpha, features=features)
        self.alpha, self.features = alpha, features
        teacher.trainable = False
        if features:
            t_feat, s_feat = feature_layer(teacher), feature_layer(model)
            self.teacher = keras.Model(teacher.inputs, [teacher.output, t_feat])
            self.student = keras.Model(model.inputs, [model.output, s_feat])
            self.adapter = keras.layers.Conv2D(t_feat.shape[-1], 1, name="distill_adapter")
            self.adapter.build(s_feat.shape)
            self.extra = [self.adapter]
        else:
            self.teacher, self.student = teacher, model

    def loss(self, x, y):
        if not self.features:
            t, s = self.teacher(x, training=False), self.model(x, training=True)
            return (1 - self.alpha) * self.loss_fn(y, s) + self.alpha * self.loss_fn(tf.stop_gradient(t), s)
        (t, t_feat), (s, s_feat) = self.teacher(x, training=False), self.student(x, training=True)
        s_feat = tf.cast(self.adapter(s_feat), tf.float32)  # float32 under --mixed_precision too
        t_feat = tf.cast(t_feat, tf.float32)
        s_feat = _match_size(s_feat, t_feat)
        t_feat = _match_size(t_feat, s_feat)
        feature_loss = tf.reduce_mean(tf.square(s_feat - tf.stop_gradient(t_feat)))
        task = (1 - self.alpha) * self.loss_fn(y, s) + self.alpha * self.loss_fn(tf.stop_gradient(t), s)
        return task + self.features * feature_loss


def _match_size(x, other):
    """Average-pool ``x`` down to ``other``'s height and width when it is larger by a whole factor
    (static shapes: training crops are fixed)."""
    if x.shape[1] is None or other.shape[1] is None:
        raise UserError("--distill_features needs fixed training crops (static feature sizes)")
    factor = x.shape[1] // other.shape[1]
    return tf.nn.avg_pool2d(x, factor, factor, "VALID") if factor > 1 else x


class ExtraHeads(Plain):
    """A training model whose first output is the recipe's network and whose other outputs are training-only heads:
    it validates on the first output and saves the recipe's single-output network, weights copied by layer name."""

    def predict(self, x):
        return self.model(x, training=False)[0]

    def deployable(self, model):
        return architectures.copy_weights(model, architectures.build(self.recipe_model, name=self.name))


class Joint(ExtraHeads):
    """ENERZAi-style: one U-Net encoder, the recipe's decoder (small head) and a ``large`` times
    wider decoder (large head) trained together; loss = task(small) + task(large) + alpha *
    task(small vs the large head's output). The large head is then detached: the deployable
    model is the recipe's own U-Net, weights copied by layer name."""

    PREFIX = "large_"

    def __init__(self, recipe_model: dict, loss_fn, *, large: float, alpha: float, name: str):
        validate(recipe_model, alpha=alpha, large=large)
        settings = {k: v for k, v in recipe_model.items() if k != "architecture"}
        widths = settings.get("widths", (32, 64, 128, 256, 512))
        separable = settings.get("separable", False)
        small = unet_net.layer_widths(widths, settings.get("width_multiplier", 1.0), settings.get("channels"))
        big = {k: max(4, int(round(c * large))) for k, c in small.items()}
        inputs = keras.Input(shape=(None, None, 4), name="raw")
        x, skips = unet_net.encoder(inputs, widths=widths, separable=separable, width_of=small)
        out_small = unet_net.decoder(x, skips, widths=widths, separable=separable, width_of=small)
        out_large = unet_net.decoder(x, skips, widths=widths, separable=separable, width_of=big, prefix=self.PREFIX)
        super().__init__(keras.Model(inputs, [out_small, out_large], name=f"{name}_joint"), loss_fn)
        self.recipe_model, self.alpha, self.name = recipe_model, alpha, name

    def loss(self, x, y):
        small, large = self.model(x, training=True)
        return (self.loss_fn(y, small) + self.loss_fn(y, large)
                + self.alpha * self.loss_fn(tf.stop_gradient(large), small))

    def predict_large(self, x):
        return self.model(x, training=False)[1]


class Levels(ExtraHeads):
    """PyNET-V2 with its level-2 and level-3 heads trained together with the output (the reference trains level
    by level instead): loss = task(output) + sum of weight x task(head vs the target average-pooled to its size,
    1/2 and 1/4). The heads are then dropped: the deployable model is the recipe's single-output network."""

    def __init__(self, recipe_model: dict, loss_fn, *, weights, name: str):
        if recipe_model.get("architecture") != "pynet_v2":
            raise UserError(f"aux_weights needs a pynet_v2 recipe (it has level heads), not "
                            f"{recipe_model.get('architecture')}")
        if len(weights) != 2 or min(weights) < 0:
            raise UserError(f"aux_weights is two weights >= 0 (level 2, level 3), not {list(weights)}")
        settings = {k: v for k, v in recipe_model.items() if k != "architecture"}
        inputs = keras.Input(shape=(None, None, 4), name="raw")
        outputs = pynet_v2_net.pynet_v2_levels(inputs, **settings)
        super().__init__(keras.Model(inputs, list(outputs), name=f"{name}_levels"), loss_fn)
        self.recipe_model, self.weights, self.name = recipe_model, [float(w) for w in weights], name

    def loss(self, x, y):
        out, *heads = self.model(x, training=True)
        total = self.loss_fn(y, out)
        for weight, head, factor in zip(self.weights, heads, (2, 4)):
            if weight:
                total += weight * self.loss_fn(tf.nn.avg_pool2d(y, factor, factor, "VALID"), head)
        return total
