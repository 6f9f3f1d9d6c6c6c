"""``python -m tflite_isp.train``."""
from tflite_isp.train.cli import entry

entry()
