"""What every link uses: errors, atomic writes, progress, image metrics, shared flags, the one TensorFlow import."""
