"""``python -m tflite_isp.jetson``: time ``.tflite`` files on Jetson boards over ssh (for ``--runtime jetson:HOST``).

    python -m tflite_isp.jetson MODEL [MODEL ...] --host HOST [--host HOST2 ...]
        [--tool timing|litert | --benchmark_binary PATH] [--threads 4] [--runs 20] [--warmup 3]
        [--out FILE] [--ssh_config FILE] [--board_python python3]

A MODEL is what score takes (an export folder, a run directory, a ``.tflite`` with ``--recipe``). Each HOST is a
name ssh knows (an alias of your ssh config); boards run in parallel, files one after another on each board, at
Full HD (a fixed-size file once per tile). The JSON (``records.write_devices``) holds one section per board,
``jetson:HOST``, with its one-line ``error`` when it failed. Exit 2 on bad input, 1 when any board or file failed.
"""
from __future__ import annotations

import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from absl import flags

from tflite_isp.core import cli
from tflite_isp.core.errors import UserError
from tflite_isp.devices.board import BoardRuntime
from tflite_isp.run import entries as entries_mod
from tflite_isp.run import records

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("host", None, "Board to time on, as ssh knows it (a Host alias of your ssh config, or "
                                        "user@address); repeat for several boards.")
flags.DEFINE_enum("tool", "timing", ["timing", "litert"], "What times the file on the board: the project's timing "
                                                          "script or ai_edge_litert's benchmark_litert_model "
                                                          "(--benchmark_binary replaces both).")


def measure_host(runtime, entries, log=None) -> dict:
    """One board's ``device_doc``: every entry timed on it (a file that fails gets an ``error`` record, as on
    Android); a board that cannot be used gets the document's ``error`` line."""

    spec = f"jetson:{runtime.board.host}"
    try:
        info = runtime.board.check(runtime.tool)
    except UserError as err:
        return records.device_doc(runtime.label, {}, {"host": runtime.board.host}, error=str(err))
    models = {}
    for entry in entries:
        try:
            m = runtime.measure(entry)
        except UserError as err:
            models[entry.name] = {"error": str(err), "sha256": entry.keys()[-1]}
            _say(log, f"{spec}  {entry.name}: FAILED {err}")
            continue
        d, calls = m.details, m.details["invocations_per_frame"]
        models[entry.name] = records.model_record(
            m.ms, p95_ms=_scaled(d.get("p95_ms"), calls), init_ms=d.get("init_ms"),
            peak_memory_mb=d.get("peak_rss_mb"), sha256=d["sha256"], file=str(entry.path),
            ms_per_invocation=d["ms_per_invocation"], invocations_per_frame=calls, input_shape=d["input_shape"],
            tool=d["tool"], runtime=d.get("runtime"), tegrastats=d["tegrastats"], note=d.get("note"))
        _say(log, f"{spec}  {entry.name}: {m.ms:.1f} ms per Full HD frame")
    device = {**{k: v for k, v in info.items() if k != "missing"}, "tool": runtime.tool, "threads": runtime.threads,
              "runs": runtime.runs, "warmup": runtime.warmup}
    return records.device_doc(runtime.label, models, device)


def measure_hosts(hosts, entries, *, tool: str = "timing", binary=None, threads: int = 2, runs: int = 20,
                  warmup: int = 3, ssh_config=None, python: str = "python3", log=None) -> dict:
    """``{"jetson:HOST": device_doc}`` for every host, the boards timed in parallel."""

    boards = [BoardRuntime(h, threads=threads, runs=runs, warmup=warmup, ssh_config=ssh_config, python=python,
                           binary=binary, tool=tool) for h in dict.fromkeys(hosts)]
    with ThreadPoolExecutor(max_workers=len(boards) or 1) as pool:
        docs = list(pool.map(lambda b: measure_host(b, entries, log), boards))
    return {f"jetson:{b.board.host}": doc for b, doc in zip(boards, docs)}


def _scaled(value, calls):
    return None if value is None else round(value * calls, 3)


def _say(log, line: str) -> None:
    if log is not None:
        log.write(line + "\n")  # one write per line: boards report from their own threads
        log.flush()


def table(devices: dict) -> str:
    """A short plain-text table: one row per board and model (or the board's error)."""
    rows = [("board", "model", "ms/frame", "p95", "peak MB", "power W", "note")]
    for spec, doc in devices.items():
        if doc.get("error"):
            rows.append((spec, "-", "-", "-", "-", "-", f"ERROR {doc['error']}"))
            continue
        for name, r in doc["models"].items():
            if "error" in r:
                rows.append((spec, name, "-", "-", "-", "-", f"FAILED {r['error']}"))
                continue
            power = (r.get("tegrastats") or {}).get("power_mw_mean")
            rows.append((spec, name, f"{r['ms']:.1f}", _num(r.get("p95_ms")), _num(r.get("peak_memory_mb")),
                         _num(power and power / 1000, 2), r.get("note") or ""))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def _num(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv) -> int:
    def body(_):

        models = argv[1:]
        if not models or not FLAGS.host:
            raise UserError("usage: python -m tflite_isp.jetson MODEL [MODEL ...] --host HOST [--host HOST2 ...]")
        if FLAGS.runs < 1 or FLAGS.warmup < 0 or FLAGS.threads < 1:
            raise UserError("--runs and --threads must be at least 1 and --warmup at least 0")
        binary = FLAGS.benchmark_binary
        if binary and FLAGS["tool"].present:
            raise UserError("give --tool or --benchmark_binary, not both")
        if binary and not Path(binary).is_file():
            raise UserError(f"{binary}: benchmark_model binary not found")
        entries = entries_mod.entries_for(models, FLAGS.recipe)
        out = Path(FLAGS.out or f"device_runs/jetson-{time.strftime('%Y%m%d-%H%M%S')}.json")
        devices = measure_hosts(FLAGS.host, entries, tool=FLAGS.tool, binary=binary, threads=FLAGS.threads,
                                runs=FLAGS.runs, warmup=FLAGS.warmup, ssh_config=FLAGS.ssh_config,
                                python=FLAGS.board_python, log=sys.stderr)
        out.parent.mkdir(parents=True, exist_ok=True)
        records.write_devices(out, devices)
        print(table(devices))
        print(f"wrote {out}")
        failures = [f"{spec}: {doc['error']}" for spec, doc in devices.items() if doc.get("error")]
        failures += [f"{spec} {name}: {r['error']}" for spec, doc in devices.items()
                     for name, r in doc["models"].items() if "error" in r]
        for spec, doc in devices.items():
            if any("ms" in r for r in doc["models"].values()):
                print(f"next: python -m tflite_isp.score {shlex.join(models)} --runtime {spec} --runtime_json {out}")
        for line in failures:
            print(f"FAILED {line}", file=sys.stderr)
        return 1 if failures else 0

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
