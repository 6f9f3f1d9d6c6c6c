"""User-facing errors: one line naming the file and the problem, traceback only on request."""
from __future__ import annotations

import os
import sys


class UserError(Exception):
    """Bad input from the user (a file, a flag, a dataset): shown as one line, exit code 2."""

    path = None
    problem = None


def fail(path, problem: str) -> UserError:
    """A UserError of the form ``PATH: problem`` (``.path`` and ``.problem`` kept apart)."""
    err = UserError(f"{path}: {problem}")
    err.path, err.problem = str(path), problem
    return err


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; a UserError prints ``error: ...`` on one line unless TFLITE_ISP_DEBUG=1."""
    try:
        return main(argv) or 0
    except UserError as err:
        if os.environ.get("TFLITE_ISP_DEBUG") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
