"""tflite_isp: learned camera ISP and low-light RAW networks from Keras to verified .tflite."""

__version__ = "0.1.0"
