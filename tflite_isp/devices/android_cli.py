"""``python -m tflite_isp.android``: time exported models on Android phones over adb.

    python -m tflite_isp.android --list_devices
    python -m tflite_isp.android MODEL [MODEL ...] --benchmark_binary android_aarch64_benchmark_model
                                 [--serial S1,S2 | --all_devices] [--delegate cpu|gpu|nnapi|hexagon]
                                 [--accelerator NAME] [--taskset f0] [--threads 4] [--runs 50] [--warmup 5]
    python -m tflite_isp.android MODEL ... --apk android_aarch64_benchmark_model.apk ...
    python -m tflite_isp.android MODEL --ai_benchmark [--serial S]

MODEL is what ``score`` takes (an export folder, run directory or ``.tflite``). Each phone runs in parallel; the
result is one runtime JSON (``device_runs/android-<time>.json``) with a section per phone, which
``python -m tflite_isp.score MODEL --runtime adb:SERIAL --runtime_json FILE`` reads.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from absl import flags

from tflite_isp.core import atomic, cli
from tflite_isp.core.errors import UserError
from tflite_isp.devices.adb import Adb
from tflite_isp.devices.android_bench import (
    DELEGATES,
    DEVICE_DIR,
    BenchSettings,
    Phone,
    ai_benchmark_handoff,
    bench_device,
    run_farm,
)
from tflite_isp.run import entries as entries_mod
from tflite_isp.run import records

FLAGS = flags.FLAGS
flags.DEFINE_boolean("list_devices", False, "List the phones adb sees (serial, model, state) and exit.")
flags.DEFINE_list("serial", [], "Phones to use (adb serials); default: the only one attached.")
flags.DEFINE_boolean("all_devices", False, "Use every ready phone attached (a device farm).")
flags.DEFINE_enum("delegate", "cpu", list(DELEGATES), "Delegate: cpu (XNNPACK), gpu, nnapi or hexagon.")
flags.DEFINE_string("accelerator", None, "NNAPI accelerator name (Android 10+, e.g. neuron-ann) for --delegate nnapi.")
flags.DEFINE_string("taskset", None, "Pin the run to cores: a hexadecimal taskset CPU mask (device-specific).")
flags.DEFINE_string("apk", None, "Use the benchmark APK (am start + logcat) instead of the native binary.")
flags.DEFINE_string("hexagon_libs", None, "Folder of Hexagon libraries (libhexagon_interface.so, "
                                          "libhexagon_nn_skel*.so) to push for --delegate hexagon.")
flags.DEFINE_boolean("ai_benchmark", False, "Push the model as /sdcard/Download/model.tflite for AI Benchmark's PRO "
                                            "mode and print the steps.")
flags.DEFINE_string("adb", "adb", "The adb binary.")
flags.DEFINE_float("device_timeout", 600, "Seconds any one adb call (a push, a benchmark run) may take.")
flags.DEFINE_string("device_dir", DEVICE_DIR, "Folder on the phone for the binary and the models.")
flags.DEFINE_boolean("require_full_delegation", False, "Fail a model the delegate does not fully take.")
flags.DEFINE_boolean("peak_memory", True, "Ask benchmark_model for the peak memory footprint (a polling thread).")


def settings_from_flags() -> BenchSettings:
    return BenchSettings(delegate=FLAGS.delegate, threads=FLAGS.threads, runs=FLAGS.runs, warmup=FLAGS.warmup,
                         accelerator=FLAGS.accelerator, taskset=FLAGS.taskset, peak_memory=FLAGS.peak_memory,
                         require_full_delegation=FLAGS.require_full_delegation, timeout=FLAGS.device_timeout,
                         device_dir=FLAGS.device_dir).check()


def list_devices(adb) -> int:
    devices = adb.devices()
    if not devices:
        print("no device attached (adb devices -l lists none)")
        return 1
    for d in devices:
        print(f"{d.serial:<24} {d.state:<14} {d.model or ''}")
    return 0


def serials(adb) -> list:
    if FLAGS.all_devices:
        ready = [d.serial for d in adb.devices() if d.ready]
        if not ready:
            raise UserError("adb: no ready device attached (see python -m tflite_isp.android --list_devices)")
        return ready
    return FLAGS.serial or [None]


def ai_benchmark(adb, entries, out: Path) -> int:

    if len(entries) != 1 or len(FLAGS.serial) > 1:
        raise UserError("--ai_benchmark hands one model to one phone (AI Benchmark loads a single model.tflite)")
    steps, template = ai_benchmark_handoff(adb, entries[0], FLAGS.serial[0] if FLAGS.serial else None)
    atomic.write_json(out, {"format": "tflite_isp.runtimes/1", "devices": {f"adb:{template['device']['serial']}":
                                                                           template}})
    print("\n".join(steps))
    print(f"Then enter the latency (ms) in {out} in place of null, and score with:\n"
          f"  python -m tflite_isp.score {entries[0].given} --runtime adb:{template['device']['serial']} "
          f"--runtime_json {out}")
    return 0


def table(devices: dict) -> str:
    lines = []
    for spec, doc in devices.items():
        if doc.get("error"):
            lines.append(f"{spec}: FAILED: {doc['error']}")
            continue
        lines.append(f"{spec}: {doc['source']}")
        for name, rec in doc["models"].items():
            figure = f"{rec['ms']:10.2f} ms" if "ms" in rec else "    FAILED"
            lines.append(f"  {name:<32} {figure}  {rec.get('note') or rec.get('error') or ''}")
    return "\n".join(lines)


def main(argv) -> int:

    adb = Adb(FLAGS.adb, None, FLAGS.device_timeout)
    if FLAGS.list_devices:
        return list_devices(adb)
    models = argv[1:]
    if not models:
        raise UserError("give MODEL arguments (export folders, run directories or .tflite files), or --list_devices")
    entries = entries_mod.entries_for(models, FLAGS.recipe)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if FLAGS.ai_benchmark:
        return ai_benchmark(adb, entries, Path(FLAGS.out or f"device_runs/ai-benchmark-{stamp}.json"))
    settings = settings_from_flags()

    def job(serial):
        phone = Phone(adb.on(serial) if serial else adb, settings, binary=FLAGS.benchmark_binary, apk=FLAGS.apk,
                      hexagon_libs=FLAGS.hexagon_libs, log=print)
        return bench_device(phone, entries)

    targets = serials(adb)
    if targets == [None]:  # one phone, found by adb: fail as a whole if it is not there
        doc = job(None)
        devices = {f"adb:{doc['device']['serial']}": doc}
    else:
        devices = run_farm(targets, job)
    out = Path(FLAGS.out or f"device_runs/android-{stamp}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    records.write_devices(out, devices)
    print(table(devices))
    print(f"wrote {out}; score with: python -m tflite_isp.score {' '.join(models)} "
          f"--runtime {next(iter(devices))} --runtime_json {out}")
    failed = any(doc.get("error") or any("error" in r for r in doc["models"].values()) for doc in devices.values())
    return 1 if failed else 0


def entry():
    cli.entry(lambda argv: cli.run_command(lambda _: main(argv)))


if __name__ == "__main__":
    sys.exit(entry())

__all__ = ["main", "table"]
