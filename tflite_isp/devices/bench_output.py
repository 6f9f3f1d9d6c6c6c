"""Read what TFLite's ``benchmark_model`` tools print: timings in ms, delegation, memory, and why a run failed.

The Android (adb) and board (ssh) harnesses hand over whatever came back: the native tool's stdout+stderr, or a
logcat dump of the benchmark APK. Three formats are read: the classic Interpreter tool ("Inference timings in us:
..."), the legacy one ("Average inference timings in us: ..."), and the LiteRT CompiledModel tool (a "BENCHMARK
RESULTS" block, already in ms). The line formats follow google-ai-edge/LiteRT ``tflite/tools/benchmark/
benchmark_model.cc``, ``benchmark_tflite_model.cc``, ``litert/tools/benchmark_litert_model.h``,
``tflite/core/subgraph.cc``, ``tflite/delegates/gpu/common/model_builder.cc`` and
``tflite/delegates/nnapi/nnapi_delegate.cc``. Standard library only, so a board can run it; ``parse`` never raises.
``parse_op_profile`` reads the per-op CSV of ``--enable_op_profiling=true --op_profiling_output_mode=csv``.
"""
# long module: one tolerant parser for every benchmark_model output format (classic, legacy, LiteRT, logcat).
from __future__ import annotations

import dataclasses
import math
import re
import signal
from dataclasses import dataclass

_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?i:nan|inf)"  # C++ ostream prints 1.53025e+06
_NUM = rf"({_FLOAT})"
_INT = r"(\d{1,9})"  # bounded: int() refuses strings of more than 4300 digits

_LOGCAT = re.compile(  # threadtime "11-22 10:00:00.123  1234  5678 I tflite  : ", brief/time "I/tflite  ( 1234): "
    r"^(?:(?:\d{4}-)?\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEFS]\s+[^:]*?:\s?"
    r"|(?:(?:\d{4}-)?\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+)?[VDIWEFS]/[^(:]*?\s*(?:\(\s*\d+\))?:\s?)")
_LEVEL = re.compile(r"^(?:INFO|VERBOSE|DEBUG|WARNING|WARN):\s?")  # ERROR: and FATAL: are kept: they mean failure
_SOURCE = re.compile(r"^\[[\w./+-]+:\d+\]\s?")  # LITERT_LOG's "[benchmark_litert_model.h:77] "

_SIZE = re.compile(rf"The input model file size \(MB\): {_NUM}")
_INIT = re.compile(rf"Initialized session in {_NUM}\s*ms")
_KV = re.compile(rf"(\w+)=({_FLOAT})")
_CLASSIC = re.compile(r"^Inference timings in us: (.*)")
_LEGACY = re.compile(r"^Average inference timings in us: (.*)")
_MEMORY = re.compile(rf"Memory footprint delta from the start of the tool \(MB\): init={_NUM} overall={_NUM}")
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUM}")
_ACCEL = re.compile(r"NNAPI accelerators available: \[(.*?)\]")
_PROGRESS = re.compile(r"^(?:STARTING!|Log parameter values|Loaded model|Running benchmark for|Running TensorFlow "
                       r"Lite benchmark|Graph: \[)")
_LITERT_HEAD = re.compile(r"^=+ BENCHMARK RESULTS =+$")
_LITERT = {key: re.compile(rf"^{label}:\s*{_NUM}") for key, label in (  # benchmark_litert_model.h
    ("init_ms", "Model initialization"), ("first_ms", r"Warmup \(first\)"), ("warmup_avg_ms", r"Warmup \(avg\)"),
    ("avg_ms", r"Inference \(avg\)"), ("min_ms", r"Inference \(min\)"), ("max_ms", r"Inference \(max\)"),
    ("std_ms", r"Inference \(std\)"), ("throughput_mb_s", "Throughput"), ("init_memory_mb", "Init footprint"),
    ("overall_memory_mb", "Overall footprint"), ("peak_memory_mb", "Peak memory"))}
_RUNS = re.compile(rf"\({_INT} runs\)")

