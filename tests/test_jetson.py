"""Boards over ssh (tflite_isp.board, tflite_isp.jetson) against a real sshd on 127.0.0.1, and the tegrastats parser.

The "board" is this machine: a private sshd with its own host key, keys made for the test, host keys checked
(StrictHostKeyChecking yes) and the board's python = this venv's. Its authorized_keys give each client key an
environment (PermitUserEnvironment): every key gets XDG_CACHE_HOME (the board's file cache lands in the test's
folder); the key of the ``board-tegra`` alias also gets a PATH that starts with a fake ``tegrastats``.
"""
import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import run_module
from sshd_board import ORIN_LINE

from tflite_isp.core.errors import UserError
from tflite_isp.devices import tegrastats

FIXED = (1, 32, 32, 4)


def _tiny_tflite(path, shape):
    """Conv2D 4 -> 12 then depth-to-space: packed RAW (1, H, W, 4) in, RGB (1, 2H, 2W, 3) out, like the ISP nets."""
    from tflite_isp.core.tf import keras, tf

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(None, None, 4), batch_size=1)
    model = keras.Model(inp, keras.layers.Conv2D(12, 3, padding="same")(inp))

    @tf.autograph.experimental.do_not_convert
    def forward(t):
        return tf.nn.depth_to_space(model(t, training=False), 2)

    fn = tf.function(forward).get_concrete_function(tf.TensorSpec(shape, tf.float32))
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name in ("fixed", "dynamic"):  # one folder each: bare files of one recipe get their folder in their name
        (root / name).mkdir()
    return {"fixed": _tiny_tflite(root / "fixed" / "fixed.tflite", FIXED),
            "dynamic": _tiny_tflite(root / "dynamic" / "dynamic.tflite", (1, None, None, 4))}


def _board(sshd, alias="board", **kw):
    from tflite_isp.devices.board import Board

    return Board(alias, ssh_config=sshd["config"], python=kw.pop("python", sys.executable), **kw)


def _one_line_error(fn, *needles, within=15.0):
    """Call ``fn``; it must raise a one-line UserError holding every needle, within ``within`` seconds."""
    t0 = time.monotonic()
    with pytest.raises(UserError) as err:
        fn()
    assert time.monotonic() - t0 < within
    message = str(err.value)
    assert "\n" not in message and all(n in message for n in needles), message
    return message


# --- Board ---------------------------------------------------------------------------------------------------------

def test_timing_tool_copies_once_into_the_sha_keyed_cache(sshd, models):
    from tflite_isp.devices.board import sha256

    board = _board(sshd)
    first = board.measure(models["fixed"], runs=3, warmup=1)
    sha = sha256(models["fixed"])
    assert first["ms"] > 0 and first["p95_ms"] >= first["ms"] and first["init_ms"] > 0 and first["peak_rss_mb"] > 0
    assert first["tool"] == "timing" and first["runtime"].startswith("ai-edge-litert ") and first["sha256"] == sha
    assert first["result"]["runs"] == 3 and first["result"]["input_shape"] == list(FIXED)
    assert first["board"]["machine"] == os.uname().machine and first["board"]["host"] == "board"
    assert first["tegrastats"] is None and first["note"] == "no tegrastats"
    assert first["uploaded"][0] == f"{sha}.tflite" and first["uploaded"][1].startswith("timing-")
    # a second measure (another Board object: nothing remembered here) finds both files on the board
    second = _board(sshd).measure(models["fixed"], runs=2, warmup=0)
    assert second["uploaded"] == [] and second["ms"] > 0
    cached = sorted(p.name for p in sshd["cache"].iterdir())
    assert f"{sha}.tflite" in cached and not [n for n in cached if ".tmp" in n]
    assert (sshd["cache"] / f"{sha}.tflite").read_bytes() == models["fixed"].read_bytes()


def test_litert_tool_and_a_dynamic_file_at_full_hd(sshd, models):
    board = _board(sshd)
    rec = board.measure(models["fixed"], tool="litert", runs=3, warmup=1)
    assert rec["ms"] > 0 and rec["tool"] == "litert" and rec["result"]["latency"]["num_runs"] == 3
    assert rec["peak_rss_mb"] > 0 and rec["runtime"].startswith("ai-edge-litert ")
    full_hd = (1, 544, 960, 4)
    rec = board.measure(models["dynamic"], full_hd, runs=2, warmup=0)
    assert rec["result"]["input_shape"] == list(full_hd) and rec["input_shape"] == list(full_hd)
    _one_line_error(lambda: board.measure(models["dynamic"], full_hd, tool="litert"), "cannot resize")


