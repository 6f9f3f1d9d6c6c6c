"""``python -m tflite_isp.stream``: see :mod:`tflite_isp.apps.stream`."""
from tflite_isp.apps.stream import entry

if __name__ == "__main__":
    entry()
