"""The Android harness without a phone: the real adb binary with none attached, and an emulated phone
(tests/fake_adb.py) that records every adb call and runs the device side with a real shell."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_run, run_module

from tflite_isp.devices.adb import parse_devices, quote_command

HERE = Path(__file__).resolve().parent
SERIAL = "R58M123ABC"
DEVICES = (f"{SERIAL} device usb:1-1 product:fake model:Pixel_Fake device:fake transport_id:3\n"
           "EMU5554 offline transport_id:1\n"
           "UNAUTH1 unauthorized usb:1-2 transport_id:4\n")
DEVICE_DIR = "/data/local/tmp/tflite isp"  # a space: every shell command must quote it

# benchmark_model as a phone would run it: classic output (INFO: prefixes, p5/median/p95, peak memory).
# $FAKE_BM_MODE picks a failure: crash (SIGSEGV after the warm-up line) or hang.
FAKE_BENCHMARK_MODEL = r"""#!/bin/sh
printf '%s\n' "$@" > "$FAKE_ADB_ROOT/bm_args"
graph=""; nnapi=""
for a in "$@"; do case "$a" in --graph=*) graph="${a#--graph=}";; --use_nnapi=true) nnapi=1;; esac; done
echo "INFO: STARTING!"
echo "INFO: Graph: [$graph]"
[ -f "$graph" ] || { echo "ERROR: Failed to mmap model $graph"; exit 1; }
[ "$FAKE_BM_MODE" = hang ] && sleep 60
[ -n "$nnapi" ] && echo "INFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed \
by the delegate."
echo "INFO: The input model file size (MB): 0.02"
echo "INFO: Initialized session in 12.5ms."
echo "INFO: count=5 first=4100 curr=3900 min=3800 max=4100 avg=3950 std=100"
[ "$FAKE_BM_MODE" = crash ] && kill -SEGV $$
echo "INFO: count=50 first=3900 curr=3850 min=3700 max=4200 avg=3900 std=90 p5=3750 median=3880 p95=4100"
echo "INFO: Inference timings in us: Init: 12500, First inference: 4100, Warmup (avg): 3950, Inference (avg): 3900"
echo "INFO: Overall peak memory footprint (MB) via periodic monitoring: 31.5"
"""

# The benchmark APK's activity: splits its one args string on spaces and logs under tag tflite (threadtime).
FAKE_APK = r"""#!/bin/sh
for a in $1; do case "$a" in --graph=*) graph="${a#--graph=}";; esac; done
p="11-22 10:00:00.123  4242  4242 I tflite  :"
[ -f "$graph" ] || { echo "$p Failed to mmap model $graph"; exit 0; }
echo "$p Initialized session in 20.5ms."
echo "$p count=3 first=9100 curr=9000 min=9000 max=9100 avg=9050 std=50"
echo "$p count=20 first=9000 curr=8900 min=8800 max=9300 avg=9000 std=120"
echo "$p Inference timings in us: Init: 20500, First inference: 9100, Warmup (avg): 9050, Inference (avg): 9000"
"""


@pytest.fixture(scope="module")
def export_root(tmp_path_factory, isp_data):
    """A Smallnet export (fp32, int8) at 32 x 48 packed, in a folder whose path has a space."""
    from tflite_isp.export import exporter as ex

    root = tmp_path_factory.mktemp("android") / "my runs"
    run = make_run(root / "smallnet", "smallnet", f"mai21:{isp_data}")
    ex.run(ex.ExportConfig(source=str(run), precisions=("fp32", "int8"), size=(32, 48), calibration_images=4,
                           fidelity_images=0, log=False))
    return run / "export"


@pytest.fixture
def phone(tmp_path):
    """The emulated phone: an adb wrapper script, its storage, its call log, the tools to push."""
    root = tmp_path / "phone"
    root.mkdir()
    adb = tmp_path / "adb"
    adb.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_adb.py"}" "$@"\n')
    binary, apk = tmp_path / "benchmark_model", tmp_path / "benchmark.apk"
    binary.write_text(FAKE_BENCHMARK_MODEL)
    apk.write_text(FAKE_APK)
    adb.chmod(0o755)
    env = {**os.environ, "FAKE_ADB_ROOT": str(root), "FAKE_ADB_LOG": str(tmp_path / "calls.jsonl"),
           "FAKE_ADB_DEVICES": DEVICES}

    class Phone:
        def calls(self):
            return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]

        def run(self, *args, mode="", **kw):
            kw.setdefault("cwd", tmp_path)  # default outputs (device_runs/) stay out of the repository
            return run_module("tflite_isp.android", *args, "--adb", str(adb), env={**env, "FAKE_BM_MODE": mode}, **kw)

    p = Phone()
    p.root, p.adb, p.binary, p.apk, p.env, p.tmp = root, adb, binary, apk, env, tmp_path
    return p


def _result(path: Path) -> dict:
    return json.loads(path.read_text())["devices"]


# --- Parsing and quoting ---------------------------------------------------------------------------------------

def test_devices_list_parses_states_and_models():
    text = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\nList of devices attached\n"
            "R58M123ABC             device usb:1-1 product:a51nsxx model:SM_A515F device:a51 transport_id:3\n"
            "emulator-5554          offline transport_id:1\n"
            "ZY22                   no permissions (user in plugdev group; are your udev rules wrong?); see "
            "[http://developer.android.com/tools/device.html] usb:1-3 transport_id:5\n\n")
    devices = parse_devices(text)
    assert [(d.serial, d.state, d.model) for d in devices] == [
        ("R58M123ABC", "device", "SM_A515F"), ("emulator-5554", "offline", None), ("ZY22", "no permissions", None)]
    assert [d.ready for d in devices] == [True, False, False]


def test_device_commands_survive_the_device_shell():
    argv = ["/data/local/tmp/my dir/benchmark_model", "--graph=/data/local/tmp/my dir/it's.tflite", "--x=a;b"]
    out = subprocess.run(["/bin/sh", "-c", "printf '%s\\n' " + quote_command(argv[1:])], capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines() == argv[1:]


# --- The real adb binary, no phone -------------------------------------------------------------------------------

@pytest.fixture
def real_adb(tmp_path):
    """Debian's adb with its own server port and home, killed afterwards."""
    adb = shutil.which("adb")
    assert adb, "the tests need the real adb binary (Debian's adb package; ./run.sh test installs it)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port), "HOME": str(tmp_path)}
    yield adb, env
    subprocess.run([adb, "kill-server"], env=env, capture_output=True, timeout=30)


