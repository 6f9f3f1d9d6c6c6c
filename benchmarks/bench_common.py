"""What every benchmark shares: provenance and machine info, logging, common arguments, Markdown tables and
atomic results files.

A benchmark imports it first (``python benchmarks/X.py`` puts ``benchmarks/`` on ``sys.path``); importing it
also puts the checkout on ``sys.path`` so that ``tflite_isp`` imports without installing. It needs only the
standard library: no TensorFlow, no NumPy, no ``tflite_isp``.

Every results file records, in ``report["provenance"]`` (JSON) and on the line under the Markdown title:

- the git commit of the checkout and whether tracked files differ from it (``dirty``; ``benchmarks/results/``
  is left out, so results rewritten by an earlier run do not count), with the changed files;
- the CPU model and its ISA flags from ``/proc/cpuinfo`` (the SIMD and matrix extensions in ``ISA_FLAGS``
  that the CPU has, and whether it has AVX2, AVX-512, VNNI and AMX);
- the threads the benchmark ran with, the logical cores, the cores this process may use (affinity) and the
  cgroup CPU limit; the load average at the start and at the last save.

Typical use::

    from bench_common import add_common_args, log, md_table, parser, save_results, start_report

    args = parser("my_bench", "What it measures.") ...
    report = start_report("my_bench", argv, threads=args.threads, settings={...}, results=[])
    ...
    save_results(args.out, "my_bench", report, markdown)       # after every model: JSON + Markdown, atomically
    finish_report(report, t_start)
    save_results(args.out, "my_bench", report, markdown)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

for _path in (REPO, HERE):  # run from a checkout without installing; benchmarks import each other
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# CPU flags recorded when present (x86 ``flags`` and Arm ``Features`` names of /proc/cpuinfo).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp",
             "i8mm", "bf16", "sve", "sve2")
DASH = "–"  # an empty figure in a table


# --- Logging and time -----------------------------------------------------------------------------------------------

def log(message: str) -> None:
    """One progress line on stderr, flushed (stdout is kept for the final table)."""
    print(message, file=sys.stderr, flush=True)


def log_step(i: int, n: int, what: str, t_start: float | None = None) -> None:
    """``=== i/n: what (s elapsed)``: the start of one model, file or row."""
    elapsed = f" ({time.perf_counter() - t_start:.0f} s elapsed)" if t_start is not None else ""
    log(f"=== {i}/{n}: {what}{elapsed}")


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z")


# --- Provenance: commit, CPU, cores, threads, load ------------------------------------------------------------------

def version(dist: str):
    """An installed distribution's version, or None."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_info(repo=REPO) -> dict:
    """The checkout's commit, branch and whether tracked files differ from the commit.

    ``dirty`` looks at tracked files only and leaves ``benchmarks/results/`` out. Without git or outside a
    repository every field is None.
    """
    info = {"commit": None, "branch": None, "dirty": None, "dirty_files": None}

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return info
        info["commit"] = head.stdout.strip()
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        info["branch"] = branch.stdout.strip() if branch.returncode == 0 else None
        status = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                     ":(top,exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return info
    if status.returncode == 0:
        files = [ln[3:].split(" -> ")[-1] for ln in status.stdout.splitlines() if ln.strip()]  # renames: new name
        info["dirty"], info["dirty_files"] = bool(files), files[:50]
    return info


def cpu_info(text: str | None = None) -> dict:
    """CPU model and ISA flags from /proc/cpuinfo (or ``text`` of that form).

    ``isa_flags`` lists the flags of ``ISA_FLAGS`` the CPU has; ``avx2``, ``avx512`` (avx512f), ``vnni``
    (any *vnni* flag) and ``amx`` (any amx_* flag) are None when no flags line was found.
    """
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    model, flags = None, None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if model is None and key in ("model name", "cpu model", "hardware") and value.strip():
            model = value.strip()
        elif flags is None and key in ("flags", "features"):
            flags = set(value.split())
    known = flags is not None
    flags = flags or set()
    return {"cpu_model": model or platform.processor() or "unknown",
            "isa_flags": [f for f in ISA_FLAGS if f in flags] if known else None,
            "avx2": "avx2" in flags if known else None,
            "avx512": "avx512f" in flags if known else None,
            "vnni": any("vnni" in f for f in flags) if known else None,
            "amx": any(f.startswith("amx") for f in flags) if known else None}


