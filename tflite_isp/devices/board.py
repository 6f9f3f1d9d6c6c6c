"""A Linux board (a Jetson) over ssh: check it, copy files into a cache keyed by SHA-256, time a ``.tflite`` there.

Everything goes through the OpenSSH client in BatchMode, so nothing ever prompts: host names, users, ports, keys
and host keys come from the user's ssh config (or ``ssh_config``). Every step has a timeout; failures are one line.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import subprocess
from pathlib import Path

from tflite_isp.core.errors import UserError, fail
from tflite_isp.devices import bench_output, tegrastats
from tflite_isp.run import flatbuffer
from tflite_isp.run.records import Measured, full_hd_plan

TOOLS = ("timing", "litert", "benchmark_model")
TIMING_SCRIPT = Path(__file__).parent.parent / "run" / "timing.py"  # shipped to the board as is
PIP_NAMES = {"ai_edge_litert": "ai-edge-litert", "numpy": "numpy"}

PROGRAMS = Path(__file__).with_name("board_programs")


def program(name: str) -> str:
    """Source of a board program (``board_programs/NAME.py``), run there as ``python -c SOURCE``."""
    return (PROGRAMS / f"{name}.py").read_text()


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _last_json(text: str):
    """The JSON object on the last line of ``text`` (a chatty shell rc file may print before it), or None."""
    try:
        value = json.loads(_last_line(text))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _ssh_hint(line: str) -> str:
    if "Permission denied" in line:
        return "; the board refused the key (keys come from your ssh config; no passwords are asked for)"
    if "Host key verification failed" in line:
        return "; the board's host key is not in known_hosts (ssh to it once by hand)"
    return ""


class Board:
    """One board reached with ``ssh [-F ssh_config] HOST``; ``python`` is the board's interpreter."""

    def __init__(self, host: str, *, ssh_config=None, python: str = "python3", timeout: float = 600, ssh: str = "ssh",
                 connect_timeout: int = 10):
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise UserError(f"bad board host {host!r}: give an ssh host name or alias")
        if ssh_config is not None and not Path(ssh_config).is_file():
            raise fail(ssh_config, "ssh config file not found")
        self.host, self.python, self.timeout = host, python, float(timeout)
        self._ssh = [ssh, "-T", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(connect_timeout)}",
                     "-o", "LogLevel=ERROR", "-o", "ServerAliveInterval=15",
                     *(["-F", str(ssh_config)] if ssh_config is not None else []), "--", host]
        self._info = None
        self.uploads: list = []  # cache names this object copied to the board, in order

    # --- ssh -------------------------------------------------------------------------------------------------------

    def run(self, command, *, step: str, data: bytes | None = None, timeout: float | None = None):
        """Run ``command`` (a list, quoted for the remote shell, or a shell string) on the board.

        Returns the CompletedProcess (text); ssh's own failures (exit 255) and timeouts raise a one-line UserError.
        """
        if not isinstance(command, str):
            command = shlex.join(str(a) for a in command)
        limit = timeout or self.timeout
        try:
            # own session: on a timeout the whole group goes (a ProxyCommand child would keep the pipes open)
            stdin = subprocess.DEVNULL if data is None else subprocess.PIPE
            proc = subprocess.Popen([*self._ssh, command], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except FileNotFoundError:
            raise UserError(f"{self.host}: {self._ssh[0]} not found (the OpenSSH client is needed)") from None
        try:
            out, err = proc.communicate(data, timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            raise fail(self.host, f"{step} did not finish within {limit:g} s") from None
        result = subprocess.CompletedProcess(command, proc.returncode, out.decode("utf-8", "replace"),
                                             err.decode("utf-8", "replace"))
        if result.returncode == 255:
            line = _last_line(result.stderr) or "ssh exited with status 255"
            raise fail(self.host, f"ssh failed while {step}: {line}{_ssh_hint(line)}")
        return result

    # --- checks and files ------------------------------------------------------------------------------------------

    def info(self) -> dict:
        """What the board is (machine, python, LiteRT, tegrastats, Jetson model and L4T release, cache dir); cached."""
        if self._info is None:
            res = self.run([self.python, "-c", program("probe")], step="checking the board")
            found = _last_json(res.stdout) if res.returncode == 0 else None
            if found is None:
                line = _last_line(res.stderr)
                if res.returncode == 127:
                    raise fail(self.host, f"{self.python} not found on the board (set --board_python)")
                raise fail(self.host, f"checking the board with {self.python} failed ({line or 'no output'})")
            self._info = {"host": self.host, "board_python": self.python, **found}
        return self._info

    def check(self, tool: str = "timing") -> dict:
        """``info()``, refusing a board whose python cannot run ``tool`` (timing and litert need ai_edge_litert)."""
        info = self.info()
        if tool in ("timing", "litert") and info["missing"]:
            name = info["missing"][0]
            old = "; it needs Python >= 3.10" if name == "ai_edge_litert" and _version(info["python"]) < (3, 10) else ""
            raise fail(self.host, f"{self.python} on the board lacks {name} (pip install {PIP_NAMES[name]}; "
                                  f"aarch64 wheels exist{old})")
        return info

    def upload(self, local, name: str, *, mode: str = "644") -> str:
        """Copy ``local`` into the board's cache as ``name`` unless it is already there; the remote path."""
        return self.ensure({name: (local, mode)})[name]

    def ensure(self, files: dict) -> dict:
        """``{name: (local path, mode)}`` -> ``{name: remote path}``: one look into the cache, then copy what is not
        there (by name: callers put the SHA-256 in it)."""
        cache = self.info()["cache"]
        look = f"cd {shlex.quote(cache)} && for f in {shlex.join(files)}; do [ -f \"$f\" ] && echo \"$f\"; done; true"
        res = self.run(look, step="looking into the board's cache")
        present = set(res.stdout.split()) if res.returncode == 0 else set()
        for name, (local, mode) in files.items():
            if name not in present:
                self._copy(local, f"{cache}/{name}", name, mode)
        return {name: f"{cache}/{name}" for name in files}

    def _copy(self, local, remote: str, name: str, mode: str) -> None:
        data = Path(local).read_bytes()
        # a connection lost mid-copy would leave a short file: check the size before the rename
        script = (f"set -e; t={shlex.quote(remote)}.tmp$$; trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; "
                  f"[ \"$(wc -c < \"$t\")\" -eq {len(data)} ]; chmod {mode} \"$t\"; mv \"$t\" {shlex.quote(remote)}")
        res = self.run(script, step=f"copying {name}", data=data)
        if res.returncode != 0:
            raise fail(self.host, f"copying {name} to {self.info()['cache']} failed "
                                  f"({_last_line(res.stderr) or f'exit status {res.returncode}'})")
        self.uploads.append(name)

    # --- timing ----------------------------------------------------------------------------------------------------

    def measure(self, path, shape=None, *, tool: str = "timing", binary=None, threads: int = 2, runs: int = 20,
                warmup: int = 3) -> dict:
        """Time ``path`` on the board with ``tool``, ``shape`` resizing a dynamic input; one record.

        ``tool``: ``timing`` (the project's timing.py), ``litert`` (ai_edge_litert's benchmark_litert_model) or
        ``benchmark_model`` (the classic binary ``binary``, copied there; giving it implies that tool). The record:
        ms (median per invocation), p95_ms, init_ms, peak_rss_mb, runtime, note, result (the tool's own figures),
        tegrastats (its summary, None without it), tool, threads, runs, warmup, input_shape, sha256, board, uploaded.
        """
        path, tool = Path(path), "benchmark_model" if binary else tool
        if tool not in TOOLS:
            raise UserError(f"tool must be one of {', '.join(TOOLS)}, not {tool!r}")
        if tool == "benchmark_model" and not (binary and Path(binary).is_file()):
            raise fail(binary or "benchmark_model", "benchmark_model binary not found")
        if not path.is_file():
            raise fail(path, "file not found")
        if runs < 1 or warmup < 0 or threads < 1:
            raise UserError(f"need runs >= 1, warmup >= 0 and threads >= 1, not {runs}, {warmup}, {threads}")
        resize = _resize(path, shape)
        if resize and tool == "litert":
            raise fail(path, f"the litert tool cannot resize its dynamic input to {_fmt(shape)}: use the timing tool "
                             "or a fixed-size file")
        info = self.check(tool)
        digest, before = sha256(path), len(self.uploads)
        files = {f"{digest}.tflite": (path, "644")}
        if tool == "timing":
            files[f"timing-{sha256(TIMING_SCRIPT)[:16]}.py"] = (TIMING_SCRIPT, "644")
        elif tool == "benchmark_model":
            files[f"benchmark_model-{sha256(binary)[:16]}"] = (binary, "755")
        model, *helper = self.ensure(files).values()
        cmd, result = self._command(tool, model, helper[0] if helper else None, shape, resize, threads, runs, warmup)
        raw = self._run_timed(cmd, result, step=f"timing {path.name}")
        record = _READERS[tool](self, path, model, raw)
        if raw.get("tegrastats") is not None:

            record["tegrastats"] = tegrastats.summarise(raw["tegrastats"])
        else:
            record["tegrastats"], record["note"] = None, _join(record.get("note"), "no tegrastats")
        board = {k: info.get(k) for k in ("host", "machine", "model", "l4t", "python", "cpus")}
        return {**record, "tool": tool, "threads": threads, "runs": runs, "warmup": warmup,
                "input_shape": list(shape) if shape is not None else None, "sha256": digest, "board": board,
                "uploaded": self.uploads[before:]}

    def _command(self, tool, model, helper, shape, resize, threads, runs, warmup) -> tuple:
        """(argv on the board, name of the result file the tool writes in ``{work}`` or None)."""
        if tool == "timing":
            cmd = [self.python, helper, model, "--threads", threads, "--runs", runs, "--warmup", warmup]
            return [str(a) for a in cmd + (["--shape", _fmt(shape)] if shape is not None else [])], None
        if tool == "litert":
            cmd = [self.python, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}",
                   "--num_runs", runs, "--warmup_runs", warmup, "--num_threads", threads,
                   "--result_json", "{work}/result.json"]
            return [str(a) for a in cmd], "result.json"
        cmd = [helper, f"--graph={model}", f"--num_threads={threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}",
               "--warmup_min_secs=0", "--min_secs=0", "--report_peak_memory_footprint=true"]
        if resize:
            cmd += [f"--input_layer={resize[0]}", f"--input_layer_shape={','.join(map(str, shape))}"]
        return cmd, None

    def _run_timed(self, cmd: list, result, *, step: str) -> dict:
        """The runner's JSON: rc, stdout, stderr, the result file, the child's peak RSS, tegrastats lines."""
        inner = max(1, int(self.timeout * 0.9))  # the board stops the tool before ssh gives up on it
        spec = json.dumps({"cmd": cmd, "result": result, "timeout": inner})
        res = self.run([self.python, "-c", program("runner"), spec], step=step)
        raw = _last_json(res.stdout) if res.returncode == 0 else None
        if raw is None:
            raise fail(self.host, f"{step} failed ({_last_line(res.stderr) or f'exit status {res.returncode}'})")
        if raw["timed_out"]:
            raise fail(self.host, f"{step} did not finish within {inner} s on the board")
        if raw["error"]:
            raise fail(self.host, f"{step}: cannot start {raw['error']}")
        return raw


def _version(text: str) -> tuple:
    try:
        return tuple(int(p) for p in text.split(".")[:2])
    except (AttributeError, ValueError):
        return (0, 0)


def _fmt(shape) -> str:
    return "x".join(map(str, shape))


def _join(*notes) -> str | None:
    return "; ".join(n for n in notes if n) or None


def _resize(path: Path, shape) -> tuple | None:
    """(input name,) when ``shape`` must resize the file's dynamic input; None when the file's own shape is run."""
    if shape is None:
        return None

    tensor = flatbuffer.read(path).inputs[0]
    signature = tuple(tensor.shape_signature)
    if -1 in signature:
        return (tensor.name,)
    if tuple(shape) != signature:
        raise fail(path, f"shape {_fmt(shape)} does not fit the fixed input {_fmt(signature)}")
    return None


def _problem(raw: dict, remote: str, local: Path) -> str:
    """The tool's own error line (``error: FILE: problem`` from timing.py, else the last stderr line)."""
    lines = [ln.strip() for ln in (raw.get("stderr") or "").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):].replace(f"{remote}: ", "").replace(remote, local.name)
    for line in reversed(lines):
        if "ERROR" in line or "Error" in line:
            return line.replace(remote, local.name)
    last = lines[-1].replace(remote, local.name) if lines else "no output"
    return f"exit status {raw['rc']}: {last}"


