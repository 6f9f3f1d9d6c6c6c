"""The one place TensorFlow is imported: Keras 2 (tf_keras) must be chosen before the import.

tensorflow-model-optimization rejects Keras 3 models, so every module takes ``tf`` and ``keras`` from here. A normal
run on a CPU machine is quiet: TensorFlow's C++ start-up (CUDA probes, ``cuInit`` failures, absl's pre-init notice)
writes straight to file descriptor 2 before any log setting applies, so that descriptor is muted while it loads.
``--debug`` (or TFLITE_ISP_DEBUG=1) shows everything.
"""
import contextlib
import os
import sys

DEBUG = os.environ.get("TFLITE_ISP_DEBUG") == "1" or "--debug" in sys.argv

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if DEBUG else "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # explicit, which also silences oneDNN's start-up banner


@contextlib.contextmanager
def _native_stderr_muted(enabled: bool):
    """Send fd 2 to /dev/null (Python exceptions still surface: they are printed after it is restored)."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


with _native_stderr_muted(not DEBUG):
    import tensorflow as tf  # noqa: E402  # lazy: TensorFlow loads only when this runs
    import tf_keras as keras  # noqa: E402

    tf.config.list_physical_devices("GPU")  # the CUDA probe happens here, muted, not at the first op
    if not DEBUG:
        tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "keras", "DEBUG"]