def usable_cores() -> int:
    """Cores this process may run on (its affinity), else the logical cores."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_limit():
    """The cgroup v2 CPU quota in cores (``/sys/fs/cgroup/cpu.max``), or None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else round(int(quota) / int(period), 2)
    except (OSError, ValueError):
        return None


def load_average():
    """The 1, 5 and 15 minute load averages, or None where the platform has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def provenance(threads=None, repo=REPO, cpuinfo: str | None = None) -> dict:
    """Commit, dirty flag, CPU model and ISA flags, threads, cores and load: what every results file records.

    ``threads``: what the benchmark ran with (a count, a list of counts, or None for the library's default).
    """
    return {**git_info(repo), **cpu_info(cpuinfo), "threads": threads, "logical_cores": os.cpu_count(),
            "usable_cores": usable_cores(), "cpu_limit": cpu_limit(), "load_average_start": load_average(),
            "load_average_end": None}


def _yes(v) -> str:
    return "?" if v is None else ("yes" if v else "no")


def provenance_line(report: dict) -> str:
    """The results page's provenance line (second paragraph)."""
    p = report.get("provenance")
    if not p:
        return "Provenance: not recorded (results written before benchmarks recorded it)."
    if p.get("commit") is None:
        commit = "commit unknown (not a git checkout)"
    else:
        commit = f"commit `{p['commit'][:12]}`" + (f" on {p['branch']}" if p.get("branch") else "")
        if p.get("dirty"):
            files = p.get("dirty_files") or []
            commit += (f", **dirty** ({len(files)} changed tracked file{'s' if len(files) != 1 else ''}: "
                       + ", ".join(files[:5]) + (", …" if len(files) > 5 else "") + ")")
        elif p.get("dirty") is False:
            commit += ", clean"
    isa = " ".join(p["isa_flags"]) if p.get("isa_flags") else "flags unknown"
    threads = p.get("threads")
    threads = ("library default" if threads is None else
               ", ".join(map(str, threads)) if isinstance(threads, (list, tuple)) else str(threads))
    limit = f", cgroup limit {p['cpu_limit']:g} cores" if p.get("cpu_limit") else ""
    return (f"Provenance: {commit}; CPU {p.get('cpu_model')} ({isa}; AVX2 {_yes(p.get('avx2'))}, AVX-512 "
            f"{_yes(p.get('avx512'))}, VNNI {_yes(p.get('vnni'))}, AMX {_yes(p.get('amx'))}); "
            f"{p.get('usable_cores')} usable of {p.get('logical_cores')} logical cores{limit}; threads {threads}; "
            f"load average {p.get('load_average_start')} at start"
            + (f", {p['load_average_end']} at end." if p.get("load_average_end") else "."))


def machine_info(**extra) -> dict:
    """CPU model, cores, memory, platform and the stack's versions (from metadata: nothing heavy is imported),
    plus ``extra`` fields."""
    mem = None
    try:
        mem = next((round(int(ln.split()[1]) / 2**20, 1) for ln in Path("/proc/meminfo").read_text().splitlines()
                    if ln.startswith("MemTotal:")), None)
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": cpu_info()["cpu_model"], "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
            "memory_gib": mem, "platform": platform.platform(), "python": platform.python_version(),
            "ai_edge_litert": version("ai-edge-litert"), "numpy": version("numpy"),
            "tensorflow": version("tensorflow"), **extra}


def tensorflow_info() -> dict:
    """GPUs TensorFlow sees and its op thread pools (0: TensorFlow's default, every core). Imports TensorFlow."""
    from tflite_isp.core.tf import tf

    return {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


# --- CPU time and other jobs ----------------------------------------------------------------------------------------

def process_cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads)."""
    t = os.times()
    return t.user + t.system


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's finished children."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def busy_cores(seconds: float = 1.0):
    """Cores busy on the whole machine over ``seconds`` (/proc/stat; steal counts as busy); None without /proc."""
    def sample():
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return sum(values), values[3] + values[4]  # all time, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = max(total1 - total0, 1)
    return round((os.cpu_count() or 1) * (total - (idle1 - idle0)) / total, 2)


def wait_for_quiet(quiet_cores: float, max_wait: float) -> dict:
    """Wait (at most ``max_wait`` s) until other jobs use under ``quiet_cores`` cores; returns what was seen."""
    t0, busy = time.perf_counter(), busy_cores()
    while busy is not None and busy > quiet_cores and time.perf_counter() - t0 < max_wait:
        time.sleep(2.0)
        busy = busy_cores()
    return {"others_busy_cores": busy, "waited_s": round(time.perf_counter() - t0, 1)}


# --- Arguments ------------------------------------------------------------------------------------------------------

def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The benchmark's parser, ``prog`` = ``benchmarks/<name>.py``."""
    return argparse.ArgumentParser(prog=f"benchmarks/{name}.py", description=description)


