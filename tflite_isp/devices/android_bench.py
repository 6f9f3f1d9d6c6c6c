"""Timing ``.tflite`` files on Android phones: TFLite's ``benchmark_model`` (native binary or APK) over adb.

The native binary is pushed with the model to a folder under ``/data/local/tmp`` and run with the chosen
delegate; the APK is started with ``am start`` and read back from logcat (it has no exit status). Both outputs go
through :mod:`tflite_isp.bench_output`. Runs on several phones at once form a small device farm, written as the
runtime JSON ``score --runtime adb:SERIAL --runtime_json FILE`` reads.
"""
from __future__ import annotations

import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tflite_isp.core.errors import UserError
from tflite_isp.devices import bench_output
from tflite_isp.devices.adb import Adb
from tflite_isp.run import flatbuffer, records

DEVICE_DIR = "/data/local/tmp/tflite_isp"
AI_BENCHMARK_FILE = "/sdcard/Download/model.tflite"  # the name AI Benchmark's PRO mode "Custom Model" loads
APK_ACTIVITY = "org.tensorflow.lite.benchmark/.BenchmarkModelActivity"
DELEGATES = ("cpu", "gpu", "nnapi", "hexagon")
POLL_S = 1.0


@dataclass(frozen=True)
class BenchSettings:
    """How to run ``benchmark_model`` on a phone."""

    delegate: str = "cpu"
    threads: int = 4
    runs: int = 50
    warmup: int = 5
    accelerator: str | None = None  # NNAPI accelerator name (Android 10+), e.g. "neuron-ann"
    taskset: str | None = None      # hexadecimal CPU mask: device-specific (which cores are the big ones)
    peak_memory: bool = True
    require_full_delegation: bool = False
    timeout: float = 600
    device_dir: str = DEVICE_DIR

    def check(self) -> BenchSettings:
        problems = []
        if self.delegate not in DELEGATES:
            problems.append(f"--delegate must be one of {', '.join(DELEGATES)}, not {self.delegate!r}")
        if self.threads <= 0 or self.runs <= 0 or self.warmup < 0:
            problems.append("--threads and --runs must be > 0 and --warmup >= 0")
        if self.accelerator and self.delegate != "nnapi":
            problems.append("--accelerator names an NNAPI accelerator: use it with --delegate nnapi")
        if self.taskset and not re.fullmatch(r"(0x)?[0-9a-fA-F]+", self.taskset):
            problems.append(f"--taskset takes a hexadecimal CPU mask such as f0, not {self.taskset!r}")
        if not self.device_dir.startswith("/"):
            problems.append(f"--device_dir must be an absolute path on the device, not {self.device_dir!r}")
        if self.timeout <= 0:
            problems.append("--device_timeout must be > 0")
        if problems:
            raise UserError("; ".join(problems))
        return self

    def describe(self) -> str:
        name = {"cpu": "CPU (XNNPACK)", "gpu": "GPU", "nnapi": "NNAPI", "hexagon": "Hexagon"}[self.delegate]
        parts = [name + (f" ({self.accelerator})" if self.accelerator else ""), f"{self.threads} threads",
                 f"{self.warmup} warm-up + {self.runs} runs"]
        return ", ".join(parts + ([f"taskset {self.taskset}"] if self.taskset else []))


def benchmark_args(s: BenchSettings, graph: str, input_layer: tuple | None = None) -> list:
    """The classic ``benchmark_model`` flags for one run (exact warm-up and run counts: no minimum seconds)."""
    args = [f"--graph={graph}", f"--num_threads={s.threads}", f"--warmup_runs={s.warmup}", "--warmup_min_secs=0",
            f"--num_runs={s.runs}", "--min_secs=0"]
    if s.peak_memory:
        args.append("--report_peak_memory_footprint=true")
    if s.delegate == "gpu":
        args.append("--use_gpu=true")
    elif s.delegate == "nnapi":
        args += ["--use_nnapi=true"] + ([f"--nnapi_accelerator_name={s.accelerator}"] if s.accelerator else [])
    elif s.delegate == "hexagon":
        args += ["--use_hexagon=true", f"--hexagon_lib_path={s.device_dir}"]
    if input_layer:
        name, shape = input_layer
        args += [f"--input_layer={name}", f"--input_layer_shape={','.join(map(str, shape))}"]
    return args


