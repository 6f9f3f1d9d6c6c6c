"""The one place TensorFlow is imported: Keras 2 (tf_keras) must be chosen before the import.

tensorflow-model-optimization rejects Keras 3 models, so every module takes ``tf`` and
``keras`` from here.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