def test_real_adb_without_a_phone_says_no_device(real_adb, export_root, tmp_path):
    adb, env = real_adb
    listed = run_module("tflite_isp.android", "--list_devices", "--adb", adb, env=env, timeout=60)
    assert listed.returncode == 1 and "no device attached" in listed.stdout
    timed = run_module("tflite_isp.android", str(export_root / "int8"), "--benchmark_binary", adb, "--adb", adb,
                       env=env, timeout=60)
    assert timed.returncode == 2
    assert timed.stderr.strip().splitlines()[-1] == ("error: adb: no device attached (adb devices -l lists none): "
                                                     "connect a phone with USB debugging on")
    named = run_module("tflite_isp.android", str(export_root / "int8"), "--serial", "ABC123", "--benchmark_binary", adb,
                       "--adb", adb, "--out", str(tmp_path / "runs.json"), env=env, timeout=60)
    assert named.returncode == 1 and "adb:ABC123: no such device attached (attached: none)" in named.stdout


def test_score_on_a_missing_phone_fails_in_one_line(real_adb, export_root, tmp_path):
    adb, env = real_adb
    env = {**env, "PATH": f"{Path(adb).parent}:{env['PATH']}"}
    r = run_module("tflite_isp.score", str(export_root / "int8"), "--runtime", "adb:ABC123", "--benchmark_binary", adb,
                   "--out", str(tmp_path / "s"), env=env, timeout=120)
    assert r.returncode == 2 and not (tmp_path / "s").exists()
    assert r.stderr.strip().splitlines()[-1] == "error: adb:ABC123: no such device attached (attached: none)"