def device_name(path: Path, label: str) -> str:
    """The model's file name on the phone: readable, unique per content, safe for every device tool."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or "model"
    return f"{slug}-{hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]}.tflite"


class Phone:
    """One ready phone: pushes the tools once, then times models on it."""

    def __init__(self, adb: Adb, settings: BenchSettings, *, binary=None, apk=None, hexagon_libs=None,
                 log=print):
        if (binary is None) == (apk is None):
            raise UserError("give the benchmark_model binary (--benchmark_binary PATH) or the benchmark APK "
                            "(--apk PATH); both are TFLite's prebuilt tools for the phone's ABI")
        for path in (binary, apk, hexagon_libs):
            if path is not None and not Path(path).exists():
                raise UserError(f"{path}: no such file")
        if apk is not None and re.search(r"\s", settings.device_dir):
            raise UserError(f"--device_dir {settings.device_dir!r}: the benchmark APK splits its arguments on "
                            "spaces, so the folder on the phone cannot contain one")
        self.adb, self.settings, self.log = adb, settings.check(), log
        self.binary, self.apk, self.hexagon_libs = binary, apk, hexagon_libs
        self.device = adb.ready_device(adb.serial)
        self.adb = adb.on(self.device.serial)
        self.info = self._properties()
        self._prepared = False

    @property
    def spec(self) -> str:
        return f"adb:{self.device.serial}"

    def _properties(self) -> dict:
        props = {"model": "ro.product.model", "soc": "ro.soc.model", "platform": "ro.board.platform",
                 "android": "ro.build.version.release", "sdk": "ro.build.version.sdk", "abi": "ro.product.cpu.abi"}
        lines = self.adb.shell_line("; ".join(f"getprop {p}" for p in props.values()), timeout=30).stdout.splitlines()
        info = {name: value.strip() for name, value in zip(props, lines + [""] * len(props))}
        return {"serial": self.device.serial, **info, "delegate": self.settings.delegate,
                "settings": self.settings.describe()}

    def label(self) -> str:
        model = self.info.get("model") or self.device.model or "phone"
        tool = "benchmark_model" if self.binary else "benchmark APK"
        return f"adb:{self.device.serial} ({model}, {tool}, {self.settings.describe()})"

    def prepare(self) -> None:
        """Make the folder and push the tools (once per phone)."""
        if self._prepared:
            return
        d = self.settings.device_dir
        self.adb.shell(["mkdir", "-p", d], timeout=30)
        if self.binary:
            self.adb.push(self.binary, f"{d}/benchmark_model")
            self.adb.shell(["chmod", "755", f"{d}/benchmark_model"], timeout=30)
        else:
            self.adb.run("install", "-r", "-d", "-g", str(self.apk))
        if self.hexagon_libs:
            libs = sorted(Path(self.hexagon_libs).glob("*.so"))
            if not libs:
                raise UserError(f"{self.hexagon_libs}: no .so files (libhexagon_interface.so, libhexagon_nn_skel*.so)")
            for lib in libs:
                self.adb.push(lib, f"{d}/{lib.name}")
        self._prepared = True

    def push_model(self, path, label: str) -> str:
        remote = f"{self.settings.device_dir}/{device_name(path, label)}"
        self.adb.push(path, remote)
        return remote

    def run(self, remote: str, input_layer=None):
        """(text output, exit status or None) of one benchmark run."""
        args = benchmark_args(self.settings, remote, input_layer)
        if self.binary:
            argv = [f"{self.settings.device_dir}/benchmark_model", *args]
            if self.settings.taskset:
                argv = ["taskset", self.settings.taskset, *argv]
            result = self.adb.shell(argv, timeout=self.settings.timeout, check=False)
            return result.output, result.returncode
        return self._run_apk(args), None

    def _run_apk(self, args: list) -> str:
        """Start the APK's activity, then poll logcat until the timings, an error, or the timeout."""

        self.adb.run("logcat", "-c", timeout=30)
        self.adb.shell(["am", "start", "-S", "-n", APK_ACTIVITY, "--es", "args", " ".join(args)], timeout=60)
        deadline = time.monotonic() + self.settings.timeout
        while True:
            text = self.adb.run("logcat", "-d", "-v", "threadtime", "-s", "tflite", "AndroidRuntime:E",
                                timeout=60).stdout
            out = bench_output.parse(text)
            if out.complete or out.errors:
                return text
            if time.monotonic() > deadline:
                return text + f"\n(no timings in logcat after {self.settings.timeout:g} s)"
            time.sleep(POLL_S)

    def bench(self, path, label: str, shape=None, input_name: str | None = None) -> dict:
        """Time one file: its record (per-invocation ms, parsed output); a failure is a one-line UserError."""

        self.prepare()
        remote = self.push_model(path, label)
        text, status = self.run(remote, (input_name, shape) if shape else None)
        out = bench_output.parse(text)
        problem = bench_output.diagnose(out, status)
        if problem:
            raise UserError(f"{self.spec}: {label}: {problem}")
        verdicts = {d.verdict for d in out.delegations}
        if self.settings.require_full_delegation and self.settings.delegate != "cpu" and verdicts != {"full"}:
            raise UserError(f"{self.spec}: {label}: {bench_output.delegation_note(out) or 'delegate not applied'} "
                            "(--require_full_delegation)")
        return {"per_invocation_ms": out.ms, "p95_ms": out.p95_ms, "init_ms": out.init_ms,
                "peak_memory_mb": out.peak_memory_mb, "note": bench_output.delegation_note(out),
                "device_path": remote, "output": out.to_dict()}