def _rss_mb(raw: dict) -> float | None:
    return round(raw["maxrss_kb"] / 1024, 1) if raw.get("maxrss_kb") else None


def _read_timing(board: Board, path: Path, remote: str, raw: dict) -> dict:
    found = _last_json(raw["stdout"]) if raw["rc"] == 0 else None
    if found is None:
        raise fail(path, f"timing on {board.host} failed ({_problem(raw, remote, path)})")
    return {"ms": found["median_ms"], "p95_ms": found["p95_ms"], "init_ms": found["init_ms"],
            "peak_rss_mb": found["peak_rss_mb"], "runtime": found.get("runtime"), "result": found}


def _read_litert(board: Board, path: Path, remote: str, raw: dict) -> dict:
    try:
        found = json.loads(raw["result"]) if raw["rc"] == 0 and raw["result"] else None
    except ValueError:
        found = None
    if not isinstance(found, dict) or "latency" not in found:
        raise fail(path, f"benchmark_litert_model on {board.host} failed ({_problem(raw, remote, path)})")
    lat = found["latency"]
    litert = (board.info() or {}).get("litert")
    note = None if found.get("fully_accelerated", True) else "not fully accelerated"
    return {"ms": lat["median_ms"], "p95_ms": lat.get("p95_ms"), "init_ms": lat.get("init_ms"),
            "peak_rss_mb": _rss_mb(raw), "runtime": f"ai-edge-litert {litert} CompiledModel" if litert else None,
            "note": note, "result": found}


