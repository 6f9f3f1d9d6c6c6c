"""Custom Keras layers as real, serialisable layer classes (never Lambda: not quantizable)."""
from tflite_isp._tf import keras, tf


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


CUSTOM_OBJECTS = {"PixelShuffle": PixelShuffle}
