"""``python -m tflite_isp``: the default job, end to end on the embedded data.

Takes the train flags (``--model``, ``--epochs`` ...); with none it trains Smallnet on the
embedded ISP set. Export and scoring join this job as those commands land.
"""
import sys

from absl import app

from tflite_isp import train


def main(argv) -> int:
    return train.main(argv)


def entry():
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    entry()
