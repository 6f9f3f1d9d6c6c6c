"""The train CLI end to end: run directory, bad input, resume after a kill, two real workers."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_module

TINY = ["--epochs", "2", "--steps_per_epoch", "4", "--batch", "2", "--patch", "64", "--checkpoint_every", "2"]


def _error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_train_cli_writes_a_complete_run_dir(isp_data, tmp_path):
    run = tmp_path / "run"
    proc = run_module("tflite_isp.train", "--data", f"mai21:{isp_data}", "--out", run, *TINY)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2] and metrics["finished"]
    assert metrics["parameters"] == 4652 and metrics["macs_full_hd"] > 2e9
    assert all(e["val_psnr"] > 5 and 0 < e["val_ssim"] <= 1 for e in metrics["epochs"])
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["name"] == "smallnet" and recipe["input"]["order"] == ["B", "Gr", "R", "Gb"]
    assert recipe["train"]["steps_per_epoch"] == 4  # the resolved settings, not only the defaults
    for name in ("best.weights.h5", "model.keras", "data_report.json", "checkpoints/checkpoint"):
        assert (run / name).is_file(), name
    assert list((run / "logs").glob("events.out.tfevents.*"))
    assert "patch/s" in proc.stderr and "val PSNR" in proc.stderr  # progress and per-epoch validation
    assert not list(run.glob(".tmp-*"))


@pytest.mark.parametrize("args,expected", [
    (["--model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--model", "sid_unet", "--data", "mai21:DATA", "--patch", "48"], "--patch 48 is not divisible by 32"),
    (["--data", "mai21:/no/such/dataset"], "/no/such/dataset: dataset root not found"),
    (["--loss", "l1,perceptual:2"], "unknown loss term 'perceptual'"),
    (["--loss", "vgg"], "local VGG-19 weights"),
    (["--width_multiplier", "0.5"], "smallnet has no setting 'width_multiplier'"),
    (["--patch", "96"], "smaller than the 98x98 training crop (patch 96 + 2 for phase-true augmentation)"),
    (["--data", "sid:DATA"], "divides by 1020"),
])
def test_bad_input_is_one_line(isp_data, lowlight_data, tmp_path, args, expected):
    data = lowlight_data if "sid:DATA" in args else isp_data
    args = [a.replace("DATA", str(data)) for a in args]
    if "--data" not in args:
        args += ["--data", f"mai21:{isp_data}"]
    proc = run_module("tflite_isp.train", *TINY, "--out", tmp_path / "run", *args)
    assert expected in _error_line(proc)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_recipe_naming_an_unknown_block_is_one_line(isp_data, tmp_path):
    """A recipe file with a setting its architecture does not have: one line naming the file, nothing written."""
    recipe = tmp_path / "syenet_rep7.toml"
    text = (REPO / "models" / "syenet.toml").read_text()
    recipe.write_text(text.replace('architecture = "syenet"', 'architecture = "syenet"\nblock = "rep7"'))
    proc = run_module("tflite_isp.train", *TINY, "--model", recipe, "--out", tmp_path / "run",
                      "--data", f"mai21:{isp_data}")
    assert _error_line(proc) == (f"error: {recipe}: syenet has no setting 'block' "
                                 "(settings: channels, reparam, rep_scale)")
    assert not (tmp_path / "run").exists()


def test_resume_after_kill_continues_with_optimizer_state(isp_data, tmp_path):
    run = tmp_path / "run"
    args = ["tflite_isp.train", "--data", f"mai21:{isp_data}", "--out", run, "--epochs", "3",
            "--steps_per_epoch", "400", "--batch", "2", "--patch", "32", "--checkpoint_every", "10"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", *map(str, args)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = run / "checkpoints" / "checkpoint"

    def latest() -> int:
        return int(state.read_text().split('"')[1].rsplit("-", 1)[1]) if state.is_file() else 0

    deadline = time.time() + 300
    while time.time() < deadline and latest() < 20:
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = latest()
    assert 20 <= saved < 1200, "killed mid-run, after a checkpoint"

    wrong = run_module("tflite_isp.train", "--resume", "--out", run, "--model", "punet")
    assert "cannot resume: this run trains smallnet, not punet" in _error_line(wrong)

    done = run_module("tflite_isp.train", "--resume", "--out", run)
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"resumed {run} from step {saved}" in done.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_from"] == [saved] and metrics["finished"]
    assert metrics["epochs"][-1]["step"] == 1200  # the optimizer's step counter came back with its state


def test_mirrored_strategy_runs(isp_data, tmp_path):
    proc = run_module("tflite_isp.train", "--strategy", "mirrored", "--data", f"mai21:{isp_data}",
                      "--out", tmp_path / "run", "--epochs", "1", "--steps_per_epoch", "2", "--batch", "2",
                      "--patch", "32")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "in sync on 1 replica," in proc.stderr and "AutoGraph could not transform" not in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_worker_multi_worker_mirrored_strategy(isp_data, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    run = tmp_path / "run"
    procs = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": str(REPO),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tflite_isp.train", "--strategy", "multi_worker", "--data", f"mai21:{isp_data}",
             "--out", str(run), *TINY], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-4000:]
    assert "in sync on 2 replicas" in outputs[0][1]  # both workers took part in every step
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and len(metrics["epochs"]) == 2
    assert (run / "model.keras").is_file()
    assert not list(run.glob(".worker*"))  # the second worker's scratch checkpoints are removed
    assert "training smallnet" in outputs[0][1] and "training smallnet" not in outputs[1][1]  # chief logs only


def test_lowlight_sid_unet_on_dng_pairs_with_bad_file_skipped(lowlight_data, tmp_path):
    """SID U-Net on the DNG set; a corrupt short exposure is skipped, counted and reported."""
    import shutil

    root = tmp_path / "sid"
    shutil.copytree(lowlight_data, root)
    victim = (root / (root / "Sony_train_list.txt").read_text().split()[0]).resolve()
    victim.write_bytes(victim.read_bytes()[:1000])
    run = tmp_path / "run"
    proc = run_module("tflite_isp.train", "--model", "sid_unet", "--data", f"sid:{root}", "--out", run,
                      "--bad_files", "skip", "--width_multiplier", "0.25", "--epochs", "1", "--steps_per_epoch", "3",
                      "--batch", "2", "--patch", "32")
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((run / "data_report.json").read_text())
    assert [s["path"] for s in report["train"]["skipped"]] == [str(victim)]
    assert "skipped 1 bad pair" in proc.stderr
    recipe = json.loads((run / "recipe.json").read_text())
    assert recipe["model"]["width_multiplier"] == 0.25 and recipe["input"]["black"] == "file"
