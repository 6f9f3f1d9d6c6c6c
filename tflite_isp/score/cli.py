"""``python -m tflite_isp.score``: which model to submit or ship. PSNR, SSIM, runtime and the MAI 2021
score of ``.tflite`` files, next to a classical LibRaw ISP, in one leaderboard and one visual report.

    python -m tflite_isp.score MODEL [MODEL ...] [--data LAYOUT:PATH] [--split test]
                               [--runtime local | adb[:SERIAL][:DELEGATE] | jetson:HOST | --runtime_json FILE]
    python -m tflite_isp.score --zoo

A MODEL is an export folder (``RUN/export/int8``: its manifest gives packing, normalisation and IO
quantisation), an export root or run directory (every precision exported there), or a ``.tflite``
file (its folder's manifest, else ``--recipe``). Each file runs in ai-edge-litert's interpreter
(XNNPACK, ``--threads``) on whole test images, tiled when larger than its fixed input. The output
folder holds leaderboard.{md,csv,json} and report.html with its PNGs.
"""
from __future__ import annotations

import sys

from absl import flags

from tflite_isp.core import cli
from tflite_isp.core.errors import UserError
from tflite_isp.score import zoo
from tflite_isp.score.scorer import ScoreConfig, run

FLAGS = flags.FLAGS
flags.DEFINE_string("split", "test", "Dataset split to score on.")
flags.DEFINE_string("runtime", "local", "Runtime source: local, adb[:SERIAL][:DELEGATE] or jetson:HOST.")
flags.DEFINE_enum("protocol", "mai21", ["mai21", "mai22"], "Challenge protocol: mai21 (any precision, additive MAI "
                  "2021 score) or mai22 (the FP16 file, timed on a phone's GPU; PSNR and runtime, no score formula).")
flags.DEFINE_string("runtime_json", None, "Runtimes measured elsewhere (schema: tflite_isp/run/records.py).")
flags.DEFINE_integer("tile_margin", None, "Tile overlap per side in packed pixels for images larger than the model "
                                         "(default: the file's receptive radius, at most a quarter of the tile).")
flags.DEFINE_integer("whole_image_mb", None, "Memory a whole-image run of a dynamic-shape file may take (estimated "
                     "from its graph); a larger image is tiled through the fixed file (default: half of this "
                     "machine's RAM; 0: always tile, the fixed-file protocol).")
flags.DEFINE_integer("max_images", 0, "Score only the first N images of the split (0: all).")
flags.DEFINE_integer("report_images", 3, "Test images shown as side-by-side crops in the report.")
flags.DEFINE_boolean("baseline", True, "Include the classical LibRaw ISP row.")
flags.DEFINE_boolean("zoo", False, "Train (if needed), export and score the built-in models on the embedded data.")
flags.DEFINE_list("zoo_models", list(zoo.ZOO_MODELS), "Built-in models --zoo trains and scores.")
flags.DEFINE_integer("zoo_steps", 0, "Cap each --zoo model's training at N steps (0: the recipe's schedule).")
flags.DEFINE_float("zoo_fraction", 1.0, "Train each --zoo model for this share of its recipe's schedule (recipes are "
                   "sized for about 20 minutes each on 2 CPU cores).")

# --- CLI -------------------------------------------------------------------------------------


def config_from_flags(models) -> ScoreConfig:
    return ScoreConfig(
        models=tuple(models), data=FLAGS.data, split=FLAGS.split, runtime=FLAGS.runtime,
        runtime_json=FLAGS.runtime_json, threads=FLAGS.threads, runs=FLAGS.runs, warmup=FLAGS.warmup,
        tile_margin=FLAGS.tile_margin, whole_image_mb=FLAGS.whole_image_mb, max_images=FLAGS.max_images,
        report_images=FLAGS.report_images, baseline=FLAGS.baseline, recipe=FLAGS.recipe, out=FLAGS.out,
        bad_files=FLAGS.bad_files, protocol=FLAGS.protocol,
        benchmark_binary=FLAGS.benchmark_binary, ssh_config=FLAGS.ssh_config, board_python=FLAGS.board_python)


def main(argv) -> int:
    def body(_):
        models = argv[1:]
        if FLAGS.zoo:
            if models:
                raise UserError("--zoo trains, exports and scores the built-in models; give no MODEL with it")
            board = zoo.run(config_from_flags(()), run, models=tuple(FLAGS.zoo_models), steps=FLAGS.zoo_steps,
                            fraction=FLAGS.zoo_fraction, seed=FLAGS.seed)
        else:
            if not models:
                raise UserError("usage: python -m tflite_isp.score MODEL [MODEL ...] [--data LAYOUT:PATH] "
                                "(or --zoo)")
            board = run(config_from_flags(models))
        failed = [r for r in board["rows"] if r["status"] != "ok"]
        for r in failed:
            print(f"FAILED {r['name']}: {r['error']}", file=sys.stderr)
        return 1 if failed else 0

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