# --- The emulated phone --------------------------------------------------------------------------------------

def test_native_run_issues_the_expected_adb_calls(phone, export_root):
    out = phone.tmp / "runs.json"
    r = phone.run(str(export_root / "int8"), "--serial", SERIAL, "--benchmark_binary", str(phone.binary),
                  "--device_dir", DEVICE_DIR, "--threads", "4", "--runs", "50", "--warmup", "5", "--taskset", "f0",
                  "--out", str(out))
    assert r.returncode == 0, r.stderr
    model = export_root / "int8" / "model.tflite"
    calls = phone.calls()
    remote = next(c[-1] for c in calls if c[2:3] == ["push"] and c[3] == str(model))
    assert remote.startswith(f"{DEVICE_DIR}/smallnet-int8-") and remote.endswith(".tflite")
    q = f"'{DEVICE_DIR}/benchmark_model'"
    assert calls == [
        ["devices", "-l"],
        ["-s", SERIAL, "shell", "getprop ro.product.model; getprop ro.soc.model; getprop ro.board.platform; "
                                "getprop ro.build.version.release; getprop ro.build.version.sdk; "
                                "getprop ro.product.cpu.abi"],
        ["-s", SERIAL, "shell", f"mkdir -p '{DEVICE_DIR}'"],
        ["-s", SERIAL, "push", str(phone.binary), f"{DEVICE_DIR}/benchmark_model"],  # no quoting: no shell
        ["-s", SERIAL, "shell", f"chmod 755 {q}"],
        ["-s", SERIAL, "push", str(model), remote],
        ["-s", SERIAL, "shell", f"taskset f0 {q} '--graph={remote}' --num_threads=4 --warmup_runs=5 "
                                "--warmup_min_secs=0 --num_runs=50 --min_secs=0 --report_peak_memory_footprint=true"],
    ]
    # the binary got the path with its space as one argument
    assert f"--graph={phone.root}{remote}" in (phone.root / "bm_args").read_text().splitlines()
    doc = _result(out)[f"adb:{SERIAL}"]
    rec = doc["models"]["smallnet int8"]
    calls_per_frame = (544 // 32) * (960 // 48)  # a 32 x 48 file: tiles of a Full HD frame
    assert rec["invocations_per_frame"] == calls_per_frame
    assert rec["ms"] == pytest.approx(3.88 * calls_per_frame) and rec["p95_ms"] == pytest.approx(4.1 * calls_per_frame)
    assert rec["init_ms"] == pytest.approx(12.5) and rec["peak_memory_mb"] == pytest.approx(31.5)
    assert doc["device"]["model"] == "Pixel Fake" and doc["device"]["sdk"] == "34" and "Pixel Fake" in doc["source"]


def test_score_reads_the_phone_s_section(phone, export_root, tmp_path):
    out = phone.tmp / "runs.json"
    assert phone.run(str(export_root), "--serial", SERIAL, "--benchmark_binary", str(phone.binary),
                     "--out", str(out)).returncode == 0
    board = tmp_path / "score"
    r = run_module("tflite_isp.score", str(export_root), "--runtime", f"adb:{SERIAL}", "--runtime_json", str(out),
                   "--nobaseline", "--report_images", "0", "--out", str(board))
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads((board / "leaderboard.json").read_text())["rows"]}
    recorded = _result(out)[f"adb:{SERIAL}"]["models"]
    for name in ("smallnet int8", "smallnet fp32"):
        assert rows[name]["runtime_ms"] == pytest.approx(recorded[name]["ms"])
    assert "Pixel Fake" in rows["smallnet int8"]["runtime_source"]


