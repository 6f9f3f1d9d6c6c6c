"""``python -m tflite_isp.search``."""
from tflite_isp.search.cli import entry

entry()
