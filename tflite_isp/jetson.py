"""``python -m tflite_isp.jetson``: see :mod:`tflite_isp.devices.jetson_cli`."""
from tflite_isp.devices.jetson_cli import entry

if __name__ == "__main__":
    entry()