def _read_benchmark(board: Board, path: Path, remote: str, raw: dict) -> dict:

    text = f"{raw.get('stdout') or ''}\n{raw.get('stderr') or ''}"
    out = bench_output.parse(text)
    problem = bench_output.diagnose(out, raw["rc"])
    if problem or out.ms is None:
        raise fail(path, f"benchmark_model on {board.host} failed ({problem or _problem(raw, remote, path)})")
    return {"ms": out.ms, "p95_ms": out.p95_ms, "init_ms": out.init_ms,
            "peak_rss_mb": out.peak_memory_mb if out.peak_memory_mb is not None else _rss_mb(raw),
            "runtime": "benchmark_model", "note": bench_output.delegation_note(out), "result": out.to_dict()}


_READERS = {"timing": _read_timing, "litert": _read_litert, "benchmark_model": _read_benchmark}

_TOOL_NAMES = {"timing": "LiteRT XNNPACK", "litert": "LiteRT CompiledModel CPU"}


class BoardRuntime:
    """``jetson:HOST`` as a runtime source for score: each file timed on the board at Full HD (see ``full_hd_plan``)."""

    def __init__(self, host: str, *, threads: int = 2, runs: int = 20, warmup: int = 3, ssh_config=None,
                 python: str = "python3", binary=None, tool: str = "timing", timeout: float = 600):
        self.board = Board(host, ssh_config=ssh_config, python=python, timeout=timeout)
        self.tool = "benchmark_model" if binary else tool
        if self.tool not in TOOLS:
            raise UserError(f"tool must be one of {', '.join(TOOLS)}, not {tool!r}")
        self.binary, self.threads, self.runs, self.warmup = binary, threads, runs, warmup

    @property
    def label(self) -> str:
        what = _TOOL_NAMES.get(self.tool) or f"benchmark_model {Path(self.binary).name}"
        machine = (self.board._info or {}).get("machine")
        parts = [machine, what, f"{self.threads} threads", f"median of {self.runs} runs"]
        return f"jetson:{self.board.host} ({', '.join(p for p in parts if p)})"

    def measure(self, entry):
        """A ``records.Measured`` for one Full HD frame: ms per invocation x invocations per frame."""

        shape, calls = full_hd_plan(entry.input_shape)
        record = self.board.measure(entry.path, shape, tool=self.tool, binary=self.binary, threads=self.threads,
                                    runs=self.runs, warmup=self.warmup)
        source = f"jetson:{self.board.host}"
        if calls > 1:
            source += f", {calls} tiles of {shape[1]}x{shape[2]} per Full HD frame"
        return Measured(record["ms"] * calls, source, {**record, "invocations_per_frame": calls,
                                                       "ms_per_invocation": record["ms"]})


__all__ = ["TOOLS", "Board", "BoardRuntime", "sha256"]
