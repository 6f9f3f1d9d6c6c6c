"""``python -m tflite_isp.enhance``: see :mod:`tflite_isp.apps.enhance`."""
from tflite_isp.apps.enhance import entry

if __name__ == "__main__":
    entry()
