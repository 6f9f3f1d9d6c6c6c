"""``python -m tflite_isp.export check FILE.tflite``: delegate verdicts and lint findings for any ``.tflite`` file."""
from __future__ import annotations

import sys

from tflite_isp.export import compat, lint
from tflite_isp.run import flatbuffer


def check_command(paths, targets=(), required=(), strict=False) -> int:
    """``export check FILE.tflite ...``: the delegate report and the lint findings of any .tflite file (exit 1 if
    a required target would fall back, a lint rule finds an error, or, with ``strict``, a warning)."""
    targets = list(targets) or None
    required = list(required)
    for t in (*(targets or ()), *required):
        compat.parse_target(t)
    lint.load_rules()
    status = 0
    for path in paths:
        model = flatbuffer.read(path)
        reports = compat.check_all(model, targets)
        for t in required:
            if t not in reports:
                reports[t] = compat.check(model, t)
        print(f"{path}: {len(model.ops)} ops, inputs " +
              ", ".join(f"{t.dtype}{list(t.shape_signature)}" for t in model.inputs))
        print(compat.format_table(list(reports.values())))
        findings = lint.lint(model, targets)
        print()
        print(lint.format_findings(findings))
        for t in required:
            if not reports[t].fully_delegable:
                print(f"FAILED --require_delegable {t}: {reports[t].summary()}", file=sys.stderr)
                status = 1
        failed = lint.failure_line(findings, strict)
        if failed:
            print(f"{failed} in {path}", file=sys.stderr)
            status = 1
    return status
