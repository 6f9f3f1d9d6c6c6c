"""``python -m tflite_isp.score``."""
from tflite_isp.score.cli import entry

entry()
