"""A normal run on a CPU machine shows no TensorFlow start-up noise; --debug / TFLITE_ISP_DEBUG=1 shows it."""
import os
import subprocess
import sys

from conftest import REPO

PROBE = "from tflite_isp.core.tf import tf; print(int(tf.constant(1) + 1))"
NOISE = ("cuInit", "cudart_stub", "oneDNN", "absl::InitializeLog", "E0000", "I0000", "W0000")


def _run(env_extra, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "TFLITE_ISP_DEBUG"))}
    env.update(PYTHONPATH=str(REPO), **env_extra)
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=300)


def test_tensorflow_start_up_is_quiet():
    proc = _run({})
    assert proc.returncode == 0 and proc.stdout.strip() == "2"
    assert [n for n in NOISE if n in proc.stderr] == [], proc.stderr


def test_debug_shows_tensorflow_logs():
    for proc in (_run({"TFLITE_ISP_DEBUG": "1"}), _run({}, "--debug")):
        assert proc.returncode == 0 and proc.stdout.strip() == "2"
        assert any(n in proc.stderr for n in NOISE), proc.stderr  # the C++ logs get through


def test_errors_still_surface_when_quiet():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    code = "from tflite_isp.core.tf import tf; tf.reshape(tf.zeros([3]), [2])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**env, "PYTHONPATH": str(REPO)})
    assert proc.returncode != 0 and "InvalidArgumentError" in proc.stderr
