"""tflite_isp.timing: one JSON object per file from a fresh process, shapes, errors; never absolute times."""
import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_module

from tflite_isp.run import timing

FIXED = (1, 32, 32, 4)


def tiny_tflite(path, shape, int8=False):
    """Two Conv2D layers traced at ``shape`` (None = dynamic) and converted; int8 = full-integer with int8 IO."""
    from tflite_isp.core.tf import keras, tf

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(None, None, 4), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(x))
    fn = tf.function(lambda t: model(t, training=False)).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    if int8:
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("timing")
    return {"fixed": tiny_tflite(root / "fixed.tflite", FIXED),
            "dynamic": tiny_tflite(root / "dynamic.tflite", (1, None, None, 4)),
            "int8": tiny_tflite(root / "int8.tflite", FIXED, int8=True)}


def check_sane(result, runs, warmup):
    assert set(timing.KEYS) <= set(result)
    assert result["runs"] == runs and result["warmup"] == warmup and result["threads"] == 2
    assert result["min_ms"] <= result["median_ms"] <= result["p95_ms"] <= result["max_ms"]
    assert result["min_ms"] <= result["mean_ms"] <= result["max_ms"] and result["std_ms"] >= 0
    assert result["init_ms"] > 0 and result["warmup_first_ms"] > 0 and result["min_ms"] > 0
    assert result["peak_rss_mb"] >= result["rss_before_mb"] > 0
    assert result["rss_delta_mb"] == pytest.approx(result["peak_rss_mb"] - result["rss_before_mb"], abs=0.11)
    assert result["runtime"].startswith("ai-edge-litert ")


def test_fixed_file_in_a_fresh_process(files):
    result = timing.measure_subprocess(files["fixed"], runs=7, warmup=2)
    check_sane(result, runs=7, warmup=2)
    assert result["file"] == str(files["fixed"]) and result["size_bytes"] == files["fixed"].stat().st_size
    assert result["input_shape"] == result["shape_signature"] == list(FIXED)
    assert result["input_dtype"] == "float32"


def test_dynamic_file_is_resized_to_the_shape_given(files):
    result = timing.measure_subprocess(files["dynamic"], runs=3, warmup=1, shape=(1, 40, 24, 4))
    check_sane(result, runs=3, warmup=1)
    assert result["input_shape"] == [1, 40, 24, 4] and result["shape_signature"] == [1, -1, -1, 4]
    assert timing.measure_subprocess(files["dynamic"], runs=1, warmup=0, shape="1x16x8x4")["input_shape"] == [
        1, 16, 8, 4]


def test_int8_input_and_no_warmup(files):
    result = timing.measure(files["int8"], runs=3, warmup=0)
    assert result["input_dtype"] == "int8" and result["warmup_first_ms"] is None and result["runs"] == 3


def test_shape_errors_name_the_shape(files):
    with pytest.raises(RuntimeError, match="1x64x64x4 does not fit the fixed input 1x32x32x4") as err:
        timing.measure_subprocess(files["fixed"], runs=1, shape=(1, 64, 64, 4))
    assert err.value.path == str(files["fixed"])
    with pytest.raises(RuntimeError, match="dynamic input 1x-1x-1x4; give --shape"):
        timing.measure_subprocess(files["dynamic"], runs=1)
    with pytest.raises(RuntimeError, match="1x16x16x3 does not fit the dynamic input"):
        timing.measure_subprocess(files["dynamic"], runs=1, shape="1x16x16x3")


def test_cli_prints_one_json_object_and_fails_with_one_error_line(files, tmp_path):
    proc = run_module("tflite_isp.run.timing", files["fixed"], "--runs", "4", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    check_sane(json.loads(proc.stdout), runs=4, warmup=1)

    missing = tmp_path / "missing.tflite"
    proc = run_module("tflite_isp.run.timing", missing)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: {missing}: file not found"]

    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    proc = run_module("tflite_isp.run.timing", junk)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(f"error: {junk}: LiteRT cannot")

    proc = run_module("tflite_isp.run.timing", files["fixed"], "--shape", "1xbig")
    assert proc.returncode == 2 and "--shape" in proc.stderr.strip().splitlines()[-1]


def test_the_file_runs_alone_outside_the_package(files, tmp_path):
    """Copied next to nothing (as onto a board), run by path with no PYTHONPATH: imports no tflite_isp module."""
    alone = Path(shutil.copy(timing.__file__, tmp_path / "timing.py"))
    (tmp_path / "numpy.py").write_text("raise ImportError('a sibling module shadowed numpy')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(alone), str(files["fixed"]), "--runs", "2"], capture_output=True,
                          text=True, env=env, cwd=tmp_path.parent, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["runs"] == 2
    tree = ast.parse(alone.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported - set(sys.stdlib_module_names) == {"numpy", "ai_edge_litert"}


def test_peak_memory_is_the_child_s_own_not_its_parent_s(files):
    """On Linux a child's ru_maxrss starts at its parent's resident set; the figure must not (VmHWM)."""
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB touched in this (parent) process
    result = timing.measure_subprocess(files["fixed"], runs=1, warmup=0)
    assert ballast.sum() > 0
    assert result["peak_rss_mb"] < 300 and result["rss_delta_mb"] < 100
