"""A stand-in for ``adb`` with one emulated phone, for the harness tests (no phone here).

Every call's arguments are appended as one JSON line to $FAKE_ADB_LOG, so tests check the exact command sequence.
The phone's storage is the folder $FAKE_ADB_ROOT (device path P is $FAKE_ADB_ROOT/P); ``adb shell CMD`` runs CMD
with /bin/sh after mapping /data/local/tmp and /sdcard into it, so quoting mistakes break the command as they
would on a phone. $FAKE_ADB_DEVICES holds the ``adb devices -l`` lines (serial, state, properties).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ["FAKE_ADB_ROOT"])
DEVICE_PREFIXES = ("/data/local/tmp", "/sdcard")
SHELL_PRELUDE = r"""
getprop() { case "$1" in
  ro.product.model) echo 'Pixel Fake';; ro.soc.model) echo Tensor;; ro.build.version.release) echo 14;;
  ro.build.version.sdk) echo 34;; ro.product.cpu.abi) echo arm64-v8a;; *) echo;; esac; }
taskset() { shift; "$@"; }
case "$FAKE_BM_MODE" in missing|noexec) chmod() { :; };; esac  # a phone where chmod does not take
am() { printf '%s\n' "$@" > "$FAKE_ADB_ROOT/am_args"; sh "$FAKE_ADB_ROOT/apk" "$7" >> "$FAKE_ADB_ROOT/logcat"; }
"""


def host_path(device_path: str) -> Path:
    return ROOT / device_path.lstrip("/")


def devices() -> dict:
    lines = [line.split() for line in os.environ.get("FAKE_ADB_DEVICES", "").splitlines() if line.strip()]
    return {w[0]: w[1] for w in lines}


def main(argv) -> int:
    with open(os.environ["FAKE_ADB_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\n")
    if argv[:1] == ["-s"]:
        serial, argv = argv[1], argv[2:]
        state = devices().get(serial)
        if state is None:
            print(f"adb: device '{serial}' not found", file=sys.stderr)
            return 1
        if state != "device":
            print(f"adb: device {state}.", file=sys.stderr)
            return 1
    cmd, args = argv[0], argv[1:]
    if cmd == "devices":
        print("List of devices attached")
        for line in os.environ.get("FAKE_ADB_DEVICES", "").splitlines():
            serial, _, rest = line.strip().partition(" ")
            print(f"{serial:<22} {rest.strip()}")
        print()
        return 0
    if cmd == "push":
        local, remote = args
        if not Path(local).is_file():
            print(f"adb: error: cannot stat '{local}': No such file or directory", file=sys.stderr)
            return 1
        host_path(remote).parent.mkdir(parents=True, exist_ok=True)
        if not remote.endswith(os.environ.get("FAKE_ADB_SKIP_PUSH") or "\0"):
            shutil.copy(local, host_path(remote))
        print(f"{local}: 1 file pushed, 0 skipped.")
        return 0
    if cmd == "install":
        shutil.copy(args[-1], ROOT / "apk")
        print("Success")
        return 0
    if cmd == "logcat":
        log = ROOT / "logcat"
        if args == ["-c"]:
            log.write_text("")
        else:
            sys.stdout.write(log.read_text() if log.exists() else "")
        return 0
    if cmd == "shell":
        line = " ".join(args)
        for prefix in DEVICE_PREFIXES:
            line = line.replace(prefix, str(ROOT) + prefix)
        proc = subprocess.run(["/bin/sh", "-c", SHELL_PRELUDE + line], capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)  # adb shell (shell protocol) forwards both; the harness reads both
        return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    print(f"adb: unknown command {cmd}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