BENCHMARK_OUTPUT = """\
INFO: STARTING!
INFO: Num threads: [1]
INFO: Loaded model /somewhere/model.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.0021
INFO: Initialized session in 1.5ms.
INFO: Running benchmark for at least 1 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=1 first=500 curr=500 min=500 max=500 avg=500 std=0

INFO: Running benchmark for at least 3 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=3 first=120 curr=110 min=100 max=120 avg=110 std=8 p5=100 median=105 p95=120

INFO: Inference timings in us: Init: 1500, First inference: 500, Warmup (avg): 500, Inference (avg): 110
INFO: Memory footprint delta from the start of the tool (MB): init=1.2 overall=3.4
INFO: Overall peak memory footprint (MB) via periodic monitoring: 5.6
"""


def _fake_binary(path: Path, output: str, status: int = 0) -> Path:
    """A stand-in for a classic benchmark_model: records its arguments beside itself, prints ``output``."""
    path.write_text(f"#!/bin/sh\necho \"$*\" > '{path}.args'\ncat <<'EOF'\n{output}EOF\nexit {status}\n")
    path.chmod(0o755)
    return path


def test_a_benchmark_model_binary_is_copied_run_and_read(sshd, models, tmp_path):
    board = _board(sshd)
    fake = _fake_binary(tmp_path / "benchmark_model", BENCHMARK_OUTPUT)
    rec = board.measure(models["dynamic"], (1, 544, 960, 4), binary=fake, threads=1, runs=3, warmup=1)
    assert rec["tool"] == "benchmark_model" and rec["ms"] == 0.105 and rec["p95_ms"] == 0.12
    assert rec["init_ms"] == 1.5 and rec["peak_rss_mb"] == 5.6 and rec["result"]["format"] == "classic"
    assert any(name.startswith("benchmark_model-") for name in rec["uploaded"])
    args = Path(f"{fake}.args").read_text().split()
    assert args[0].startswith("--graph=") and args[0].endswith(f"{rec['sha256']}.tflite")
    assert {"--num_threads=1", "--warmup_runs=1", "--num_runs=3", "--report_peak_memory_footprint=true",
            "--input_layer_shape=1,544,960,4"} <= set(args)
    assert any(a.startswith("--input_layer=") for a in args)
    broken = _fake_binary(tmp_path / "broken_benchmark_model", "INFO: STARTING!\nERROR: Failed to allocate tensors!\n",
                          status=1)
    _one_line_error(lambda: board.measure(models["fixed"], binary=broken, runs=1, warmup=0),
                    "benchmark_model on board failed", "could not allocate tensors")


def test_a_file_that_fails_gets_an_error_record_and_the_others_finish(sshd, models, tmp_path):
    from tflite_isp.devices import jetson_cli as jetson
    from tflite_isp.run import records
    from tflite_isp.run.entries import entries_for

    entries = entries_for([str(models["fixed"]), str(models["dynamic"])], "smallnet")
    devices = jetson.measure_hosts(["board"], entries, tool="litert", runs=2, warmup=0, ssh_config=sshd["config"],
                                   python=sys.executable)
    doc = devices["jetson:board"]
    fixed, dynamic = (doc["models"][e.name] for e in entries)
    assert fixed["ms"] > 0 and fixed["tool"] == "litert" and fixed["invocations_per_frame"] == 510
    assert "cannot resize" in dynamic["error"] and dynamic["sha256"] == entries[1].keys()[-1]
    assert doc["device"]["tool"] == "litert" and "LiteRT CompiledModel CPU" in doc["source"]
    assert "FAILED" in jetson.table(devices)
    out = records.write_devices(tmp_path / "runs.json", devices)
    with pytest.raises(UserError, match="timing failed on the device"):
        records.FromJson(out, "jetson:board").measure(entries[1])
    assert records.FromJson(out, "jetson:board").measure(entries[0]).ms == fixed["ms"]


def test_board_runtime_counts_tiles_of_a_full_hd_frame(sshd, models):
    from tflite_isp.devices.board import BoardRuntime
    from tflite_isp.run.entries import entries_for

    runtime = BoardRuntime("board", threads=1, runs=2, warmup=0, ssh_config=sshd["config"], python=sys.executable)
    fixed, dynamic = entries_for([str(models["fixed"]), str(models["dynamic"])], "smallnet")
    m = runtime.measure(fixed)
    assert m.details["invocations_per_frame"] == 17 * 30  # 544 x 960 in 32 x 32 tiles
    assert m.ms == pytest.approx(m.details["ms_per_invocation"] * 510) and "510 tiles of 32x32" in m.source
    assert runtime.label == f"jetson:board ({os.uname().machine}, LiteRT XNNPACK, 1 threads, median of 2 runs)"
    m = runtime.measure(dynamic)
    assert m.details["invocations_per_frame"] == 1 and m.details["input_shape"] == [1, 544, 960, 4]