def test_farm_runs_every_phone_and_reports_unusable_ones(phone, export_root):
    out = phone.tmp / "farm.json"
    r = phone.run(str(export_root / "int8"), "--serial", f"{SERIAL},UNAUTH1,EMU5554", "--benchmark_binary",
                  str(phone.binary), "--out", str(out))
    assert r.returncode == 1
    devices = _result(out)
    assert devices[f"adb:{SERIAL}"]["models"]["smallnet int8"]["ms"] > 0
    assert devices["adb:UNAUTH1"]["error"] == ("adb:UNAUTH1: device is unauthorized: accept the 'Allow USB "
                                               "debugging?' prompt on the phone, then retry")
    assert devices["adb:EMU5554"]["error"].startswith("adb:EMU5554: device is offline: reconnect")
    scored = run_module("tflite_isp.score", str(export_root / "int8"), "--runtime", "adb:UNAUTH1",
                        "--runtime_json", str(out))
    assert scored.returncode == 2 and "adb:UNAUTH1 failed when it was measured" in scored.stderr


@pytest.mark.parametrize("mode, message", [
    ("crash", "SIGSEGV"),
    ("missing", "not found"),
    ("noexec", "ermission denied"),
])
def test_a_run_that_fails_on_the_phone_is_one_line(phone, export_root, mode, message):
    out = phone.tmp / "runs.json"
    env = {**phone.env, "FAKE_BM_MODE": mode}
    if mode == "missing":  # the push "worked" but the binary is not there (a storage wiped under us)
        env["FAKE_ADB_SKIP_PUSH"] = "/benchmark_model"
    r = run_module("tflite_isp.android", str(export_root / "int8"), "--serial", SERIAL, "--benchmark_binary",
                   str(phone.binary), "--out", str(out), "--adb", str(phone.adb), env=env)
    assert r.returncode == 1
    error = _result(out)[f"adb:{SERIAL}"]["models"]["smallnet int8"]["error"]
    assert "\n" not in error and message in error and error.startswith(f"adb:{SERIAL}: smallnet int8: ")


def test_nnapi_applied_to_nothing_is_flagged_or_refused(phone, export_root):
    out = phone.tmp / "runs.json"
    args = [str(export_root / "int8"), "--serial", SERIAL, "--benchmark_binary", str(phone.binary),
            "--delegate", "nnapi", "--accelerator", "neuron-ann", "--out", str(out)]
    assert phone.run(*args).returncode == 0
    rec = _result(out)[f"adb:{SERIAL}"]["models"]["smallnet int8"]
    assert "CPU fallback" in rec["note"]
    sent = (phone.root / "bm_args").read_text().splitlines()
    assert "--use_nnapi=true" in sent and "--nnapi_accelerator_name=neuron-ann" in sent
    assert phone.run(*args, "--require_full_delegation").returncode == 1
    assert "--require_full_delegation" in _result(out)[f"adb:{SERIAL}"]["models"]["smallnet int8"]["error"]


def test_a_hung_run_times_out(phone, export_root):
    out = phone.tmp / "runs.json"
    r = phone.run(str(export_root / "int8"), "--serial", SERIAL, "--benchmark_binary", str(phone.binary),
                  "--device_timeout", "3", "--out", str(out), mode="hang", timeout=60)
    assert r.returncode == 1
    assert "did not finish in 3 s" in _result(out)[f"adb:{SERIAL}"]["models"]["smallnet int8"]["error"]


