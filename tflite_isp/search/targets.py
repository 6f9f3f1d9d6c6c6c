"""Search targets: where a candidate's latency comes from and which delegate's op table it must pass.

    local                 this machine, LiteRT XNNPACK (op table: xnnpack)
    adb:SERIAL[:DELEGATE] a phone through the Android harness (cpu -> xnnpack, gpu, nnapi, hexagon)
    jetson:HOST           a board through the ssh harness, LiteRT on its CPU (xnnpack)
"""
from __future__ import annotations

from dataclasses import dataclass

from tflite_isp.core.errors import UserError
from tflite_isp.devices.android_bench import DELEGATES

_TABLE_OF = {"cpu": "xnnpack", "gpu": "gpu", "nnapi": "nnapi", "hexagon": "hexagon"}
USAGE = "local, adb:SERIAL[:DELEGATE] (DELEGATE: cpu, gpu, nnapi, hexagon) or jetson:HOST"


@dataclass(frozen=True)
class Target:
    spec: str  # as given: 'local', 'adb:R58M:gpu', 'jetson:nano'
    kind: str  # local | adb | jetson
    address: str | None
    delegate: str  # the export.compat table the candidate must fully pass
    bench_delegate: str = "cpu"  # the phone harness's --delegate (adb targets)

    @property
    def runtime(self) -> str:
        """The ``score --runtime`` spelling of this target."""
        return self.spec


def parse_target(text: str, what: str = "target") -> Target:
    """A target spec, or one line naming the spellings (``what``: the flag it came from)."""
    parts = str(text).strip().split(":")
    kind = parts[0]
    if kind == "local" and len(parts) == 1:
        return Target("local", "local", None, "xnnpack")
    if kind == "adb" and 2 <= len(parts) <= 3 and parts[1]:
        delegate = parts[2] if len(parts) == 3 and parts[2] else "cpu"
        if delegate not in DELEGATES:
            raise UserError(f"unknown {what} {text!r}: DELEGATE must be one of {', '.join(DELEGATES)}")
        return Target(str(text), "adb", parts[1], _TABLE_OF[delegate], delegate)
    if kind == "jetson" and len(parts) == 2 and parts[1]:
        return Target(str(text), "jetson", parts[1], "xnnpack")
    raise UserError(f"unknown {what} {text!r}: use {USAGE}")