def entry_record(phone: Phone, entry) -> dict:
    """Time an entry as a Full HD frame (see :func:`records.full_hd_plan`): its runtime JSON record."""
    shape, calls = records.full_hd_plan(entry.input_shape)
    dynamic = -1 in entry.input_shape
    input_name = None
    if dynamic:

        input_name = flatbuffer.read(entry.path).inputs[0].name
    r = phone.bench(entry.path, entry.name, shape if dynamic else None, input_name)
    p95 = r["p95_ms"] * calls if r["p95_ms"] is not None else None
    return records.model_record(r["per_invocation_ms"] * calls, p95_ms=p95, init_ms=r["init_ms"], note=r["note"],
                                 invocations_per_frame=calls, peak_memory_mb=r["peak_memory_mb"],
                                 file=str(entry.path), sha256=entry.keys()[-1], device_path=r["device_path"],
                                 delegation=measured_delegation(r["output"]), benchmark=r["output"])


def measured_delegation(output: dict) -> dict | None:
    """What the delegate took on the phone, read off benchmark_model's output: a measured verdict."""
    delegations = (output or {}).get("delegations")
    return {"basis": "measured", "delegations": delegations} if delegations else None


def bench_device(phone: Phone, entries, log=print) -> dict:
    """Every entry on one phone: its device document (a model that fails gets an ``error`` record)."""
    models = {}
    for e in entries:
        try:
            models[e.name] = entry_record(phone, e)
            log(f"{phone.spec}: {e.name}: {models[e.name]['ms']:.1f} ms per Full HD frame"
                + (f" ({models[e.name]['note']})" if "note" in models[e.name] else ""))
        except UserError as err:
            models[e.name] = {"error": str(err), "sha256": e.keys()[-1]}
            log(f"{phone.spec}: {e.name}: FAILED: {err}")
    return records.device_doc(phone.label(), models, phone.info)


