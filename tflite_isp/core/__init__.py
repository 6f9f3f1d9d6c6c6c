"""Errors, atomic writes, progress, image metrics, the shared flags and the one TensorFlow import: what every link uses."""