def test_apk_run_reads_logcat(phone, export_root):
    out = phone.tmp / "runs.json"
    r = phone.run(str(export_root / "int8"), "--serial", SERIAL, "--apk", str(phone.apk), "--threads", "4",
                  "--out", str(out))
    assert r.returncode == 0, r.stderr
    calls = phone.calls()
    assert ["-s", SERIAL, "install", "-r", "-d", "-g", str(phone.apk)] in calls
    assert calls.index(["-s", SERIAL, "logcat", "-c"]) < next(i for i, c in enumerate(calls) if "am start" in c[-1])
    am = (phone.root / "am_args").read_text().splitlines()
    assert am[:6] == ["start", "-S", "-n", "org.tensorflow.lite.benchmark/.BenchmarkModelActivity", "--es", "args"]
    assert am[6].startswith("--graph=") and "--num_threads=4" in am[6]  # one argument for the activity
    rec = _result(out)[f"adb:{SERIAL}"]["models"]["smallnet int8"]
    assert rec["ms"] == pytest.approx(9.0 * rec["invocations_per_frame"]) and rec["init_ms"] == pytest.approx(20.5)
    spaced = phone.run(str(export_root / "int8"), "--serial", SERIAL, "--apk", str(phone.apk),
                       "--device_dir", DEVICE_DIR, "--out", str(out))
    assert spaced.returncode == 1 and "splits its arguments on spaces" in spaced.stdout


def test_ai_benchmark_handoff(phone, export_root):
    out = phone.tmp / "handoff.json"
    r = phone.run(str(export_root / "int8"), "--ai_benchmark", "--serial", SERIAL, "--out", str(out))
    assert r.returncode == 0, r.stderr
    pushed = phone.root / "sdcard/Download/model.tflite"
    assert pushed.read_bytes() == (export_root / "int8" / "model.tflite").read_bytes()
    assert "PRO Mode -> Custom Model" in r.stdout and "INT8" in r.stdout and str(out) in r.stdout
    assert _result(out)[f"adb:{SERIAL}"]["models"]["smallnet int8"]["ms"] is None
    scored = run_module("tflite_isp.score", str(export_root / "int8"), "--runtime", f"adb:{SERIAL}",
                        "--runtime_json", str(out), "--nobaseline", "--report_images", "0",
                        "--out", str(phone.tmp / "s"))
    assert scored.returncode == 1  # the model's row fails until the latency is entered
    rows = json.loads((phone.tmp / "s" / "leaderboard.json").read_text())["rows"]
    assert "ms must be a number, not None" in rows[0]["error"]


def test_bad_settings_are_one_line(phone, export_root):
    base = [str(export_root / "int8"), "--serial", SERIAL, "--out", str(phone.tmp / "runs.json")]
    cases = [
        (["--benchmark_binary", str(phone.binary), "--taskset", "big"], "hexadecimal CPU mask"),
        (["--benchmark_binary", str(phone.binary), "--accelerator", "neuron-ann"], "with --delegate nnapi"),
        ([], "give the benchmark_model binary"),
        (["--benchmark_binary", str(phone.tmp / "nope")], "nope: no such file"),
    ]
    for extra, message in cases:
        r = phone.run(*base, *extra)
        text = r.stdout + r.stderr
        assert r.returncode in (1, 2) and message in text, (extra, text)


def test_score_times_live_on_the_phone(phone, export_root, tmp_path):
    """--runtime adb:SERIAL:DELEGATE without a JSON: score drives the harness itself (adb found on PATH)."""
    board = tmp_path / "score"
    env = {**phone.env, "PATH": f"{phone.tmp}:{os.environ['PATH']}"}
    r = run_module("tflite_isp.score", str(export_root / "int8"), "--runtime", f"adb:{SERIAL}:gpu",
                   "--benchmark_binary", str(phone.binary), "--runs", "7", "--warmup", "2", "--nobaseline",
                   "--report_images", "0", "--out", str(board), env=env)
    assert r.returncode == 0, r.stderr
    row = json.loads((board / "leaderboard.json").read_text())["rows"][0]
    assert row["runtime_ms"] == pytest.approx(3.88 * row["runtime"]["invocations_per_frame"])
    assert "GPU" in row["runtime_source"] and "Pixel Fake" in row["runtime_source"]
    sent = (phone.root / "bm_args").read_text().splitlines()
    assert {"--use_gpu=true", "--num_runs=7", "--warmup_runs=2"} <= set(sent)
