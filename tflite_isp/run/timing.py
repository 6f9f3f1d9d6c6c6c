"""Local runtime of one ``.tflite`` file: LiteRT interpreter latency and memory, measured in a fresh process.

    python -m tflite_isp.timing FILE [--threads 2] [--runs 20] [--warmup 3] [--shape 1xHxWx4]
    python timing.py FILE ...            # the same file copied alone to a board (e.g. a Jetson)

This module imports only the standard library, NumPy and ``ai_edge_litert``, so it runs on its own. It loads
FILE into ``ai_edge_litert.interpreter.Interpreter`` (XNNPACK, the default delegate, with ``--threads`` threads),
fills every input once with random data of its dtype (float: uniform in [0, 1]; int8/uint8/int16: random
integers over the dtype's range), does ``--warmup`` untimed invokes and then ``--runs`` invokes, each timed with
``time.perf_counter_ns``. Only ``invoke()`` is timed: setting the input and reading the output are not. It prints
one JSON object on stdout. On an error (missing file, a file LiteRT cannot load, a bad shape) it prints one line,
``error: FILE: problem``, on stderr and exits with status 2 (LiteRT's own ``INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.`` may come before it on stderr).

A file with a dynamic input (-1 in its shape signature) needs ``--shape``, which resizes the first input; a fixed
file accepts only its own shape. Run one file per process (``measure_subprocess``): the peak RSS is the peak of
the whole process, so a process that loaded anything else first reports that too.

Result schema (times in milliseconds, rounded to 3 decimals; memory in MiB, 2**20 bytes):

    file             the path as given
    size_bytes       the file's size
    threads          interpreter threads (num_threads)
    runs, warmup     timed and untimed invokes
    input_shape      the first input's shape as run, e.g. [1, 544, 960, 4]
    shape_signature  the first input's shape in the file; -1 for a dynamic dimension
    input_dtype      the first input's dtype, e.g. "float32" or "int8"
    init_ms          Interpreter construction + allocate_tensors (+ resize and a second allocate with --shape)
    warmup_first_ms  the first warm-up invoke (null with --warmup 0); later warm-ups are not reported
    median_ms, p95_ms, mean_ms, min_ms, max_ms, std_ms
                     over the timed invokes; p95 is NumPy's linear percentile, std the sample deviation (ddof=1;
                     0 for one run)
    peak_rss_mb      peak resident set of the process: VmHWM of /proc/self/status, else getrusage's ru_maxrss.
                     Not ru_maxrss first: on Linux a child's ru_maxrss keeps its parent's resident set at fork, so
                     a child of a process that holds TensorFlow would report that process's size.
    rss_before_mb    resident set just before the model was loaded (VmRSS of /proc/self/status, else ru_maxrss),
                     i.e. Python, NumPy and the LiteRT library
    rss_delta_mb     peak_rss_mb - rss_before_mb: what the model cost (weights, arena, XNNPACK packed weights, and
                     the random input arrays held by NumPy)
    runtime          "ai-edge-litert X.Y.Z"
"""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # run as a script: sibling modules (metrics.py, data.py, ...) must not shadow installed packages

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

KEYS = ("file", "size_bytes", "threads", "runs", "warmup", "input_shape", "shape_signature", "input_dtype", "init_ms",
        "warmup_first_ms", "median_ms", "p95_ms", "mean_ms", "min_ms", "max_ms", "std_ms", "peak_rss_mb",
        "rss_before_mb", "rss_delta_mb", "runtime")


class TimingError(RuntimeError):
    """A file that cannot be measured; ``str()`` is ``FILE: problem`` (``.path`` and ``.problem`` kept apart)."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem


# --- Memory --------------------------------------------------------------------------------------------------------

def _proc_status_mb(field: str) -> float | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MiB; None without /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**10
    except (OSError, ValueError, IndexError):
        pass
    return None


def _maxrss_mb() -> float:
    """getrusage's ru_maxrss in MiB (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def peak_rss_mb() -> float:
    """Peak resident set of this process's own address space so far, MiB (VmHWM, else ru_maxrss)."""
    peak = _proc_status_mb("VmHWM")
    return _maxrss_mb() if peak is None else peak


