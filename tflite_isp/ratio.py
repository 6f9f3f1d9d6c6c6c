"""``python -m tflite_isp.ratio``: see :mod:`tflite_isp.apps.ratio`."""
from tflite_isp.apps.ratio import entry

if __name__ == "__main__":
    entry()