def run_farm(serials, job, log=print) -> dict:
    """``job(serial) -> device document`` on every phone at once; one document (or error) per ``adb:SERIAL``."""
    def one(serial):
        try:
            return job(serial)
        except UserError as err:
            log(f"adb:{serial}: FAILED: {err}")
            return records.device_doc(f"adb:{serial}", {}, {"serial": serial}, error=str(err))

    with ThreadPoolExecutor(max_workers=max(1, len(serials))) as pool:
        docs = list(pool.map(one, serials))
    return {f"adb:{s}": d for s, d in zip(serials, docs)}


def ai_benchmark_handoff(adb: Adb, entry, serial: str | None) -> tuple:
    """Push the file as AI Benchmark's ``Download/model.tflite``; (steps to print, runtime JSON template)."""
    device = adb.ready_device(serial)
    phone = adb.on(device.serial)
    phone.shell(["mkdir", "-p", str(Path(AI_BENCHMARK_FILE).parent)], timeout=30)
    phone.push(entry.path, AI_BENCHMARK_FILE)
    precision = {"int8": "INT8", "fp16": "FP16"}.get(entry.precision, "FP32")
    accel = ("NNAPI, Hexagon NN, Samsung Eden or MediaTek Neuron (integer accelerators)" if precision == "INT8"
             else "TFLite GPU" if precision == "FP16" else "CPU or TFLite GPU")
    template = records.device_doc(f"AI Benchmark PRO mode, {device.model or device.serial} (entered by hand)",
                                   {entry.name: {"ms": None, "sha256": entry.keys()[-1],
                                                 "note": "replace null by the latency AI Benchmark shows"}},
                                   {"serial": device.serial, "model": device.model, "tool": "AI Benchmark"})
    steps = [f"{entry.path} is on {device.describe()} as {AI_BENCHMARK_FILE}. In AI Benchmark:",
             "  1. run the standard tests once (PRO mode unlocks after them);",
             "  2. open PRO Mode -> Custom Model; the app lists Download/model.tflite",
             "     (with the file picker instead, enable 'Show Internal Storage');",
             f"  3. choose {precision} and an acceleration option: {accel};",
             "  4. run it and note the average latency (an incompatible model shows a detailed error log)."]
    if -1 in entry.input_shape:
        steps.append("  note: this file has a dynamic input size; AI Benchmark runs fixed shapes best "
                     "(use the export's model.tflite)")
    return steps, template


def adb_runtime(spec: str, *, binary, threads: int, runs: int, warmup: int, adb: str = "adb", timeout: float = 600):
    """The live ``score --runtime adb[:SERIAL][:DELEGATE]`` source."""
    parts = spec.split(":")
    if len(parts) > 3 or parts[0] != "adb":
        raise UserError(f"--runtime must be adb[:SERIAL][:DELEGATE], not {spec!r}")
    serial = parts[1] if len(parts) > 1 and parts[1] else None
    delegate = parts[2] if len(parts) > 2 and parts[2] else "cpu"
    if delegate not in DELEGATES:
        raise UserError(f"--runtime {spec}: DELEGATE must be one of {', '.join(DELEGATES)}, not {delegate!r}")
    settings = BenchSettings(delegate=delegate, threads=threads, runs=runs, warmup=warmup, timeout=timeout).check()
    if binary is None:
        raise UserError(f"--runtime {spec} times files with TFLite's benchmark_model on the phone: pass "
                        "--benchmark_binary PATH (e.g. android_aarch64_benchmark_model)")
    return AdbRuntime(Phone(Adb(adb, serial, timeout), settings, binary=binary))


class AdbRuntime:
    """A score runtime source timing each file on one phone."""

    def __init__(self, phone: Phone):
        self.phone = phone
        self.label = phone.label()

    def measure(self, entry) -> records.Measured:
        record = entry_record(self.phone, entry)
        return records.Measured(record["ms"], self.label, {k: v for k, v in record.items() if k != "benchmark"})


__all__ = ["DEVICE_DIR", "AI_BENCHMARK_FILE", "DELEGATES", "BenchSettings", "benchmark_args", "device_name", "Phone",
           "entry_record", "bench_device", "run_farm", "ai_benchmark_handoff", "adb_runtime", "AdbRuntime"]