_APPLIED = re.compile(rf"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                      rf"executed by the delegate(?: w/ {_INT} delegate kernels)?")
_NOT_APPLIED = re.compile(r"Though (\S+) delegate is explicitly applied, the model graph will not be executed")
_APPLY_FAILED = re.compile(r"Failed to apply (\S+) delegate")
# "Replacing 41 out of 48 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 5 partitions for subgraph 0."
# (older builds: no "out of 48"; LiteRT's own GPU accelerator: no " node")
_REPLACING = re.compile(rf"Replacing {_INT}(?: out of {_INT})? node\(s\) with delegate \(([^)]*)\)(?: node)?, "
                        rf"yielding {_INT} partitions")
_GPU_HEAD = re.compile(r"(?:Following|Next) operations are not supported by GPU delegate:")
_GPU_OP = re.compile(r"^([A-Z][A-Z0-9_]*(?: \S+)?):(?:\s+.*)?$")  # "RESIZE_BILINEAR: reason", "CUSTOM name: reason"
_GPU_TAIL = re.compile(r"(?:First )?(\d{1,9}|No) operations will run on the GPU, and (?:the remaining|all) "
                       r"(\d{1,9})")
_NNAPI_REFUSED = re.compile(r"Operator (\S+) \(v\d+\) refused by NNAPI delegate")
_KERNELS = (("xnnpack", "XNNPACK"), ("nnapi", "NNAPI"), ("hexagon", "HEXAGON"), ("gpu", "GPU"), ("metal", "GPU"),
            ("_cl", "GPU"), ("opengl", "GPU"), ("coreml", "COREML"))

_ERROR = re.compile(r"^(?:ERROR|FATAL)\b|\b(?:[Ff]ailed|[Ee]rror|Segmentation fault|Aborted|Fatal signal|Bus error|"
                    r"Illegal instruction|Killed|not found|Permission denied|No such file|CANNOT LINK|not executable|"
                    r"Disallowed CPU fallback|terminate called|Check failed|Abort message|Connection (?:refused|"
                    r"timed out|closed)|device offline|Host key verification failed)\b")
_BENIGN = re.compile(r"Failed to get the input model file size")
_CRASH = re.compile(r"Segmentation fault|Aborted|Fatal signal|Bus error|Illegal instruction|\bKilled\b|terminate "
                    r"called|"
                    r"Abort message|\bSIG(?:SEGV|ABRT|BUS|ILL|KILL)\b")
_SHELL = re.compile(r"sh: (?:line \d+: )?(\S+?): (?:(?:can't execute: )?Permission denied|(?:inaccessible or )?not "
                    r"found|No such file or directory|command not found)$")
_GENERIC = re.compile(r"Restored original execution plan|Benchmarking failed|Failed to apply \S+ delegate")


@dataclass(frozen=True)
class RunStats:
    """One ``count=<n> first=<us> curr= min= max= avg= std= [p5= median= p95=]`` line, converted to ms."""
    count: int
    first_ms: float | None
    curr_ms: float | None
    min_ms: float | None
    max_ms: float | None
    avg_ms: float | None
    std_ms: float | None
    p5_ms: float | None = None
    median_ms: float | None = None
    p95_ms: float | None = None


@dataclass(frozen=True)
class Delegation:
    """What one delegate took. ``nodes`` is (replaced, total); total is None where the build did not print it."""
    delegate: str
    verdict: str  # "full" | "partial" | "none"
    kernels: int | None = None
    nodes: tuple | None = None
    partitions: int | None = None  # graph partitions after delegation, delegated or not: 1 means all delegated
    unsupported_ops: tuple = ()
    messages: tuple = ()
    explicit: bool = False  # asked for (the tool's verdict line, or rejections); False: only TFLite's node count
    failed: bool = False  # "Failed to apply X delegate."


@dataclass(frozen=True)
class BenchOutput:
    """One run's output. Times in ms, memory in MB, None where the output did not say. The summary's values come
    first; where it is missing (a cut-off run) the stats lines' are used, but ``complete`` stays False."""
    format: str  # "classic" | "legacy" | "litert" | "unknown"
    complete: bool
    model_size_mb: float | None
    init_ms: float | None
    first_ms: float | None
    warmup_avg_ms: float | None
    avg_ms: float | None
    warmup: RunStats | None
    timed: RunStats | None
    min_ms: float | None
    max_ms: float | None
    std_ms: float | None
    median_ms: float | None
    p95_ms: float | None
    runs: int | None
    init_memory_mb: float | None
    overall_memory_mb: float | None
    peak_memory_mb: float | None
    delegations: tuple
    accelerators: tuple
    errors: tuple
    last_line: str | None
    p5_ms: float | None = None
    warmup_runs: int | None = None
    throughput_mb_s: float | None = None
    tail: tuple = ()  # the last few lines, for saying what a crash came after

    @property
    def ms(self) -> float | None:
        return self.median_ms if self.median_ms is not None else self.avg_ms

    def to_dict(self) -> dict:
        return {**_plain(dataclasses.asdict(self)), "ms": self.ms}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _num(text: str | None) -> float | None:
    value = float(text) if text is not None else None
    return value if value is not None and math.isfinite(value) else None


def strip_framing(text: str) -> list[str]:
    """Non-empty lines without adb CR, logcat prefixes, ``INFO:``/``VERBOSE:``/``WARNING:`` and LiteRT's
    ``[file:line]``. ``ERROR:`` and ``FATAL:`` stay: they say something failed."""
    lines = []
    for raw in text.replace("\r", "\n").split("\n"):
        line = _SOURCE.sub("", _LEVEL.sub("", _LOGCAT.sub("", raw.strip(), count=1), count=1), count=1).strip()
        if line and not line.startswith("--------- beginning of"):
            lines.append(line)
    return lines


def _run_stats(line: str) -> RunStats:
    kv = {k: _num(v) for k, v in _KV.findall(line)}
    count = int(kv.get("count") or 0)
    if count and "first" not in kv and kv.get("curr") is not None:  # "count=3 curr=v(all same)": every run took v
        kv = {"first": kv["curr"], "min": kv["curr"], "max": kv["curr"], "avg": kv["curr"], "std": 0.0, **kv}
    ms = {k: (None if not count or kv.get(k) is None else kv[k] / 1000.0)
          for k in ("first", "curr", "min", "max", "avg", "std", "p5", "median", "p95")}
    return RunStats(count, ms["first"], ms["curr"], ms["min"], ms["max"], ms["avg"], ms["std"], ms["p5"],
                    ms["median"], ms["p95"])


def _summary_field(rest: str, key: str) -> float | None:
    value = _num(m.group(1)) if (m := re.search(rf"{re.escape(key)}: {_NUM}", rest)) else None
    return None if value is None else value / 1000.0  # us


def _delegate_name(kernel: str) -> str:
    low = kernel.lower()
    return next((name for key, name in _KERNELS if key in low), kernel.upper())


class _Scan:
    """State of one pass over the lines; ``parse`` turns it into a BenchOutput."""

    def __init__(self):
        self.values: dict = {}  # summary values in ms/MB, by BenchOutput field name
        self.stats: list[RunStats] = []
        self.dels: dict = {}
        self.errors: list[str] = []
        self.accelerators: tuple = ()
        self.format = None
        self.complete = False  # the final summary was printed
        self.progress = False  # lines the tool prints before its summary
        self.in_litert = False

    def delegation(self, name: str, explicit: bool) -> dict:
        d = self.dels.setdefault(name.upper(), {"delegate": name.upper(), "verdict": None, "kernels": None,
                                                "nodes": None, "partitions": None, "unsupported_ops": [],
                                                "messages": [], "explicit": False, "failed": False})
        d["explicit"] = d["explicit"] or explicit
        return d

    def gpu_block(self, lines: list[str], i: int) -> int:
        """The GPU delegate's one multi-line message: header, "OP: reason" lines, "N operations will run..."."""
        d = self.delegation("GPU", True)
        d["messages"].append(_bare(lines[i]))
        for j in range(i + 1, len(lines)):
            tail, op = _GPU_TAIL.search(lines[j]), _GPU_OP.match(lines[j])
            if tail:
                on_gpu = 0 if tail.group(1) == "No" else int(tail.group(1))
                d["nodes"] = d["nodes"] or (on_gpu, on_gpu + int(tail.group(2)))
                d["messages"].append(_bare(lines[j]))
                return j + 1
            if not op or op.group(1) in ("ERROR", "FATAL", "INFO", "WARNING", "VERBOSE"):
                return j
            d["messages"].append(lines[j])
            if op.group(1) not in d["unsupported_ops"]:
                d["unsupported_ops"].append(op.group(1))
        return len(lines)

    def delegation_line(self, line: str) -> bool:
        """Updates the delegations from one line; True for a rejection line (not an error, whatever its prefix)."""
        if m := _NNAPI_REFUSED.search(line):
            d = self.delegation("NNAPI", True)
            d["messages"].append(_bare(line))
            if m.group(1) not in d["unsupported_ops"]:
                d["unsupported_ops"].append(m.group(1))
            return True
        if m := _APPLIED.search(line):
            d = self.delegation(m.group(1), True)
            d["verdict"] = "full" if m.group(2) == "completely" else "partial"
            d["kernels"] = int(m.group(3)) if m.group(3) else (1 if d["verdict"] == "full" else None)
        elif m := _NOT_APPLIED.search(line):
            self.delegation(m.group(1), True)["verdict"] = "none"
        elif m := _APPLY_FAILED.search(line):
            d = self.delegation(m.group(1), True)
            d["failed"] = True
            d["messages"].append(_bare(line))
        elif m := _REPLACING.search(line):
            d = self.delegation(_delegate_name(m.group(3)), False)
            if d["partitions"] is None:  # first subgraph only
                d["nodes"] = d["nodes"] or (int(m.group(1)), int(m.group(2)) if m.group(2) else None)
                d["partitions"] = int(m.group(4))
        return False

    def litert_line(self, line: str) -> bool:
        """A line of the LiteRT results block; other lines, even inside it, go on to the usual checks."""
        for key, regex in _LITERT.items():
            if m := regex.search(line):
                self.values[key] = _num(m.group(1))
                if runs := _RUNS.search(line):
                    self.values["warmup_runs" if key == "warmup_avg_ms" else "runs"] = int(runs.group(1))
                self.complete = self.complete or key == "avg_ms"
                return True
        if re.fullmatch(r"=+", line):  # the block's last line
            self.in_litert = False
        self.complete = self.complete or line.startswith("No inference runs")
        return not self.in_litert or line == "Memory Usage:" or line.startswith("No ")

    def summary_line(self, line: str) -> bool:
        v = self.values
        if self.in_litert:
            return self.litert_line(line)
        if _LITERT_HEAD.match(line):
            self.in_litert, self.format = True, "litert"
        elif m := _CLASSIC.match(line):
            self.format, self.complete = self.format or "classic", True
            for key, label in (("init_ms", "Init"), ("first_ms", "First inference"),
                               ("warmup_avg_ms", "Warmup (avg)"), ("avg_ms", "Inference (avg)")):
                v[key] = _summary_field(m.group(1), label)
        elif m := _LEGACY.match(line):  # very old builds: "Warmup: .., Init: .., no stats: <avg>"
            self.format, self.complete, rest = self.format or "legacy", True, m.group(1)
            v.update(init_ms=_summary_field(rest, "Init"), warmup_avg_ms=_summary_field(rest, "Warmup"),
                     avg_ms=_pick(_summary_field(rest, "Inference"), _summary_field(rest, "no stats")))
        else:
            return False
        return True

    def line(self, line: str) -> None:
        if self.summary_line(line):
            return
        progress = True
        if line.startswith("count="):
            self.stats.append(_run_stats(line))
        elif m := _SIZE.search(line):
            self.values["model_size_mb"] = _num(m.group(1))
        elif m := _INIT.search(line):
            self.values.setdefault("session_ms", _num(m.group(1)))
        else:
            progress = bool(_PROGRESS.match(line))
            if m := _MEMORY.search(line):
                self.values.update(init_memory_mb=_num(m.group(1)), overall_memory_mb=_num(m.group(2)))
            elif m := _PEAK.search(line):
                self.values["peak_memory_mb"] = _num(m.group(1))
            elif m := _ACCEL.search(line):
                self.accelerators = tuple(a.strip() for a in m.group(1).split(",") if a.strip())
        self.progress = self.progress or progress
        if not self.delegation_line(line) and _ERROR.search(line) and not _BENIGN.search(line):
            self.errors.append(line)


def _bare(line: str) -> str:
    return re.sub(r"^(?:ERROR|FATAL):\s*", "", line)


def _freeze(d: dict) -> Delegation:
    verdict, nodes, parts = d["verdict"], d["nodes"], d["partitions"]
    if d["failed"]:
        verdict = "none"
    elif verdict is None:  # no verdict line: infer it from TFLite's partitioning
        if nodes and nodes[1] is not None:
            verdict = "none" if nodes[0] == 0 else "full" if nodes[0] >= nodes[1] else "partial"
        else:
            verdict = "none" if not nodes or not nodes[0] else "full" if parts == 1 else "partial"
    return Delegation(d["delegate"], verdict, d["kernels"], nodes, parts, tuple(d["unsupported_ops"]),
                      tuple(d["messages"]), d["explicit"], d["failed"])


def _pick(*values):
    return next((v for v in values if v is not None), None)


def parse(text: str) -> BenchOutput:
    """Everything ``benchmark_model`` said, in ms and MB. Never raises (bytes and None are accepted too)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    lines = strip_framing(text if isinstance(text, str) else str(text or ""))
    scan, i = _Scan(), 0
    while i < len(lines):
        if _GPU_HEAD.search(lines[i]):
            i = scan.gpu_block(lines, i)
            continue
        scan.line(lines[i])
        i += 1
    pairs = [scan.stats[k:k + 2] for k in range(0, len(scan.stats), 2)]  # (warm-up, timed) per benchmark run
    warmup, timed = (pairs[-1] + [None])[:2] if pairs else (None, None)
    get = scan.values.get
    return BenchOutput(
        format=scan.format or ("classic" if scan.progress else "unknown"), complete=scan.complete,
        model_size_mb=get("model_size_mb"),
        init_ms=_pick(get("init_ms"), get("session_ms")),
        first_ms=_pick(get("first_ms"), warmup and warmup.first_ms),
        warmup_avg_ms=_pick(get("warmup_avg_ms"), warmup and warmup.avg_ms),
        avg_ms=_pick(get("avg_ms"), timed and timed.avg_ms), warmup=warmup, timed=timed,
        min_ms=_pick(get("min_ms"), timed and timed.min_ms), max_ms=_pick(get("max_ms"), timed and timed.max_ms),
        std_ms=_pick(get("std_ms"), timed and timed.std_ms), median_ms=timed and timed.median_ms,
        p95_ms=timed and timed.p95_ms, runs=_pick(get("runs"), timed and timed.count),
        init_memory_mb=get("init_memory_mb"), overall_memory_mb=get("overall_memory_mb"),
        peak_memory_mb=get("peak_memory_mb"), delegations=tuple(_freeze(d) for d in scan.dels.values()),
        accelerators=scan.accelerators, errors=tuple(scan.errors), last_line=lines[-1] if lines else None,
        p5_ms=timed and timed.p5_ms, warmup_runs=_pick(get("warmup_runs"), warmup and warmup.count),
        throughput_mb_s=get("throughput_mb_s"), tail=tuple(lines[-8:]))


_FAILURES = (  # first match wins; "{}" is the line that said so
    (re.compile(r"Failed to (?:mmap|load) model|Could not open '|Failed to initialize model loader|not a valid "
                r"Flatbuffer"), "could not load the model ({})"),
    (re.compile(r"Disallowed CPU fallback"), "full delegation was required but part of the model fell back to the "
                                             "CPU ({})"),
    (re.compile(r"Failed to allocate tensors"), "could not allocate tensors ({})"),
    (re.compile(r"CANNOT LINK EXECUTABLE|Exec format error|not executable"), "the binary cannot run here ({})"),
)


def _clip(line: str | None, n: int = 160) -> str:
    line = line or ""
    return line if len(line) <= n else line[:n - 3] + "..."


def _signal_name(exit_code: int) -> str:
    number = -exit_code if exit_code < 0 else exit_code - 128
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _detail(code: str | None, line: str | None) -> str:
    quoted = f"'{_clip(line)}'" if line else None
    return f"{code}: {quoted}" if code and quoted else code or quoted or "no details"


def _crash(out: BenchOutput, exit_code: int | None) -> str | None:
    killed = exit_code is not None and (exit_code < 0 or 128 < exit_code <= 192)
    crash = next((e for e in out.errors if _CRASH.search(e)), None)
    if not killed and not crash:
        return None
    code = f"exit {exit_code}" + (f" = {_signal_name(exit_code)}" if killed else "") if exit_code else None
    what = ", ".join(x for x in (crash and _clip(crash, 60), code) if x)
    if out.complete:
        return f"crashed after printing the timings ({what})"
    tail = list(out.tail)
    at = next((k for k, t in enumerate(tail) if _CRASH.search(t)), len(tail))
    return f"crashed mid-run ({what})" + (f" after '{_clip(tail[at - 1])}'" if at else "")


def diagnose(out: BenchOutput, exit_code: int | None = None) -> str | None:
    """None when the timings are usable; else one line saying what went wrong. ``exit_code``: the tool's status
    where known (127 not found, 126 not executable, 128+n or -n killed by signal n); None for logcat."""
    code = None if exit_code in (None, 0) else f"exit {exit_code}"
    shell = next((m for e in out.errors if (m := _SHELL.search(e))), None)
    if not out.complete and (exit_code in (126, 127) or shell):
        name = shell.group(1).rsplit("/", 1)[-1] if shell else "benchmark_model"
        detail = _detail(code, shell.string if shell else out.last_line)
        if exit_code == 126 or shell and "Permission denied" in shell.string:
            return f"permission denied running {name} ({detail})"
        return f"{name} not found on the device ({detail})"
    if crashed := _crash(out, exit_code):
        return crashed
    informative = [_bare(e) for e in out.errors if not _GENERIC.search(e)] or [_bare(e) for e in out.errors]
    if out.complete:
        invoke = next((e for e in out.errors if re.search(r"failed to invoke|Invoke failed|Run failed", e)), None)
        if code or invoke:
            return f"failed after printing the timings ({_detail(code, invoke or _pick(*informative, None))})"
        return None if out.ms is not None else f"no inference time in the summary ('{_clip(out.last_line)}')"
    for regex, message in _FAILURES:
        if line := next((e for e in out.errors if regex.search(e)), None):
            note = delegation_note(out)
            return message.format(_clip(_bare(line))) + (f"; {note}" if note and "fell back" in message else "")
    if failed := next((d for d in out.delegations if d.failed), None):
        return f"the {failed.delegate} delegate failed to apply ({_clip(informative[0] if informative else None)})"
    if informative:
        return f"benchmark failed ({_detail(code, informative[0])})"
    if out.last_line is None:
        return f"no output ({code})" if code else "no output"
    where = f"{code}, " if code else ""
    if out.format == "unknown":
        return f"no benchmark timings in the output ({where}last line: '{_clip(out.last_line)}')"
    return f"output ended before the timings ({where}last line: '{_clip(out.last_line)}')"


def delegation_note(out: BenchOutput) -> str | None:
    """One line about a delegate that did not take the whole model (None: fully delegated, or none asked for).
    The default XNNPACK delegate, which TFLite applies without being asked, is not flagged."""
    notes = []
    for d in out.delegations:
        if not d.explicit or d.verdict == "full" and not d.failed:
            continue
        refused = ", ".join(d.unsupported_ops)
        if d.failed:
            notes.append(f"{d.delegate} delegate failed to apply")
        elif d.verdict == "none":
            notes.append(f"{d.delegate} delegate applied to nothing: these timings are the CPU fallback"
                         + (f" (unsupported: {refused})" if refused else ""))
        else:
            counts = [f"{d.kernels} kernels" if d.kernels is not None else None,
                      f"{d.nodes[0]} of {d.nodes[1]} nodes" if d.nodes and d.nodes[1] is not None else None]
            parts = [", ".join(c for c in counts if c), f"unsupported: {refused}" if refused else ""]
            inside = "; ".join(p for p in parts if p)
            notes.append(f"{d.delegate} delegate partial" + (f" ({inside})" if inside else ""))
    return "; ".join(notes) or None


# --- Op profiling (``--enable_op_profiling=true --op_profiling_output_mode=csv``) -----------------------------------
# Format: tflite/profiling/profile_summary_formatter.cc (section titles, "Delegate internal:") and
# xla/tsl/util/stats_calculator.cc (HeaderString/ColumnString with format_as_csv: "node type, first, avg_ms, %, cdf%,
# mem KB, times called, name"; older builds have a "start" column after the type; commas in names become tabs).
_OP_RUNS = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_OP_SECTION = re.compile(r"^=+ (.+?) =+$")
_OP_INDEX = re.compile(r":(\d{1,9})$")
_OP_FIELDS = {"node type": "node_type", "start": "start_ms", "first": "first_ms", "avg_ms": "avg_ms", "%": "pct",
              "cdf%": "cdf_pct", "mem kb": "mem_kb", "times called": "times_called", "name": "name"}


def _op_row(header: list, line: str) -> dict | None:
    cells = [c.strip() for c in line.split(",", len(header) - 1)]
    if len(cells) != len(header):
        return None
    row = {}
    for key, cell in zip(header, cells):
        if key in ("node_type", "name"):
            row[key] = cell.replace("\t", ",")
        else:
            try:
                row[key] = _num(cell.rstrip("%")) if key != "times_called" else int(cell)
            except ValueError:
                return None
    index = _OP_INDEX.search(row.get("name", ""))
    row["op_index"] = int(index.group(1)) if index else None
    return row


def parse_op_profile(text: str) -> list[dict]:
    """Per-op rows of the regular runs' "Run Order" tables in run order: node_type, first_ms, avg_ms, pct, mem_kb,
    times_called, name, op_index (the ``:N`` suffix of the name), subgraph (0: primary) and ``delegate`` (True for
    rows of "Delegate internal:", which are inside a delegate node's time). Empty when op profiling was off."""
    rows: list = []
    in_runs, section, header, subgraph, delegate = False, None, None, 0, False
    for line in strip_framing(text):
        if line.startswith(_OP_RUNS):
            in_runs, delegate, subgraph = True, False, 0
            continue
        if not in_runs:
            continue
        if line.startswith("Profiling Info for Benchmark Initialization"):
            in_runs = False
        elif line.startswith("Delegate internal:"):
            delegate = True
        elif line.startswith("Subgraph (index: ") and line.rstrip().endswith("profile:"):
            subgraph = int(re.search(r"\d+", line).group())
        elif (m := _OP_SECTION.match(line)) is not None:
            section, header = m.group(1), None
        elif section == "Run Order" and header is None and line.lower().startswith("node type,"):
            header = [_OP_FIELDS.get(c.strip().lower(), c.strip().lower()) for c in line.split(",")]
        elif section == "Run Order" and header is not None:
            row = _op_row(header, line)
            if row is None:
                section = None  # the table ended (a summary line follows it)
            else:
                rows.append({**row, "subgraph": subgraph, "delegate": delegate})
    return rows