def current_rss_mb() -> float:
    """Resident set now, MiB (VmRSS, else the peak so far)."""
    rss = _proc_status_mb("VmRSS")
    return _maxrss_mb() if rss is None else rss


# --- Inputs --------------------------------------------------------------------------------------------------------

def parse_shape(text: str) -> tuple:
    """``1x544x960x4`` -> (1, 544, 960, 4); ValueError unless every dimension is a positive integer."""
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"shape must look like 1x544x960x4, not {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"shape must have positive dimensions, not {text!r}")
    return dims


def random_input(shape, dtype, rng) -> np.ndarray:
    """Random data of ``dtype``: floats in [0, 1], integers over the dtype's range, zeros otherwise."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape, dtype=np.float32).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return np.zeros(shape, dtype)


def _fit_shape(path, signature: tuple, shape) -> tuple | None:
    """The shape to resize the first input to (None: keep the file's); TimingError when it does not fit."""
    dynamic = any(d == -1 for d in signature)
    if shape is None:
        if dynamic:
            raise TimingError(path, f"dynamic input {_fmt(signature)}; give --shape")
        return None
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(signature) or any(s not in (-1, d) for s, d in zip(signature, shape)):
        kind = "dynamic" if dynamic else "fixed"
        raise TimingError(path, f"--shape {_fmt(shape)} does not fit the {kind} input {_fmt(signature)}")
    return shape if dynamic else None


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape)


# --- Measurement ---------------------------------------------------------------------------------------------------

def runtime_version() -> str:
    """``ai-edge-litert X.Y.Z`` of the installed wheel."""
    from importlib import metadata  # lazy: this script also runs standalone on a board

    try:
        return f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except metadata.PackageNotFoundError:
        import ai_edge_litert  # lazy: this script also runs standalone on a board

        return f"ai-edge-litert {getattr(ai_edge_litert, '__version__', 'unknown')}"


def _load(path, threads: int, shape):
    """(interpreter, shape signature, init seconds): construct, allocate, resize a dynamic input when asked."""
    from ai_edge_litert.interpreter import Interpreter  # lazy: this script also runs standalone on a board

    t0 = time.perf_counter_ns()
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise TimingError(path, f"LiteRT cannot load it ({_first_line(err)})") from None
    detail = interpreter.get_input_details()[0]
    signature = tuple(int(d) for d in detail.get("shape_signature", detail["shape"]))
    resize = _fit_shape(path, signature, shape)
    if resize is not None:
        try:
            interpreter.resize_tensor_input(detail["index"], list(resize), strict=True)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise TimingError(path, f"cannot run at {_fmt(resize)} ({_first_line(err)})") from None
    return interpreter, signature, (time.perf_counter_ns() - t0) / 1e9


def _first_line(err) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _invoke_ns(interpreter, path) -> int:
    """One timed ``invoke()``, nanoseconds."""
    t0 = time.perf_counter_ns()
    try:
        interpreter.invoke()
    except (ValueError, RuntimeError) as err:
        raise TimingError(path, f"invoke failed ({_first_line(err)})") from None
    return time.perf_counter_ns() - t0


def _stats(times_ns) -> dict:
    """median, p95 (linear), mean, min, max and sample std of the timed invokes, ms."""
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    std = float(np.std(ms, ddof=1)) if ms.size > 1 else 0.0
    values = {"median_ms": np.median(ms), "p95_ms": np.percentile(ms, 95), "mean_ms": ms.mean(),
              "min_ms": ms.min(), "max_ms": ms.max(), "std_ms": std}
    return {k: round(float(v), 3) for k, v in values.items()}


