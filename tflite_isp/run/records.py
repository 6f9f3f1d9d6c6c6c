"""Where a model's runtime comes from: timed here, on a device, or read from a JSON file.

``--runtime local`` times the ``.tflite`` in a fresh process with the LiteRT interpreter (see
:mod:`tflite_isp.timing`); ``adb[:SERIAL][:DELEGATE]`` and ``jetson:HOST`` go through the device
harnesses; ``--runtime_json FILE`` takes figures measured elsewhere (e.g. read off AI Benchmark's
PRO mode by hand). Every source answers for the Full HD input (packed 1 x 544 x 960 x 4), the
MAI 2021 convention the score is defined on.

Runtime JSON schema (``--runtime_json``)::

    {"source": "AI Benchmark 5, Dimensity 1000+, Neuron delegate",   # optional; shown in the table
     "models": {"<key>": {"ms": 61.0,             # required: median (or mean) ms per Full HD inference, > 0
                          "p95_ms": 64.0,          # optional, >= 0
                          "init_ms": 820.0,        # optional, >= 0
                          "note": "free text"}}}   # optional

A ``<key>`` names the model as the leaderboard row (``"smallnet int8"``), as the path given on
the command line, as the ``.tflite`` path, or by the file's SHA-256. A record may carry more fields
(the device harnesses add ``sha256``, ``delegation``, ``peak_memory_mb``, ...); a ``sha256`` that
differs from the scored file's is refused (the timing was of another file).

The device harnesses (``python -m tflite_isp.android``, ``python -m tflite_isp.jetson``) write one
such document per device, gathered under the device's ``--runtime`` spelling::

    {"format": "tflite_isp.runtimes/1",
     "devices": {"adb:R58M123ABC": {"source": ..., "device": {...}, "models": {...}},
                 "jetson:orin":   {"source": ..., "error": "one line"}}}        # a device that failed

``score --runtime adb:SERIAL --runtime_json FILE`` reads that device's section (the only one
when the file holds one device and no ``--runtime`` device is named).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tflite_isp.core import atomic
from tflite_isp.core.errors import fail
from tflite_isp.run import timing
from tflite_isp.run.tiling import tile_count

FULL_HD_PACKED = (544, 960)
COLOUR_FRAME = (256, 256)  # a colourisation file's frame: the published autoencoder's 256 x 256 L
OPTIONAL_TIMES = ("p95_ms", "init_ms")
FORMAT = "tflite_isp.runtimes/1"


@dataclass(frozen=True)
class Measured:
    """A runtime for one Full HD frame: ``ms`` drives the score; ``details`` go to the JSON."""

    ms: float
    source: str
    details: dict


def full_hd_packed(channels: int) -> tuple:
    """A Full HD RAW (1088 x 1920) packed: 544 x 960 for a 4-channel Bayer input, 272 x 480 for 16-channel Quad
    Bayer."""
    return (272, 480) if channels == 16 else FULL_HD_PACKED


def full_hd_plan(input_shape) -> tuple:
    """(shape to time at, invocations per Full HD frame) for a file's input signature (1, H, W, 4).

    A dynamic file is resized to Full HD; a fixed Full HD file runs once; another fixed size
    runs once per tile of a Full HD frame (no overlap: the least a frame can take). A colourisation
    file (1, H, W, 1) runs once per frame at its own size (a dynamic one at COLOUR_FRAME).
    """

    _, h, w, c = input_shape
    if c == 1:
        return (1, *(COLOUR_FRAME if -1 in (h, w) else (h, w)), 1), 1
    if h == -1 or w == -1:
        return (1, *full_hd_packed(c), c), 1
    return (1, h, w, c), tile_count(full_hd_packed(c), (h, w), margin=0)


class Local:
    """Timed on this machine, one fresh process per file."""

    def __init__(self, threads: int = 2, runs: int = 20, warmup: int = 3):
        self.threads, self.runs, self.warmup = threads, runs, warmup
        self.label = f"local (LiteRT XNNPACK, {threads} threads, median of {runs} runs)"

    def measure(self, entry) -> Measured:

        shape, calls = full_hd_plan(entry.input_shape)
        try:
            t = timing.measure_subprocess(entry.path, threads=self.threads, runs=self.runs, warmup=self.warmup,
                                          shape="x".join(map(str, shape)))
        except timing.TimingError as err:
            raise fail(entry.path, f"timing failed ({err.problem})") from None
        source = "local" if calls == 1 else f"local, {calls} tiles of {shape[1]}x{shape[2]} per Full HD frame"
        return Measured(t["median_ms"] * calls, source, {**t, "invocations_per_frame": calls})


class FromJson:
    """Runtimes measured elsewhere, listed in a JSON file (schema in this module's docstring)."""

    def __init__(self, path, device: str | None = None):
        self.path = Path(path)
        try:
            doc = json.loads(self.path.read_text())
        except OSError as err:
            raise fail(self.path, f"cannot read the runtime JSON ({err.strerror})") from None
        except ValueError as err:
            raise fail(self.path, f"not valid JSON ({err})") from None
        if isinstance(doc, dict) and isinstance(doc.get("devices"), dict):
            doc = self._device_section(doc["devices"], device)
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), dict):
            raise fail(self.path, 'the runtime JSON needs an object {"models": {"<model>": {"ms": ...}}}')
        self.models = doc["models"]
        self.label = str(doc.get("source") or f"from {self.path.name}")

    def _device_section(self, devices: dict, device: str | None) -> dict:
        """One device's document from a harness file; ``device`` is ``adb[:SERIAL][:DELEGATE]`` or ``jetson:HOST``."""
        parts = (device or "").split(":")
        key = ":".join(parts[:2]) if len(parts) > 1 and parts[1] else None
        delegate = parts[2] if len(parts) > 2 and parts[2] else None
        if key is None:
            if len(devices) != 1:
                raise fail(self.path, f"holds {len(devices)} devices ({', '.join(devices)}): name one with "
                                      "--runtime adb:SERIAL or jetson:HOST")
            key = next(iter(devices))
        if key not in devices:
            raise fail(self.path, f"no device {key!r} (devices: {', '.join(devices) or 'none'})")
        section = devices[key]
        if not isinstance(section, dict):
            raise fail(self.path, f"devices[{key!r}] is not an object")
        if section.get("error"):
            raise fail(self.path, f"{key} failed when it was measured: {section['error']}")
        recorded = (section.get("device") or {}).get("delegate")
        if delegate and recorded and delegate != recorded:
            raise fail(self.path, f"{key} was measured with the {recorded} delegate, not {delegate}")
        return section

    def entry_for(self, entry) -> tuple:
        """(key, record) of the first key that names the model."""
        for key in entry.keys():
            if key in self.models:
                return key, self.models[key]
        raise fail(self.path, f"no runtime for {entry.name!r} (keys tried: {', '.join(entry.keys())})")

    def measure(self, entry) -> Measured:
        key, record = self.entry_for(entry)
        where = f"models[{key!r}]"
        if isinstance(record, dict) and record.get("error"):
            raise fail(self.path, f"{where}: timing failed on the device ({record['error']})")
        if not isinstance(record, dict) or "ms" not in record:
            raise fail(self.path, f"{where}: missing field 'ms' (ms per Full HD inference)")
        details = {"key": key}
        for name in ("ms", *OPTIONAL_TIMES):
            if name not in record:
                continue
            value = record[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise fail(self.path, f"{where}: {name} must be a number, not {value!r}")
            if value < 0 or (name == "ms" and value == 0):
                raise fail(self.path, f"{where}: {name} must be {'> 0' if name == 'ms' else '>= 0'}, not {value}")
            details[name] = float(value)
        if "note" in record:
            details["note"] = str(record["note"])
        timed_sha = record.get("sha256")
        if timed_sha and timed_sha != entry.keys()[-1]:
            raise fail(self.path, f"{where}: timed a different file (sha256 {timed_sha[:12]}…, this one "
                                  f"{entry.keys()[-1][:12]}…): measure it again")
        return Measured(details["ms"], self.label, details)


def model_record(ms: float, **fields) -> dict:
    """One model's record in a runtime JSON: ``ms`` (per Full HD frame) and any other fields given (None dropped)."""
    return {"ms": round(float(ms), 3), **{k: v for k, v in fields.items() if v is not None}}


def device_doc(source: str, models: dict, device: dict | None = None, error: str | None = None) -> dict:
    """The runtime JSON of one device: its label, what it is, and its models' records (or the one-line error)."""
    doc = {"source": source, "device": device or {}, "models": models}
    if error:
        doc["error"] = error
    return doc


def write_devices(path, devices: dict) -> Path:
    """Write ``{"devices": {spec: device_doc}}`` atomically (a temporary name, then rename)."""

    path = Path(path)
    atomic.write_json(path, {"format": FORMAT, "devices": devices})
    return path


__all__ = ["FULL_HD_PACKED", "full_hd_packed", "Measured", "Local", "FromJson", "full_hd_plan", "model_record",
           "device_doc", "write_devices"]
