"""Devices: Android phones over adb, Linux/Jetson boards over ssh, benchmark_model output, tegrastats."""