def _number(cast, test, what):
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text}")
        return value
    parse.__name__ = f"{what} {cast.__name__}"
    return parse


positive_int = _number(int, lambda v: v > 0, "positive")
nonnegative_int = _number(int, lambda v: v >= 0, "0 or more")
positive_float = _number(float, lambda v: v > 0, "positive")
nonnegative_float = _number(float, lambda v: v >= 0, "0 or more")


def comma_list(known=None, cast=str):
    """An argparse ``type``: ``"a,b"`` -> ``[cast(a), cast(b)]``; at least one item, each in ``known`` if given."""
    def parse(text):
        items = [s.strip() for s in str(text).split(",") if s.strip()]
        if not items:
            raise argparse.ArgumentTypeError("give at least one")
        bad = [s for s in items if known is not None and s not in known]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)} (known: {', '.join(known)})")
        try:
            return [cast(s) for s in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of {cast.__name__}: {text!r}") from None
    parse.__name__ = "comma-separated list"
    return parse


def size_hw(text: str) -> tuple:
    """An argparse ``type``: ``"544x960"`` -> ``(544, 960)`` (positive)."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be HxW (e.g. 544x960), not {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text!r}")
    return h, w


def add_common_args(p: argparse.ArgumentParser, *, out=RESULTS, out_help=None, threads=None, threads_help=None,
                    seed=None, quick_help=None) -> argparse.ArgumentParser:
    """``--out`` always (default ``out``; None: the benchmark decides, and says how in ``out_help``);
    ``--threads`` (LiteRT threads) when ``threads`` is given; ``--seed`` when ``seed`` is given; ``--quick`` (a
    smoke check) when ``quick_help`` is."""
    if threads is not None:
        p.add_argument("--threads", type=positive_int, default=threads,
                       help=(threads_help or "LiteRT interpreter threads") + f" (default {threads}).")
    if seed is not None:
        p.add_argument("--seed", type=int, default=seed, help=f"Seed of weights, inputs and data (default {seed}).")
    if quick_help:
        p.add_argument("--quick", action="store_true", help=quick_help)
    shown = "benchmarks/results" if out == RESULTS else out
    p.add_argument("--out", default=None if out is None else str(out),
                   help=out_help or (f"Results folder (default {shown})." if out is not None else "Results folder."))
    return p


def add_quiet_args(p: argparse.ArgumentParser, *, quiet_cores: float = 0.3, max_wait: float = 120.0,
                   what: str = "") -> argparse.ArgumentParser:
    """``--quiet-cores`` and ``--max-wait``: wait for other jobs before each measurement (``wait_for_quiet``)."""
    p.add_argument("--quiet-cores", type=nonnegative_float, default=quiet_cores,
                   help=f"{what}Before each measurement wait until other jobs use fewer cores than this "
                        f"(default {quiet_cores:g}).")
    p.add_argument("--max-wait", type=nonnegative_float, default=max_wait,
                   help=f"{what}Longest wait for a quiet machine before a measurement, s (default {max_wait:g}; "
                        "0: never wait).")
    return p


# --- Reports and results files --------------------------------------------------------------------------------------

def command(args: list) -> None:
    """A project command (``python -m`` and ``args``) as a child process in the repository, its progress shown live;
    a failure ends the benchmark in one line."""
    proc = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"error: {' '.join(map(str, args[:2]))} failed (exit {proc.returncode})")


def start_report(benchmark: str, argv=None, *, threads=None, machine: dict | None = None, **fields) -> dict:
    """A new report: name, command, start time, provenance, machine, load average at the start, then ``fields``.

    ``argv``: the benchmark's arguments (``sys.argv[1:]`` when None); ``threads``: see ``provenance``;
    ``machine``: extra machine fields (``tensorflow_info()``...).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    prov = provenance(threads)
    return {"benchmark": benchmark, "command": shlex.join(["python", f"benchmarks/{benchmark}.py", *argv]),
            "started_at": now(), "finished_at": None, "complete": False, "provenance": prov,
            "machine": machine_info(**(machine or {})), "load_average_start": prov["load_average_start"],
            "load_average_end": None, **fields}


def finish_report(report: dict, t_start: float, complete: bool = True) -> dict:
    """Mark the report finished: ``complete``, ``finished_at`` and ``wall_s`` from ``t_start`` (perf_counter)."""
    report["complete"] = complete
    report["finished_at"] = now()
    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    return report


def generated_by(report: dict) -> str:
    """The results page's first line: command, date, whether the run finished and its wall time."""
    return (f"Generated by `{report['command']}` on {report['finished_at'] or report['started_at']}"
            + ("" if report["complete"] else " (incomplete: run still going or interrupted)")
            + (f"; wall time {report['wall_s']:.0f} s" if report.get("wall_s") else "") + ".")


def header(report: dict) -> list:
    """The results page's opening paragraphs (``generated_by`` and ``provenance_line``) as Markdown lines."""
    return [generated_by(report), "", provenance_line(report)]


def results_dir(path) -> Path:
    """``path`` as a folder that exists (made if needed); exits with one line if it cannot be made."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SystemExit(f"error: {out}: cannot create the results folder ({err.strerror or err})") from None
    return out


def write_atomic(path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, flush it to disk, then rename it onto ``path``: a
    reader sees the old file or the new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp{os.getpid()}-", suffix=f"-{path.name}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_results(out, name: str, report: dict, markdown=None) -> tuple:
    """Write ``<out>/<name>.json`` (the report) and ``<out>/<name>.md`` (``markdown(report)``, or the text given),
    each atomically, after stamping the load average now as the end one. Returns the paths written."""
    end = load_average()
    report["load_average_end"] = end
    if isinstance(report.get("provenance"), dict):
        report["provenance"]["load_average_end"] = end
    out = results_dir(out)
    paths = [out / f"{name}.json"]
    write_atomic(paths[0], json.dumps(report, indent=2, default=str) + "\n")
    if markdown is not None:
        paths.append(out / f"{name}.md")
        write_atomic(paths[1], markdown(report) if callable(markdown) else markdown)
    return tuple(paths)


# --- Markdown -------------------------------------------------------------------------------------------------------

def md_table(head, rows, align: str = "") -> list:
    """Lines of a Markdown table. ``align``: one letter per column, ``l`` (the default for missing letters),
    ``r`` or ``c``. Cells are ``str()``-ed (None: "–"); a row shorter than ``head`` is padded with empty cells.
    """
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    n = len(head)
    lines = ["| " + " | ".join(map(str, head)) + " |",
             "|" + "|".join(marks[(align[i] if i < len(align) else "l")] for i in range(n)) + "|"]
    for row in rows:
        cells = [DASH if c is None else str(c) for c in row]
        cells += [""] * (n - len(cells))
        lines.append("|" + "|".join(f" {c} " if c else " " for c in cells) + "|")
    return lines


def fmt(value, spec: str = "") -> str:
    """``format(value, spec)``, or "–" for None."""
    return DASH if value is None else format(value, spec)


def fmt_ms(v) -> str:
    """Milliseconds: ``1,234`` from 100, ``12.3`` from 1, ``0.123`` below; "–" for None."""
    return DASH if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.3f}")


def fmt_bytes(n, digits: int = 2) -> str:
    """``12.34 MiB`` from 1 MiB, else ``5.6 KiB`` (one digit fewer); "–" for None."""
    if n is None:
        return DASH
    return f"{n / 2**20:.{digits}f} MiB" if n >= 2**20 else f"{n / 2**10:.{max(digits - 1, 0)}f} KiB"


def fmt_params(n) -> str:
    """Parameter counts: ``7.76 M``, ``485 k`` (from 100,000), ``4,652``; "–" for None."""
    if n is None:
        return DASH
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e5 else f"{n:,}"


def fmt_pct(v, sig: int | None = None) -> str:
    """A fraction as a percentage: ``64 %`` from 10 %, ``4.2 %`` below; with ``sig``, that many significant
    digits and a bare ``0`` for zero (for small shares); "–" for None."""
    if v is None:
        return DASH
    if sig is not None:
        return "0" if v == 0 else f"{100 * v:.{sig}g} %"
    return f"{100 * v:.0f} %" if v >= 0.1 else f"{100 * v:.1f} %"