def test_tegrastats_on_the_board_is_sampled_during_the_timing(sshd, models):
    rec = _board(sshd, "board-tegra").measure(models["fixed"], runs=30, warmup=1)
    summary = rec["tegrastats"]
    assert summary["samples"] >= 1 and rec.get("note") is None
    assert summary["power_rail"] == "VDD_IN" and 5000 <= summary["power_mw_mean"] <= summary["power_mw_peak"]
    assert summary["ram_used_mb_peak"] >= 2000 and summary["ram_total_mb"] == 7620 and summary["temp_c_max"] == 52.9
    pid, args = (sshd["root"] / "tegrastats.call").read_text().split(" ", 1)
    assert args.strip() == "--interval 100"
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):  # stopped with the timing, nothing left running on the board
        os.kill(int(pid), 0)


def test_unreachable_host_is_one_fast_line(sshd):
    _one_line_error(lambda: _board(sshd, "board-closed").info(), "board-closed:", "Connection refused", within=5)


def test_refused_key_is_one_line_without_a_prompt(sshd):
    _one_line_error(lambda: _board(sshd, "board-badkey").info(), "board-badkey:", "Permission denied",
                    "refused the key", within=10)


def test_board_python_without_litert_or_missing(sshd, tmp_path):
    bare = tmp_path / "python-bare"  # this venv's python without site-packages: no numpy, no ai_edge_litert
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    _one_line_error(lambda: _board(sshd, python=str(bare)).check("timing"),
                    f"board: {bare} on the board lacks ai_edge_litert (pip install ai-edge-litert; "
                    "aarch64 wheels exist)")
    _one_line_error(lambda: _board(sshd, python="/nonexistent/python3").info(),
                    "board: /nonexistent/python3 not found on the board")


