"""``python -m tflite_isp``: the default job, end to end on the embedded data.

Takes the train flags (``--model``, ``--epochs`` ...); with none it trains Smallnet on the
embedded ISP set, exports FP32 and full-integer INT8 ``.tflite`` files at Full HD with their
fidelity figures and delegate verdicts, then scores both on the test split next to the LibRaw
baseline: ``RUN_DIR/score/leaderboard.md`` and ``report.html``.
"""
import sys
from pathlib import Path

from tflite_isp.core import cli
from tflite_isp.core.errors import UserError
from tflite_isp.export import exporter
from tflite_isp.export.config import ExportConfig
from tflite_isp.score import scorer
from tflite_isp.train import loop
from tflite_isp.train.cli import config_from_flags

DEFAULT_PRECISIONS = ("fp32", "int8")


def main(argv) -> int:
    def body(_):
        if len(argv) > 1:
            raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
        metrics = loop.run(config_from_flags())
        run_dir = metrics["run_dir"]
        cfg = ExportConfig(source=run_dir, precisions=DEFAULT_PRECISIONS, seed=cli.FLAGS.seed,
                                  bad_files=cli.FLAGS.bad_files)
        exporter.run(cfg)
        for failure in cfg.gate_failures:
            print(f"FAILED {failure}", file=sys.stderr)
        exported = [str(Path(run_dir) / "export" / p) for p in DEFAULT_PRECISIONS
                    if (Path(run_dir) / "export" / p / "model.tflite").is_file()]
        board = scorer.run(scorer.ScoreConfig(models=tuple(exported), threads=cli.FLAGS.threads,
                                                out=str(Path(run_dir) / "score"), bad_files=cli.FLAGS.bad_files))
        failed = [r for r in board["rows"] if r["status"] != "ok"]
        return 1 if cfg.gate_failures or failed else 0

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
