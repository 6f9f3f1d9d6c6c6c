"""``python -m tflite_isp.data``."""
from tflite_isp.data.cli import entry

entry()
