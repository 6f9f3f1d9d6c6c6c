"""Flags shared by the commands (defined once: the default job imports them all) and argv tidying.

``--int8-qat`` and ``--int8_qat`` both work (the docs write flags with dashes, absl uses
underscores), and ``--size H W`` is read as ``--size=HxW``.
"""
from __future__ import annotations

import os
import re
import sys

from absl import app, flags, logging

from tflite_isp.core.errors import run_cli

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Dataset as LAYOUT:PATH (mai21, zurich, sid) or embedded:isp|lowlight. train: the "
                                  "training data (default: the embedded set of --task); export: calibration and "
                                  "fidelity data (default: the run's); score: the data to score on (default: the first "
                                  "model's training data).")
flags.DEFINE_string("out", None, "Output folder. train: the run directory (default runs/<model>-<time>); export: the "
                                 "folder of per-precision exports (default RUN_DIR/export); score: the leaderboard "
                                 "and report (default scores/<time>).")
flags.DEFINE_integer("seed", 0, "Random seed (weights, crops, augmentation, shuffling, calibration picks).")
flags.DEFINE_boolean("debug", False, "Show full tracebacks for bad input (also TFLITE_ISP_DEBUG=1).")
flags.DEFINE_enum("bad_files", "fail", ["fail", "skip"], "A corrupt dataset file fails the run, or is skipped and "
                                                           "listed in data_report.json.")
flags.DEFINE_integer("threads", 2, "LiteRT (XNNPACK) threads: export's fidelity run, score's inference and timing.")
flags.DEFINE_integer("runs", 20, "Timed runs per model (score's runtime, the device harnesses), after --warmup runs.")
flags.DEFINE_integer("warmup", 3, "Untimed warm-up runs before timing.")
flags.DEFINE_string("benchmark_binary", None, "Android: the benchmark_model binary to push to the phone (e.g. TFLite's "
                                              "android_aarch64_benchmark_model); a board over ssh: a benchmark_model "
                                              "to run there instead of the project's timing script.")
flags.DEFINE_string("ssh_config", None, "ssh config file for boards (default: ssh's own, ~/.ssh/config): host names, "
                                        "users, keys and host keys all come from it; nothing is asked for.")
flags.DEFINE_string("board_python", "python3", "Python on the board (needs numpy and ai-edge-litert) for the timing "
                                               "script.")
flags.DEFINE_string("model", "smallnet", "train: the built-in model recipe name, or a recipe .toml file. (enhance "
                                         "takes its export folder as --export_dir; --model there is the old spelling.)")
flags.DEFINE_string("recipe", None, "Recipe (built-in name or .toml) of a bare .keras or .tflite model without its run "
                                    "directory or manifest: packing order and normalisation.")


def tidy_argv(argv: list) -> list:
    """Dashes in flag names become underscores; ``--size H W`` becomes ``--size=HxW``."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if i and arg.startswith("--") and arg != "--":
            name, eq, value = arg[2:].partition("=")
            arg = "--" + name.replace("-", "_") + eq + value
            if arg == "--size" and i + 2 < len(argv) and all(re.fullmatch(r"\d+", a) for a in argv[i + 1:i + 3]):
                arg, i = f"--size={argv[i + 1]}x{argv[i + 2]}", i + 2
        out.append(arg)
        i += 1
    return out


def run_command(body) -> int:
    """``body(None)`` as a command: absl logging at WARNING (TensorFlow and the converter log at INFO),
    ``--debug`` sets TFLITE_ISP_DEBUG=1, and a UserError is one ``error: ...`` line (exit 2)."""

    logging.set_verbosity(logging.WARNING)
    if FLAGS.debug:
        os.environ["TFLITE_ISP_DEBUG"] = "1"
    return run_cli(body)


def entry(main) -> None:
    """``app.run`` with tidied argv; exits with ``main``'s return code."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=lambda argv: FLAGS(tidy_argv(argv)))
