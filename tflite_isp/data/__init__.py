"""Datasets: on-disk layouts (MAI 2021, Zurich, SID, embedded), the tf.data pipeline, synthetic sets, the data CLI."""
