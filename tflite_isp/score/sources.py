"""Where score's runtime comes from: ``--runtime local``, a phone over adb, a board over ssh, or ``--runtime_json``."""
from __future__ import annotations

from tflite_isp.core.errors import UserError
from tflite_isp.devices.android_bench import adb_runtime
from tflite_isp.devices.board import BoardRuntime
from tflite_isp.run.records import FromJson, Local


def parse(runtime: str, runtime_json: str | None, *, threads: int, runs: int, warmup: int, binary: str | None = None,
          ssh_config: str | None = None, board_python: str = "python3"):
    """The runtime source of ``--runtime`` / ``--runtime_json`` (``binary``, ``ssh_config``, ``board_python``: the
    device harnesses' settings, see :mod:`tflite_isp.devices.android_bench` and :mod:`tflite_isp.devices.board`)."""
    kind = runtime.split(":")[0]
    if runtime_json:
        return FromJson(runtime_json, runtime if kind in ("adb", "jetson") else None)
    if runs <= 0 or warmup < 0:
        raise UserError("--runs must be > 0 and --warmup >= 0")
    if runtime == "local":
        return Local(threads, runs, warmup)
    if kind == "adb":
        return adb_runtime(runtime, binary=binary, threads=threads, runs=runs, warmup=warmup)
    if kind == "jetson":
        if runtime.count(":") != 1 or not runtime.split(":")[1]:
            raise UserError(f"--runtime jetson needs a host: jetson:HOST, not {runtime!r}")
        return BoardRuntime(runtime.split(":")[1], threads=threads, runs=runs, warmup=warmup, ssh_config=ssh_config,
                            python=board_python, binary=binary)
    raise UserError(f"--runtime must be local, adb[:SERIAL][:DELEGATE] or jetson:HOST, not {runtime!r}")
