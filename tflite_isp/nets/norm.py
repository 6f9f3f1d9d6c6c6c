"""Instance normalisation, reflect padding and channel slices as real Keras layers (PyNET-V2 needs all three)."""
from tflite_isp.core.tf import keras, tf


@keras.utils.register_keras_serializable(package="tflite_isp")
class InstanceNorm(keras.layers.Layer):
    """Per-image, per-channel normalisation over height and width, with a learned scale and offset per channel
    (tensorflow_addons' InstanceNormalization defaults: affine, epsilon 1e-3). Converts to MEAN,
    SQUARED_DIFFERENCE, RSQRT, MUL, SUB and ADD; no tensorflow_addons needed. All have int8 kernels, but RSQRT and
    SQUARED_DIFFERENCE are on no delegate's list (export.compat), so in a delegated file they run on the CPU."""

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs):
        mean = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
        variance = tf.reduce_mean(tf.math.squared_difference(inputs, mean), axis=[1, 2], keepdims=True)
        scale = tf.math.rsqrt(variance + self.epsilon) * self.gamma
        return inputs * scale + (self.beta - mean * scale)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.utils.register_keras_serializable(package="tflite_isp")
class ReflectPad(keras.layers.Layer):
    """Mirror ``pad`` pixels on each side of height and width, edge excluded (tf.pad REFLECT -> TFLite
    MIRROR_PAD); the padding needs at least ``pad + 1`` pixels each way."""

    def __init__(self, pad: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, inputs):
        p = self.pad
        return tf.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        b, h, w, c = tf.TensorShape(input_shape).as_list()
        p = 2 * self.pad
        return tf.TensorShape([b, None if h is None else h + p, None if w is None else w + p, c])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.utils.register_keras_serializable(package="tflite_isp")
class ChannelSlice(keras.layers.Layer):
    """Channels ``start`` .. ``start + size - 1`` (STRIDED_SLICE): one group of a channel-split block."""

    def __init__(self, start: int = 0, size: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.start, self.size = int(start), int(size)

    def call(self, inputs):
        return inputs[..., self.start:self.start + self.size]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape).as_list()[:-1] + [self.size]

    def get_config(self):
        return {**super().get_config(), "start": self.start, "size": self.size}


CUSTOM_OBJECTS = {"InstanceNorm": InstanceNorm, "ReflectPad": ReflectPad, "ChannelSlice": ChannelSlice}