def measure(path, *, threads: int = 2, runs: int = 20, warmup: int = 3, shape=None, seed: int = 0) -> dict:
    """Measure ``path`` in this process (see the module docstring for the keys); TimingError on a bad file."""
    if runs < 1 or warmup < 0 or threads < 1:
        raise ValueError(f"need runs >= 1, warmup >= 0 and threads >= 1, not {runs}, {warmup}, {threads}")
    path = Path(path)
    if not path.is_file():
        raise TimingError(path, "file not found")
    # lazy: this script also runs standalone on a board
    import ai_edge_litert.interpreter  # noqa: F401  (loaded before the baseline, so the library is not counted)

    rss_before = current_rss_mb()
    interpreter, signature, init_s = _load(path, threads, shape)
    rng = np.random.default_rng(seed)
    inputs = interpreter.get_input_details()
    for detail in inputs:
        interpreter.set_tensor(detail["index"], random_input(tuple(detail["shape"]), detail["dtype"], rng))
    warm = [_invoke_ns(interpreter, path) for _ in range(warmup)]
    times = [_invoke_ns(interpreter, path) for _ in range(runs)]
    peak = peak_rss_mb()
    return {
        "file": str(path), "size_bytes": path.stat().st_size, "threads": threads, "runs": runs, "warmup": warmup,
        "input_shape": [int(d) for d in inputs[0]["shape"]], "shape_signature": list(signature),
        "input_dtype": np.dtype(inputs[0]["dtype"]).name, "init_ms": round(init_s * 1e3, 3),
        "warmup_first_ms": round(warm[0] / 1e6, 3) if warm else None, **_stats(times),
        "peak_rss_mb": round(peak, 1), "rss_before_mb": round(rss_before, 1),
        "rss_delta_mb": round(peak - rss_before, 1), "runtime": runtime_version(),
    }


def measure_subprocess(path, *, threads: int = 2, runs: int = 20, warmup: int = 3, shape=None,
                       python: str = sys.executable, timeout: float = 600) -> dict:
    """``measure`` in a fresh interpreter running this file by path (no install needed).

    Raises TimingError (a RuntimeError) on failure: ``str()`` is the child's error line without ``error: ``,
    i.e. ``FILE: problem``; ``.problem`` alone is the part after the file.
    """
    cmd = [python, str(Path(__file__).resolve()), str(path), "--threads", str(threads), "--runs", str(runs),
           "--warmup", str(warmup)]
    if shape is not None:
        cmd += ["--shape", shape if isinstance(shape, str) else _fmt(shape)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimingError(path, f"timing did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        raise _child_error(path, proc)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise TimingError(path, f"timing printed no JSON ({proc.stdout.strip()[-200:]!r})") from None


def _child_error(path, proc) -> TimingError:
    """The child's ``error: FILE: problem`` line as a TimingError, else its last stderr line and exit status."""
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith(f"error: {path}: "):
            return TimingError(path, line[len(f"error: {path}: "):])
        if line.startswith("error: "):
            return TimingError(path, line[len("error: "):])
    last = lines[-1] if lines else "no output"
    return TimingError(path, f"timing process exited with status {proc.returncode} ({last})")


# --- Command line --------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m tflite_isp.timing",
                                description="Latency and memory of one .tflite file with the LiteRT interpreter "
                                            "(XNNPACK); prints one JSON object.")
    p.add_argument("file", help="The .tflite file.")
    p.add_argument("--threads", type=int, default=2, help="Interpreter threads (default 2).")
    p.add_argument("--runs", type=int, default=20, help="Timed invokes (default 20).")
    p.add_argument("--warmup", type=int, default=3, help="Untimed invokes before timing (default 3).")
    p.add_argument("--shape", default=None, help="Input shape for a dynamic input, e.g. 1x544x960x4.")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.runs < 1 or args.warmup < 0 or args.threads < 1:
            raise TimingError(args.file, "--runs and --threads must be at least 1 and --warmup at least 0")
        try:
            shape = parse_shape(args.shape) if args.shape is not None else None
        except ValueError as err:
            raise TimingError(args.file, f"--shape: {err}") from None
        result = measure(args.file, threads=args.threads, runs=args.runs, warmup=args.warmup, shape=shape)
    except TimingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


__all__ = ["KEYS", "TimingError", "measure", "measure_subprocess", "parse_shape"]

if __name__ == "__main__":
    sys.exit(main())