def test_timing_errors_and_timeouts_are_one_line(sshd, tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model" * 10)
    _one_line_error(lambda: _board(sshd).measure(junk, runs=1, warmup=0), f"{junk}: timing on board failed",
                    "LiteRT cannot load it")
    _one_line_error(lambda: _board(sshd).run(["sleep", "3"], step="sleeping", timeout=0.5),
                    "board: sleeping did not finish within 0.5 s", within=3)
    with pytest.raises(UserError, match="bad board host"):
        _board(sshd, "-oProxyCommand=touch /tmp/x")


# --- The command ---------------------------------------------------------------------------------------------------

def test_jetson_command_writes_the_runtime_json_that_score_reads(sshd, models, isp_data, tmp_path):
    from tflite_isp.run.entries import entries_for
    from tflite_isp.score import sources

    out = tmp_path / "runs.json"
    proc = run_module("tflite_isp.jetson", models["fixed"], "--recipe", "smallnet", "--host", "board",
                      "--host", "board-closed", "--ssh_config", sshd["config"], "--board_python", sys.executable,
                      "--runs", 2, "--warmup", 0, "--threads", 1, "--out", out, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]  # one board failed, the other finished
    devices = json.loads(out.read_text())["devices"]
    assert set(devices) == {"jetson:board", "jetson:board-closed"}
    assert "Connection refused" in devices["jetson:board-closed"]["error"]
    record = devices["jetson:board"]["models"]["smallnet fp32"]
    assert record["ms"] > 0 and record["invocations_per_frame"] == 510 and record["note"] == "no tegrastats"
    assert devices["jetson:board"]["device"]["machine"] == os.uname().machine
    assert f"--runtime jetson:board --runtime_json {out}" in proc.stdout and "FAILED jetson:board-closed" in proc.stderr

    entry = entries_for([str(models["fixed"])], "smallnet")[0]
    measured = sources.parse("jetson:board", str(out), threads=1, runs=1, warmup=0).measure(entry)
    assert measured.ms == record["ms"] and measured.source.startswith("jetson:board (")
    with pytest.raises(UserError, match="failed when it was measured"):
        sources.parse("jetson:board-closed", str(out), threads=1, runs=1, warmup=0)

    board = tmp_path / "score"
    proc = run_module("tflite_isp.score", models["fixed"], "--recipe", "smallnet", "--data", f"mai21:{isp_data}",
                      "--runtime", "jetson:board", "--runtime_json", out, "--nobaseline", "--out", board)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads((board / "leaderboard.json").read_text())["rows"][0]
    assert row["runtime_ms"] == record["ms"]


def test_jetson_command_bad_input_is_exit_2(sshd, models, tmp_path):
    for args, message in ((["--ssh_config", sshd["config"]], "--host HOST"),
                          (["--host", "board", "--ssh_config", tmp_path / "nope"], "ssh config file not found"),
                          (["--host", "board", "--runs", 0], "--runs")):
        proc = run_module("tflite_isp.jetson", models["fixed"], "--recipe", "smallnet", *args, "--out",
                          tmp_path / "x.json")
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()


# --- tegrastats lines ----------------------------------------------------------------------------------------------

NANO = ("RAM 2000/3964MB (lfb 10x4MB) SWAP 0/1982MB (cached 0MB) CPU [12%@1479,8%@1479,off,off] EMC_FREQ 0% "
        "GR3D_FREQ 0% PLL@27C CPU@29.5C PMIC@100C GPU@28C AO@35.5C thermal@29C POM_5V_IN 2100/2100 POM_5V_GPU 0/0 "
        "POM_5V_CPU 421/421")
THOR = ("08-08-2026 20:58:23 RAM 3429/125749MB (lfb 120x4MB) CPU [0%,5%,off]@2601 EMC_FREQ @4266 "
        "GR3D_FREQ @[1000,1000,1000] cpu@49.75C/49.75C tj@51.218C/51.218C VDD_GPU 6330mW/6330mW/6330mW "
        "VIN 28906mW/14453mW/28906mW")
AGX_XAVIER = ("RAM 4722/7844MB (lfb 1x512kB) CPU [55%@2035,14%@2034] SWAP 149/1024MB (cached 7MB) EMC_FREQ 2%@1866 "
              "GR3D_FREQ 50%@1300 APE 150 BCPU@-45C VDD_GPU 6854/6903 VDD_CPU 2209/2538 NVENC 716")


def test_tegrastats_parses_nano_orin_and_thor_lines():
    nano = tegrastats.parse(NANO)
    assert nano["time"] is None and (nano["ram_used_mb"], nano["ram_total_mb"]) == (2000, 3964)
    assert nano["swap"] == {"used_mb": 0, "total_mb": 1982, "cached_mb": 0}
    assert nano["cpu"] == [(12, 1479), (8, 1479), None, None] and nano["gpu_percent"] == 0 and nano["gpu_mhz"] == []
    assert nano["emc_percent"] == 0 and nano["temperatures"]["CPU"] == 29.5 and nano["temperatures"]["PLL"] == 27
    assert nano["rails"] == {"POM_5V_IN": (2100, 2100), "POM_5V_GPU": (0, 0), "POM_5V_CPU": (421, 421)}

    orin = tegrastats.parse(ORIN_LINE.format(date="12-23-2024 22:54:11", ram=3162, vin=3913))
    assert orin["time"] == "12-23-2024 22:54:11" and orin["ram_used_mb"] == 3162
    assert orin["gpu_percent"] == 0 and orin["gpu_mhz"] == [305, 305] and orin["emc_mhz"] == 2133
    assert orin["temperatures"] == {"cpu": 52.9, "gpu": 50.2}
    assert orin["rails"]["VDD_IN"] == (3913, 5000) and set(orin["rails"]) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}

    thor = tegrastats.parse(THOR)
    assert thor["gpu_percent"] is None and thor["gpu_mhz"] == [1000, 1000, 1000] and thor["swap"] is None
    assert thor["cpu"] == [(0, 2601), (5, 2601), None] and thor["emc_mhz"] == 4266 and thor["emc_percent"] is None
    assert thor["rails"] == {"VDD_GPU": (6330, 6330), "VIN": (28906, 14453)}

    xavier = tegrastats.parse(AGX_XAVIER)
    assert xavier["temperatures"] == {"BCPU": -45.0} and xavier["gpu_percent"] == 50 and xavier["gpu_mhz"] == [1300]
    assert set(xavier["rails"]) == {"VDD_GPU", "VDD_CPU"}  # RAM/SWAP figures and bare clocks are not rails


def test_tegrastats_summary_picks_the_input_rail():
    lines = [ORIN_LINE.format(date="01-01-2025 00:00:0%d" % i, ram=3000 + 10 * i, vin=4000 + 1000 * i)
             for i in range(3)]
    summary = tegrastats.summarise(lines + ["", "garbage"])
    assert summary == {"samples": 3, "ram_used_mb_peak": 3020, "ram_total_mb": 7620, "power_rail": "VDD_IN",
                       "power_mw_mean": 5000.0, "power_mw_peak": 6000.0, "temp_c_max": 52.9}
    nano = tegrastats.summarise([NANO])
    assert nano["power_rail"] == "POM_5V_IN" and nano["power_mw_mean"] == 2100 and nano["temp_c_max"] == 35.5
    assert tegrastats.summarise([THOR])["power_rail"] == "VIN"
    xavier = tegrastats.summarise([AGX_XAVIER])  # no total-input rail: the sum of the rails
    assert xavier["power_rail"] == "sum of 2 rails" and xavier["power_mw_mean"] == 6854 + 2209
    assert tegrastats.summarise([])["samples"] == 0 and tegrastats.summarise([])["power_mw_mean"] is None
