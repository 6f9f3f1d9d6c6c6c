"""SYENet-ISP (team SYENet, MAI 2022 Learned Smartphone ISP winner; Gou et al., ICCV 2023).

As sanechips-multimedia/syenet model/isp.py (SYEISPNet; SYEISPNetS is its re-parameterised form), 12 channels:

1. Head, a quadratic connection unit (QCU): (5x5 conv 4->12, PReLU, 3x3 conv) times (5x5 conv 4->12), plus a
   learned per-channel bias.
2. Body, a QCU: (3x3 conv) times (1x1 conv), plus a bias.
3. Channel attention: global mean -> 1x1 conv -> PReLU -> 1x1 conv -> sigmoid, times the body's output.
4. Tail: pixel shuffle x2 (12 -> 3 channels at full resolution), 3x3 conv 3->3; linear output, no clip.

PReLUs are per channel (alpha 0.25 at first). Every conv is a ``RepConv2D`` in training form (``reparam``) and
a plain Conv2D once fused; the reference's QCU multiplies its product by 0.1 in training form, which here is
the second factor's ``output_scale``, so fusing folds it into that conv as the reference's ``slim()`` does.
"""
from tflite_isp.core.tf import keras, tf
from tflite_isp.nets.layers import PixelShuffle
from tflite_isp.nets.reparam import rep_conv

L = keras.layers
QCU_SCALE = 0.1  # the reference's QuadraticConnectionUnit.scale


@keras.utils.register_keras_serializable(package="tflite_isp")
class ChannelBias(L.Layer):
    """x + b with a learned bias per channel (the QCU's; standard normal at first, as the reference's randn)."""

    def build(self, input_shape):
        self.bias = self.add_weight("bias", (int(input_shape[-1]),), initializer=keras.initializers.RandomNormal())
        super().build(input_shape)

    def call(self, inputs):
        return inputs + tf.cast(self.bias, inputs.dtype)


def _qcu(first, second, name):
    """Quadratic connection unit: elementwise product of two branches plus a per-channel bias."""
    return ChannelBias(name=f"{name}_bias")(L.Multiply(name=f"{name}_mul")([first, second]))


def _prelu(x, name):
    return L.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2], name=name)(x)


def syenet(inputs, *, channels=12, reparam=False, rep_scale=4):
    """Packed RAW -> RGB at twice the packed resolution (5,640 parameters fused with the defaults).

    ``reparam`` builds the training form (RepConv2D blocks ``rep_scale`` times wider per branch); the exporter
    fuses it (``architectures.deploy_form``/``fuse_weights``).
    """
    def conv(x, filters, kernel, name, output_scale=1.0):
        return rep_conv(x, filters, kernel, name=name, reparam=reparam, rep_scale=rep_scale,
                        output_scale=output_scale)

    # 1. Head QCU.
    a = conv(inputs, channels, 5, "head_a1")
    a = conv(_prelu(a, "head_a_prelu"), channels, 3, "head_a2")
    b = conv(inputs, channels, 5, "head_b", QCU_SCALE)
    x = _qcu(a, b, "head")

    # 2. Body QCU (12 channels: the pixel shuffle makes them 3 at full resolution).
    x = _qcu(conv(x, 12, 3, "body_a"), conv(x, 12, 1, "body_b", QCU_SCALE), "body")

    # 3. Channel attention.
    s = L.GlobalAveragePooling2D(keepdims=True, name="att_pool")(x)
    s = conv(_prelu(conv(s, 12, 1, "att_down"), "att_prelu"), 12, 1, "att_up")
    s = L.Activation("sigmoid", name="att_sigmoid")(s)
    x = L.Multiply(name="att_mul")([s, x])

    # 4. Tail at full resolution.
    return conv(PixelShuffle(2, name="pixel_shuffle")(x), 3, 3, "tail")


INPUT_MULTIPLE = 1  # no downsampling
CUSTOM_OBJECTS = {"ChannelBias": ChannelBias}
