"""``python -m tflite_isp.android``: see :mod:`tflite_isp.devices.android_cli`."""
from tflite_isp.devices.android_cli import entry

if __name__ == "__main__":
    entry()
