"""Run directories, export folders and runtime JSON written by the version before the layout change still work.

``tests/fixtures/run_v0`` was written by commit 7385f55 (see its README): the current commands take it as they are.
"""
import json
import shutil
from pathlib import Path

from conftest import run_module
from test_enhance import write_photo_dng

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "run_v0"


def _copy(tmp_path) -> Path:
    run = tmp_path / "run_v0"
    shutil.copytree(FIXTURE, run)
    return run


def test_old_run_directory_exports_again(tmp_path, isp_data):
    run = _copy(tmp_path)
    proc = run_module("tflite_isp.export", run, "--int8", "--size", 32, 48, "--data", f"mai21:{isp_data}",
                      "--calibration_images", 4, "--fidelity_images", 2, "--out", tmp_path / "new")
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "new" / "int8" / "manifest.json").read_text())
    assert manifest["precision"]["name"] == "int8" and manifest["input"]["order"]


def test_old_exports_and_runtime_json_score(tmp_path, isp_data):
    run = _copy(tmp_path)
    out = tmp_path / "scores"
    proc = run_module("tflite_isp.score", run / "export" / "int8", "--data", f"mai21:{isp_data}", "--runtime",
                      "adb:FAKE0001", "--runtime_json", run / "runtimes.json", "--max_images", 2, "--nobaseline",
                      "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads((out / "leaderboard.json").read_text())["rows"]
    assert row["status"] == "ok" and row["runtime_ms"] == 12.5 and row["psnr"] > 0


def test_old_export_enhances_a_camera_file(tmp_path):
    run = _copy(tmp_path)
    raw = write_photo_dng(tmp_path / "a.dng")
    proc = run_module("tflite_isp.enhance", raw, "-o", tmp_path / "a.jpg", "--export_dir", run / "export" / "fp32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "a.jpg").stat().st_size > 1000
