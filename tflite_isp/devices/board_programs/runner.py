"""Runs on the board: one timing command (argv[1] is a JSON spec) with tegrastats sampling beside it; prints one JSON
object with the exit code, peak RSS (wait4), the tegrastats lines, stdout/stderr tails and the result file."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

spec = json.loads(sys.argv[1])
work = tempfile.mkdtemp(prefix="tflite_isp-")
out = {"rc": None, "timed_out": False, "maxrss_kb": None, "tegrastats": None, "error": None}


def read(name, limit=None):
    path = os.path.join(work, name)
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        if limit:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - limit))
        return f.read().decode("utf-8", "replace")


tegra = None
try:
    cmd = [a.replace("{work}", work) for a in spec["cmd"]]
    if shutil.which("tegrastats"):
        log = open(os.path.join(work, "tegrastats.log"), "w")
        tegra = subprocess.Popen(["tegrastats", "--interval", "100"], stdout=log, stderr=subprocess.DEVNULL)
    with open(os.path.join(work, "stdout"), "w") as so, open(os.path.join(work, "stderr"), "w") as se:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=so, stderr=se)
        except OSError as err:
            out["error"] = "%s: %s" % (cmd[0], err.strerror or err)
        else:
            def stop(*_):
                out["timed_out"] = True
                proc.kill()
            signal.signal(signal.SIGALRM, stop)
            signal.alarm(spec["timeout"])
            _, status, usage = os.wait4(proc.pid, 0)
            signal.alarm(0)
            proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
            out["rc"], out["maxrss_kb"] = proc.returncode, usage.ru_maxrss
finally:
    if tegra is not None:
        tegra.terminate()
        tegra.wait()
        log.close()
        out["tegrastats"] = (read("tegrastats.log") or "").splitlines()
    out["stdout"], out["stderr"] = read("stdout", 1 << 20), read("stderr", 1 << 16)
    out["result"] = read(spec["result"]) if spec.get("result") else None
    shutil.rmtree(work, ignore_errors=True)
print(json.dumps(out))
