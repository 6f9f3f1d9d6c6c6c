"""``python -m tflite_isp.export``."""
from tflite_isp.export.cli import entry

entry()
