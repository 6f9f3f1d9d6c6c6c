"""``python -m tflite_isp.export``: a trained model -> verified ``.tflite`` files, one folder per precision.

    python -m tflite_isp.export RUN_DIR [--fp16 | --int8 | --int8-qat | --int16x8 | --dynamic | --all] [--onnx]
    python -m tflite_isp.export check model.tflite --target nnapi:29@2.4 [--require-delegable nnapi:29] [--strict]

Each export folder holds ``model.tflite`` (fixed batch 1 at ``--size``, Full HD packed 544 x 960
by default: AI Benchmark's PRO mode file), ``model_none.tflite`` (dynamic height and width,
the MAI 2021 submission convention) and ``manifest.json``: recipe, IO convention and
quantisation, ops, delegate verdicts, lint findings and the fidelity figures measured on the validation split.
"""
from __future__ import annotations

import sys

from absl import flags

from tflite_isp.core import cli
from tflite_isp.core.errors import UserError
from tflite_isp.export.check import check_command
from tflite_isp.export.config import ExportConfig, parse_size
from tflite_isp.export.exporter import run

FLAGS = flags.FLAGS
PRECISION_FLAGS = ("fp16", "int8", "int8_qat", "int16x8", "dynamic")
for _name, _help in [("fp16", "FP16 weights."), ("int8", "Full-integer INT8, post-training calibration."),
                     ("int8_qat", "Full-integer INT8 after quantization-aware fine-tuning."),
                     ("int16x8", "INT16 activations, INT8 weights."), ("dynamic", "Dynamic-range (INT8 weights)."),
                     ("all", "Every precision (FP32 included) and ONNX.")]:
    flags.DEFINE_boolean(_name, False, _help)
flags.DEFINE_string("size", None, "Input HxW of model.tflite (also --size H W); default: packed Full HD RAW 544x960 "
                                  "for ISP models, 256x256 for colourisation.")
flags.DEFINE_boolean("model_none", True, "Also write model_none.tflite with dynamic height and width.")
flags.DEFINE_integer("calibration_images", 100, "Training images for INT8/16x8 calibration and QAT data checks.")
flags.DEFINE_enum("io_type", None, ["float32", "uint8", "int8", "int16"], "IO type of integer models (default: int8; "
                  "int16x8: float32).")
flags.DEFINE_boolean("raw_input", False, "Put input normalisation inside the graph: the file takes packed sensor "
                                         "values (the MAI rule: all processing inside the TFLite graph).")
flags.DEFINE_boolean("allow_float_ops", False, "Let ops that cannot be integer stay in float (named, never silent).")
flags.DEFINE_boolean("per_channel", True, "Per-channel weight quantisation (--noper_channel: per-tensor, for NPUs "
                                          "that need it).")
flags.DEFINE_integer("qat_steps", 200, "Quantization-aware fine-tuning steps.")
flags.DEFINE_float("qat_lr", None, "QAT learning rate (default: the recipe's final rate, lr_min).")
flags.DEFINE_enum("qat_target", "teacher", ["teacher", "data"], "QAT fine-tunes toward the FP32 model's own outputs "
                  "(teacher: aims at the conversion loss itself) or the dataset targets (data).")
flags.DEFINE_integer("fidelity_images", 32, "Validation images for the fidelity gate (0: skip the gate).")
flags.DEFINE_float("max_psnr_drop", None, "Fail an export whose PSNR drop against the FP32 Keras model exceeds this.")
flags.DEFINE_boolean("debug_quant", False, "Per-layer quantisation error table (INT8 / 16x8 / dynamic).")
flags.DEFINE_integer("keep_float", 0, "With --debug_quant: keep the N worst layers in float (selective "
                                      "quantisation) in the exported file, and report the effect.")
flags.DEFINE_boolean("onnx", False, "Also export ONNX (opset --opset) through tf2onnx, parity-checked with "
                                    "onnxruntime.")
flags.DEFINE_integer("opset", 17, "ONNX opset.")
flags.DEFINE_multi_string("target", None, "Delegate targets to check: xnnpack, gpu, nnapi[:SDK], hexagon, mediatek "
                                          "(default: all), each optionally @VERSION, the TFLite runtime the device "
                                          "ships on the TensorFlow numbering, e.g. nnapi:29@2.4, gpu@2.21; the lint "
                                          "rules (converters/lint_rules.toml) use it (default: the pinned 2.21).")
flags.DEFINE_boolean("strict", False, "check: lint warnings fail the check too (errors always do).")
flags.DEFINE_multi_string("require_delegable", None, "Fail when any op would fall back to the CPU on this target.")


# --- CLI -----------------------------------------------------------------------------------


def config_from_flags(source: str) -> ExportConfig:
    chosen = tuple(p for p in PRECISION_FLAGS if FLAGS[p].value)
    if FLAGS.all and chosen:
        raise UserError(f"--all already includes every precision; drop --{', --'.join(chosen)}")
    if len(chosen) > 1:
        raise UserError(f"choose one precision (--{' | --'.join(chosen)} given) or --all")
    precisions = ("fp32", *PRECISION_FLAGS) if FLAGS.all else (chosen or ("fp32",))
    return ExportConfig(
        source=source, precisions=precisions, onnx=FLAGS.onnx or FLAGS.all,
        size=parse_size(FLAGS.size) if FLAGS.size else None,
        model_none=FLAGS.model_none, data=FLAGS.data, out=FLAGS.out, calibration_images=FLAGS.calibration_images,
        io_type=FLAGS.io_type, raw_input=FLAGS.raw_input, allow_float_ops=FLAGS.allow_float_ops,
        per_channel=FLAGS.per_channel, qat_steps=FLAGS.qat_steps, qat_lr=FLAGS.qat_lr, qat_target=FLAGS.qat_target,
        fidelity_images=FLAGS.fidelity_images, max_psnr_drop=FLAGS.max_psnr_drop, debug_quant=FLAGS.debug_quant,
        keep_float=FLAGS.keep_float, opset=FLAGS.opset, targets=tuple(FLAGS.target or ()),
        require_delegable=tuple(FLAGS.require_delegable or ()), threads=FLAGS.threads, recipe=FLAGS.recipe,
        seed=FLAGS.seed, bad_files=FLAGS.bad_files)



def main(argv) -> int:
    def body(_):
        args = argv[1:]
        if args and args[0] == "check":
            if len(args) < 2:
                raise UserError("usage: python -m tflite_isp.export check MODEL.tflite [--target nnapi:29]")
            return check_command(args[1:], FLAGS.target or (), FLAGS.require_delegable or (), FLAGS.strict)
        if len(args) != 1:
            raise UserError("usage: python -m tflite_isp.export RUN_DIR|MODEL.keras [--int8 ...] "
                            f"(got {len(args)} positional arguments)")
        cfg = config_from_flags(args[0])
        run(cfg)
        for failure in cfg.gate_failures:
            print(f"FAILED {failure}", file=sys.stderr)
        return 1 if cfg.gate_failures else 0

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
