"""Real components the tests start (sshd, adb, Chromium): a missing one fails the run under CI, never skips."""
import os

import pytest


def missing(reason: str):
    """Fail under CI (``CI`` set, as .ci/run runs), skip on a developer's machine without the component."""
    if os.environ.get("CI"):
        pytest.fail(f"CI needs it: {reason}")
    pytest.skip(reason)
