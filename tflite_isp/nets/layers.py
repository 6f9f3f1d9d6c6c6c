"""Custom Keras layers as real, serialisable layer classes (never Lambda: not quantizable)."""
from tflite_isp.core.tf import keras, tf


@keras.utils.register_keras_serializable(package="tflite_isp")
class PixelShuffle(keras.layers.Layer):
    """depth_to_space: H x W x (C*b*b) -> bH x bW x C (converts to TFLite DEPTH_TO_SPACE)."""

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        b, h, w, c = tf.TensorShape(input_shape).as_list()
        s = self.block_size
        return tf.TensorShape([b, None if h is None else h * s, None if w is None else w * s, c // (s * s)])

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.utils.register_keras_serializable(package="tflite_isp")
class SpaceToDepth(keras.layers.Layer):
    """space_to_depth: H x W x C -> H/b x W/b x (C*b*b) (converts to TFLite SPACE_TO_DEPTH)."""

    def __init__(self, block_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        b, h, w, c = tf.TensorShape(input_shape).as_list()
        s = self.block_size
        return tf.TensorShape([b, None if h is None else h // s, None if w is None else w // s, c * s * s])

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.utils.register_keras_serializable(package="tflite_isp")
class Normalise(keras.layers.Layer):
    """Sensor values -> [0, 1] inside the graph: (x - black) / (white - black), per packed channel.

    Written as one multiply and one add (MUL/ADD delegate everywhere; DIV does not), so an
    exported file can take raw sensor values (the MAI rule: all processing inside the graph).
    """

    def __init__(self, black=(0.0, 0.0, 0.0, 0.0), white: float = 1.0, clip: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.black = [float(b) for b in black]
        self.white = float(white)
        self.clip = bool(clip)

    def call(self, inputs):
        scale = [1.0 / (self.white - b) for b in self.black]
        offset = [-b / (self.white - b) for b in self.black]
        y = inputs * tf.constant(scale, inputs.dtype) + tf.constant(offset, inputs.dtype)
        return tf.clip_by_value(y, 0.0, 1.0) if self.clip else y

    def get_config(self):
        return {**super().get_config(), "black": self.black, "white": self.white, "clip": self.clip}


CUSTOM_OBJECTS = {"PixelShuffle": PixelShuffle, "SpaceToDepth": SpaceToDepth, "Normalise": Normalise}


def conv3x3(x, channels: int, *, separable: bool, name: str, **kwargs):
    """A 3x3 'same' convolution, or its depthwise-separable form (3x3 depthwise ``name_dw`` + 1x1 pointwise
    ``name_pw``); a 4-channel packed input always gets the full conv (separating it saves nothing)."""
    if separable and x.shape[-1] > 4:
        x = keras.layers.DepthwiseConv2D(3, padding="same", name=f"{name}_dw")(x)
        return keras.layers.Conv2D(channels, 1, name=f"{name}_pw", **kwargs)(x)
    return keras.layers.Conv2D(channels, 3, padding="same", name=name, **kwargs)(x)

