"""``python -m tflite_isp.train``: train a recipe's network on RAW-RGB pairs.

With no arguments: Smallnet on the embedded ISP set (generated on first use), the recipe's
short CPU schedule. The flags become a ``TrainConfig`` (``config``); ``loop.run`` trains it into a
run directory: the resolved recipe, checkpoints (atomic, for ``--resume``), the best weights by
validation PSNR, metrics JSON and TensorBoard logs.
"""
from __future__ import annotations

from absl import flags

from tflite_isp.core import cli
from tflite_isp.core.errors import UserError
from tflite_isp.train.config import LR_SCHEDULES, PRECISIONS, STRATEGIES, TrainConfig
from tflite_isp.train.loop import run

FLAGS = flags.FLAGS
flags.DEFINE_enum("task", None, ["isp", "lowlight", "colorize"], "Task of the default data (default: the "
                                                                 "recipe's task).")
flags.DEFINE_integer("epochs", None, "Epochs (default: recipe).")
flags.DEFINE_integer("steps_per_epoch", None, "Optimizer steps per epoch (default: recipe).")
flags.DEFINE_integer("batch", None, "Global batch size (default: recipe).")
flags.DEFINE_integer("patch", None, "Training crop in RAW pixels; the packed input is half of it (default: recipe).")
flags.DEFINE_float("lr", None, "Peak learning rate (default: recipe).")
flags.DEFINE_enum("lr_schedule", None, list(LR_SCHEDULES), "Learning-rate schedule (default: recipe).")
flags.DEFINE_float("lr_min", None, "Final learning rate of the cosine schedule.")
flags.DEFINE_string("loss", None, "Weighted sum of terms, e.g. 'l1:1,ssim:0.2' (l1, mse, charbonnier, ssim, "
                                  "ms_ssim, vgg).")
flags.DEFINE_string("vgg_weights", None, "Local Keras VGG-19 weights (.h5, no top) for the vgg loss term.")
flags.DEFINE_float("width_multiplier", None, "U-Net channel width multiplier.")
flags.DEFINE_enum("levels", None, ["file", "recipe"], "Black/white levels: 'file' reads them from each RAW file "
                  "(or the dataset's sensor.json), so the export takes that camera's files; default: the recipe's.")
flags.DEFINE_boolean("separable", None, "U-Net with depthwise-separable convolutions.")
flags.DEFINE_boolean("augment", None, "Phase-true flips/rotations/transposes (default: recipe).")
flags.DEFINE_integer("checkpoint_every", None, "Steps between checkpoints (default: recipe).")
flags.DEFINE_integer("cache_mb", 1024, "Decode the training split once into memory when it fits in this many MiB; "
                                      "larger splits stream from disk (0: always stream).")
flags.DEFINE_integer("val_max_size", 1024, "Largest validation crop in RAW pixels (bounds eval time).")
flags.DEFINE_boolean("resume", False, "Continue the run in --out (or the newest run) from its last checkpoint.")
flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy; multi_worker reads TF_CONFIG.")
flags.DEFINE_enum("mixed_precision", None, list(PRECISIONS), "Train in this compute dtype (tf_keras mixed policy: "
                  "float32 variables, loss and outputs; float16 adds loss scaling); model.keras stays float32. "
                  "Fast where the CPU has AMX or AVX512-BF16 (bfloat16) or on a GPU; slower on AVX2-only CPUs.")
flags.DEFINE_string("init_from", None, "Start from this run's weights (and its recipe, unless --model is given).")
flags.DEFINE_float("prune_sparsity", None, "Magnitude pruning (tfmot) of conv/dense kernels to this sparsity, "
                                           "stripped before model.keras is saved.")
flags.DEFINE_string("teacher", None, "Distil from this trained run (its input convention is adopted).")
flags.DEFINE_float("distill_alpha", 0.5, "Weight of the teacher-output term (task term: 1 - alpha); with "
                                         "--joint_large_head, of the small head's loss against the large head.")
flags.DEFINE_float("distill_features", 0.0, "Weight of the feature term (student's last features through a 1x1 "
                                            "adapter vs the teacher's).")
flags.DEFINE_float("joint_large_head", None, "ENERZAi-style joint training: a second U-Net decoder this many times "
                                             "wider on the shared encoder, detached before saving.")
flags.DEFINE_string("channel_prune", None, "Structured channel pruning of this trained run (see channel_prune).")
flags.DEFINE_float("prune_psnr_drop", 0.3, "Channel pruning stops before validation PSNR falls this many dB below "
                                         "the unpruned model's.")
flags.DEFINE_float("prune_step", 0.1, "Fraction of the remaining prunable channels removed per pruning round.")
flags.DEFINE_integer("prune_rounds", 10, "Most pruning rounds (each fine-tunes for --steps_per_epoch steps).")


def config_from_flags() -> TrainConfig:
    names = [f.name for f in TrainConfig.__dataclass_fields__.values() if f.name in FLAGS]
    explicit = tuple(n for n in names if FLAGS[n].present)
    values = {n: FLAGS[n].value for n in names if FLAGS[n].value is not None}
    return TrainConfig(**values, explicit=explicit)


def main(argv) -> int:
    def body(_):
        if len(argv) > 1:
            raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
        run(config_from_flags())

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
