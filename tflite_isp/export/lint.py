"""Lint a .tflite file against field failures of image-to-image models (``converters/lint_rules.toml``).

Each rule is a failure seen on devices (an issue URL), tied to the delegates, the file precision and the runtime
versions it applies to; a target names its runtime as ``nnapi:29@2.4`` (without ``@``: the pinned runtime in the
rules file). Errors are ops a runtime or delegate refuses; warnings are slow or inaccurate ones.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache

from tflite_isp.core.errors import fail
from tflite_isp.export import compat
from tflite_isp.export.convert import converters_dir
from tflite_isp.run.flatbuffer import TFLiteModel, file_precision
from tflite_isp.run.litert import xnnpack_refusals

RULES_FILE = "converters/lint_rules.toml"
SEVERITIES = ("error", "warning")
PRECISIONS = ("fp32", "fp16", "dynamic", "int8", "int16x8")
BASES = ("pinned:", "unpinned:", "not version-bound:")
RULE_KEYS = {"id", "severity", "targets", "precisions", "ops", "input_dtypes", "any_of", "pattern", "message",
             "hint", "source", "sources", "runtime", "sdk"}
CONDITION_KEYS = {"filter_min", "stride_min"}
CLAMPS = {"RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH"}
INT8 = ("int8", "uint8")


# ---- rules ----------------------------------------------------------------------------------------------------

@cache
def load_rules() -> dict:
    """{'default': '2.21', 'rules': [rule, ...]} from the rules file, validated (a bad rule: one-line error)."""
    try:
        raw = tomllib.loads((converters_dir() / "lint_rules.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise fail(RULES_FILE, f"cannot read lint rules: {err}") from None
    default = raw.get("runtime", {}).get("default")
    rules = raw.get("rule", [])
    problem = None if default and version_key(default) else "[runtime] needs a default version like '2.21'"
    seen = set()
    for rule in rules:
        problem = problem or _rule_problem(rule, seen)
        seen.add(rule.get("id"))
    if problem:
        raise fail(RULES_FILE, problem)
    return {"default": default, "rules": rules}


def _rule_problem(rule: dict, seen: set):
    """What is wrong with one rule, or None."""
    rid = rule.get("id") or "?"
    known_targets = {*compat.known_targets(), "any"}
    checks = [
        (set(rule) - RULE_KEYS, f"unknown keys {sorted(set(rule) - RULE_KEYS)}"),
        (rid in seen, "duplicate id"),
        (rule.get("severity") not in SEVERITIES, f"severity must be one of {', '.join(SEVERITIES)}"),
        (not rule.get("targets") or set(rule["targets"]) - known_targets, "targets must name delegates or 'any'"),
        (set(rule.get("precisions", ())) - set(PRECISIONS), f"precisions must be among {', '.join(PRECISIONS)}"),
        (not (rule.get("ops") or rule.get("pattern") in PATTERNS), f"needs ops or a pattern ({', '.join(PATTERNS)})"),
        (any(set(c) - CONDITION_KEYS for c in rule.get("any_of", ())), f"any_of takes {sorted(CONDITION_KEYS)}"),
        (not all(rule.get(k) for k in ("message", "hint", "source")), "needs a message, a hint and a source"),
        (not str(rule.get("runtime", {}).get("basis", "")).startswith(BASES), f"runtime.basis must start {BASES}"),
        ("sdk" in rule and not str(rule["sdk"].get("basis", "")).startswith(BASES), f"sdk.basis must start {BASES}"),
        (not all(version_key(v) for k, v in rule.get("runtime", {}).items() if k in ("from", "until")),
         "runtime from/until must be versions like '2.5'"),
    ]
    bad = [msg for failed, msg in checks if failed]
    return f"rule {rid}: {bad[0]}" if bad else None


def version_key(text) -> tuple | None:
    """'2.5' -> (2, 5, 0); None for anything that is not a dotted version."""
    parts = str(text).strip().split(".")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts) + (0,) * (3 - len(parts))


def _in_range(value, bounds: dict, key=lambda v: v) -> bool:
    lo, hi = bounds.get("from"), bounds.get("until")
    return (lo is None or key(value) >= key(lo)) and (hi is None or key(value) < key(hi))


# ---- the file -------------------------------------------------------------------------------------------------

def _first_live_input(op):
    live = [t for t in op.inputs if t is not None and not t.is_constant]
    return live[0] if live else None


def _condition(cond: dict, op) -> bool:
    weights = op.inputs[1] if len(op.inputs) > 1 else None
    kernel = max(weights.shape[1:3]) if weights is not None and len(weights.shape) == 4 else 0
    stride = max(op.options.get("stride_h", 1), op.options.get("stride_w", 1))
    return kernel >= cond.get("filter_min", 10**9) or stride >= cond.get("stride_min", 10**9)


def _op_matches(rule: dict, op) -> bool:
    if op.name not in rule["ops"]:
        return False
    live = _first_live_input(op)
    if "input_dtypes" in rule and (live is None or live.dtype not in rule["input_dtypes"]):
        return False
    return "any_of" not in rule or any(_condition(c, op) for c in rule["any_of"])


def _clamped(op, producers: dict, depth: int = 0) -> bool:
    """True when ``op`` bounds its output: a clamp op, a fused activation, or MIN/MAX over a clamped input."""
    if op.options.get("fused_activation_function") not in (None, "NONE") or op.name in CLAMPS:
        return True
    if op.name not in ("MINIMUM", "MAXIMUM") or depth > 2:
        return False
    sources = [producers.get(t.index) for t in op.inputs if t is not None and not t.is_constant]
    return any(s is not None and (s.name in ("MINIMUM", "MAXIMUM", *CLAMPS) or _clamped(s, producers, depth + 1))
               for s in sources)


def unclipped_int8_output(model: TFLiteModel) -> list:
    """The ops that produce an INT8 model output (looking through a final QUANTIZE / DEQUANTIZE) without a clamp."""
    producers = {t.index: op for op in model.ops for t in op.outputs}
    found = []
    for out in model.outputs:
        op = producers.get(out.index)
        while op is not None and op.name in ("QUANTIZE", "DEQUANTIZE") and op.inputs and op.inputs[0] is not None:
            op = producers.get(op.inputs[0].index)
        if op is not None and op.outputs and op.outputs[0].dtype in INT8 and not _clamped(op, producers):
            found.append(op)
    return found


def xnnpack_requantization_range(model: TFLiteModel) -> list:
    """The quantised MAC ops whose requantisation scale XNNPACK refuses (LiteRT aborts loading the file)."""
    return [op for op, _ in xnnpack_refusals(model)]


PATTERNS = {"unclipped_int8_output": unclipped_int8_output,
            "xnnpack_requantization_range": xnnpack_requantization_range}


# ---- linting --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    """One rule hit: which op, on which target and runtime, and the message, fix and source of the rule."""

    rule: str
    severity: str
    target: str
    runtime: str
    index: int
    op: str
    message: str
    hint: str
    source: str
    basis: str

    def to_dict(self) -> dict:
        return dict(vars(self))


def _targets(targets) -> list:
    """[(label, delegate name, sdk, runtime version)] for target texts like 'nnapi:29@2.4' ('any' last)."""
    default = load_rules()["default"]
    out = []
    for text in targets or compat.DEFAULT_TARGETS:
        spec, version = compat.split_runtime(text)
        name, sdk = compat.parse_target(spec)
        sdk = compat.load_table(name)["target"].get("default_sdk") if sdk is None else sdk
        out.append((f"{spec.strip().lower()}@{version or default}", name, sdk, version or default))
    for version in dict.fromkeys(v for *_, v in out):
        out.append((f"any@{version}", "any", None, version))
    return out


def lint(model: TFLiteModel, targets=None) -> list:
    """Every finding of every rule on ``model`` for the given targets (the default five when None)."""
    precision = file_precision(model)
    findings = []
    for rule in load_rules()["rules"]:
        if rule.get("precisions") and precision not in rule["precisions"]:
            continue
        bounded = {"from", "until"} & set(rule.get("runtime", {}))
        for label, name, sdk, version in _targets(targets):
            if name not in rule["targets"] or not _in_range(version, rule.get("runtime", {}), version_key):
                continue
            if name == "any" and not bounded and any(f.rule == rule["id"] for f in findings):
                continue  # a version-free rule on the CPU kernels: once, not once per runtime version
            if sdk is not None and name == "nnapi" and not _in_range(sdk, rule.get("sdk", {})):
                continue
            ops = PATTERNS[rule["pattern"]](model) if "pattern" in rule else \
                [op for op in model.ops if _op_matches(rule, op)]
            findings += [Finding(rule["id"], rule["severity"], label, version, op.index, op.name, rule["message"],
                                 rule["hint"], rule["source"], rule["runtime"]["basis"]) for op in ops]
    return findings


def record(model: TFLiteModel, targets=None) -> dict:
    """The manifest's record of one file's findings."""
    findings = lint(model, targets)
    return {"rules": RULES_FILE, "default_runtime": load_rules()["default"], "precision": file_precision(model),
            "errors": sum(f.severity == "error" for f in findings),
            "warnings": sum(f.severity == "warning" for f in findings),
            "findings": [f.to_dict() for f in findings]}


def format_findings(findings) -> str:
    """Findings grouped by rule and target: severity, target, rule id, ops, message, hint and source."""
    groups: dict = {}
    for f in findings:
        groups.setdefault((f.severity, f.target, f.rule), []).append(f)
    lines = [f"lint ({RULES_FILE}; runtime {load_rules()['default']} unless the target names one):"]
    for (severity, target, rule), group in sorted(groups.items()):
        first = group[0]
        where = ", ".join(f"#{f.index}" for f in group[:6]) + (", ..." if len(group) > 6 else "")
        lines += [f"  {severity:<7}  {target}  {rule}  {first.op} {where}: {first.message}",
                  f"           hint: {first.hint}", f"           source: {first.source}"]
    if not groups:
        lines.append("  no findings")
    return "\n".join(lines)


def failure_line(findings, strict: bool = False) -> str | None:
    """One line when the findings fail the check (any error; any warning too with ``strict``), else None."""
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    if not errors and not (strict and warnings):
        return None
    ids = ", ".join(dict.fromkeys(f.rule for f in (*errors, *(warnings if strict else ()))))
    return f"FAILED lint{' --strict' if strict else ''}: {len(errors)} error(s), {len(warnings)} warning(s) ({ids})"


__all__ = ["Finding", "file_precision", "failure_line", "format_findings", "lint", "load_rules",
           "record", "unclipped_int8_output", "version_key"]
