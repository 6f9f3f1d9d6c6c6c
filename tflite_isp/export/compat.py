"""Check every op of a .tflite model against per-delegate support tables (xnnpack, gpu, nnapi, hexagon, mediatek).

The tables are data: ``converters/delegate_<target>.toml`` (shipped as ``tflite_isp.builtin_converters``), one rule
list per op, each rule citing its source. An op that is not in a target's table is not delegable (for xnnpack it
runs on the built-in CPU kernels instead). tf.lite.experimental.Analyzer is not used: its GPU check is a no-op.

Rule keys (all optional except ``source``); a rule fails when any of its constraints fails:

- meta: ``source`` (where the rule comes from), ``hint`` (the fix), ``reason`` (replaces the generated messages),
  ``if_sdk_at_most`` (the rule applies only when the NNAPI SDK level is <= N)
- ``supported = false``: the op is known not to run on the target
- ``min_sdk``, ``max_version``: NNAPI SDK level, op version
- ``dtypes`` / ``output_dtypes``: allowed types of the run-time inputs (input 0 if all are constant) / of the outputs
- ``const_inputs`` / ``required_inputs``: input indices that must be constant tensors / must not be omitted
- ``per_tensor_only``: no per-channel quantised input
- ``reject_options`` (must be false/0), ``exclusive_options`` (at most one true), ``option_values`` (allowed
  values), ``option_min`` / ``option_max`` (bounds): builtin options by snake_case name, enums by NAME
- ``filter_range = {h = [lo, hi], w = [lo, hi]}``: kernel size (weights input 1, OHWI / 1HWC layout)
- ``max_output_hw``, ``max_rank``, ``max_dim``: output H and W, tensor rank, any dimension of run-time tensors
- ``static_shapes``: the model's inputs must have no dynamic (-1) dimension
"""
# long module: the delegate rule engine: op table loading, per-op checks and the verdict report belong together.
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property

from tflite_isp.core.errors import UserError, fail
from tflite_isp.export.convert import converters_dir
from tflite_isp.run.flatbuffer import OpInfo, TFLiteModel

DEFAULT_TARGETS = ("xnnpack", "gpu", "nnapi", "hexagon", "mediatek")
TABLE_KEYS = {"target", "all_ops", "ops"}
TARGET_KEYS = {"name", "title", "description", "sources", "deprecated", "default_sdk", "unlisted_note"}
META_KEYS = {"source", "hint", "reason", "if_sdk_at_most"}
FEATURE_LEVEL_BASE = 1_000_000  # NNAPI runtime feature level N is written as 1000000 + N (nnapi_delegate_kernel.h)
ANDROID = {27: "8.1", 28: "9", 29: "10", 30: "11", 31: "12", 32: "12L", 33: "13", 34: "14", 35: "15"}


# ---- tables ---------------------------------------------------------------------------------------------------

def _table_dir():
    return converters_dir()


def known_targets() -> list:
    return sorted(p.name[len("delegate_"):-5] for p in _table_dir().iterdir()
                  if p.name.startswith("delegate_") and p.name.endswith(".toml"))


@cache
def load_table(name: str) -> dict:
    """A target's table: {'target': {...}, 'all_ops': [rule], 'ops': {OP: [rule]}}, validated."""
    entry = _table_dir() / f"delegate_{name}.toml"
    label = f"converters/delegate_{name}.toml"
    try:
        raw = tomllib.loads(entry.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise fail(label, f"cannot read delegate table: {err}") from None
    table = {"target": raw.get("target", {}), "all_ops": _rule_list(raw.get("all_ops", [])),
             "ops": {op: _rule_list(rules) for op, rules in raw.get("ops", {}).items()}}
    problem = _table_problem(raw, table)
    if problem:
        raise fail(label, problem)
    return table


def _rule_list(rules) -> list:
    return [rules] if isinstance(rules, dict) else list(rules)


def _table_problem(raw: dict, table: dict):
    """The first thing wrong with a table (unknown keys, a rule without source, SDK rules off NNAPI), or None."""
    if set(raw) - TABLE_KEYS:
        return f"unknown table keys {sorted(set(raw) - TABLE_KEYS)}"
    if set(table["target"]) - TARGET_KEYS:
        return f"unknown [target] keys {sorted(set(table['target']) - TARGET_KEYS)}"
    if not table["target"].get("name") or not table["target"].get("sources"):
        return "[target] needs a name and sources"
    rules = [("all_ops", r) for r in table["all_ops"]]
    rules += [(op, r) for op, op_rules in table["ops"].items() for r in op_rules]
    for where, rule in rules:
        unknown = set(rule) - RULE_KEYS
        if unknown:
            return f"{where}: unknown rule keys {sorted(unknown)}"
        if not isinstance(rule.get("source"), str) or not rule["source"].strip():
            return f"{where}: every rule needs a source"
        if ({"min_sdk", "if_sdk_at_most"} & set(rule)) and "default_sdk" not in table["target"]:
            return f"{where}: SDK rules need a default_sdk in [target]"
    return None


# ---- targets --------------------------------------------------------------------------------------------------

def split_runtime(text: str) -> tuple:
    """'nnapi:29@2.4' -> ('nnapi:29', '2.4'): the runtime version a device ships (for the lint rules), or None."""
    spec, at, version = str(text).strip().partition("@")
    parts = version.split(".")
    if at and not (2 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
        raise UserError(f"target {text!r}: the runtime version after '@' must look like 2.4 or 2.21.0")
    return spec, (version or None)


def parse_target(text: str) -> tuple:
    """'nnapi:29' -> ('nnapi', 29); 'gpu' -> ('gpu', None); 'nnapi:fl7' -> ('nnapi', 1000007); a runtime
    version ('nnapi:29@2.4') is checked and left to the lint rules."""
    name, _, level = split_runtime(text)[0].strip().lower().partition(":")
    known = known_targets()
    if name not in known:
        raise UserError(f"unknown target {name!r}; known: {', '.join(known)}")
    if not level:
        return name, None
    if "default_sdk" not in load_table(name)["target"]:
        raise UserError(f"target {text!r}: an SDK level applies to nnapi only")
    try:
        sdk = FEATURE_LEVEL_BASE + int(level[2:]) if level.startswith("fl") else int(level)
    except ValueError:
        raise UserError(f"target {text!r}: SDK level must be a number like nnapi:29 (or nnapi:fl7)") from None
    if sdk < 27:
        raise UserError(f"target {text!r}: the NNAPI delegate needs SDK >= 27 (Android 8.1)")
    return name, sdk


def sdk_label(sdk: int) -> str:
    if sdk >= FEATURE_LEVEL_BASE:
        return f"feature level {sdk - FEATURE_LEVEL_BASE}"
    return f"SDK {sdk} (Android {ANDROID[sdk]})" if sdk in ANDROID else f"SDK {sdk}"


def _target_label(name: str, sdk) -> str:
    if sdk is None:
        return name
    return f"{name}:fl{sdk - FEATURE_LEVEL_BASE}" if sdk >= FEATURE_LEVEL_BASE else f"{name}:{sdk}"


# ---- reports --------------------------------------------------------------------------------------------------

@dataclass
class OpVerdict:
    """One op on one target: delegable or not, and why (reasons), how to fix it (hints), and where that is written."""

    index: int
    op: str
    version: int
    delegable: bool
    reasons: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    sources: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.op, "version": self.version, "delegable": self.delegable,
                "reasons": self.reasons, "hints": self.hints, "sources": self.sources}


@dataclass
class TargetReport:
    """All ops of a model checked against one target (``target`` is the label, e.g. 'nnapi:29')."""

    target: str
    name: str
    sdk: int | None
    verdicts: list
    title: str = ""
    deprecated: str | None = None

    @property
    def fully_delegable(self) -> bool:
        return all(v.delegable for v in self.verdicts)

    @property
    def cpu_fallback(self) -> list:
        """The verdicts of the ops that are not delegated (they run on the TFLite CPU kernels)."""
        return [v for v in self.verdicts if not v.delegable]

    def fallback_counts(self) -> dict:
        counts: dict = {}
        for v in self.cpu_fallback:
            counts[v.op] = counts.get(v.op, 0) + 1
        return counts

    def hints(self) -> list:
        return list(dict.fromkeys(h for v in self.verdicts for h in v.hints))

    basis = "predicted"  # from the op table, not a device run (a device's benchmark_model output is "measured")

    @property
    def table(self) -> str:
        """The op table the verdicts were predicted from."""
        return f"converters/delegate_{self.name}.toml"

    def summary(self) -> str:
        """One line, e.g. 'nnapi:29: 12/14 ops delegable (predicted); falls back: PRELU (2)'."""
        ok = sum(v.delegable for v in self.verdicts)
        line = f"{self.target}: {ok}/{len(self.verdicts)} ops delegable (predicted from {self.table})"
        counts = self.fallback_counts()
        if counts:
            line += "; falls back: " + ", ".join(f"{op} ({n})" for op, n in counts.items())
        return line

    def to_dict(self) -> dict:
        return {"target": self.target, "name": self.name, "sdk": self.sdk, "title": self.title,
                "basis": self.basis, "table": self.table,
                "deprecated": self.deprecated, "fully_delegable": self.fully_delegable,
                "delegable_ops": sum(v.delegable for v in self.verdicts), "total_ops": len(self.verdicts),
                "fallback": self.fallback_counts(), "hints": self.hints(), "summary": self.summary(),
                "ops": [v.to_dict() for v in self.verdicts]}


# ---- checking -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    model: TFLiteModel
    target: str
    sdk: int | None

    @cached_property
    def unpacked_weights(self) -> set:
        """Indices of tensors that DEQUANTIZE makes from a constant (FP16 weights): delegates fold them into
        constants when they load the graph (XNNPACK's static unpacking), so they count as constant inputs."""
        return {t.index for op in self.model.ops if op.name == "DEQUANTIZE"
                and all(i is None or i.is_constant for i in op.inputs) for t in op.outputs}


def check(model: TFLiteModel, target: str) -> TargetReport:
    """Check every op of ``model`` against ``target`` ('nnapi:29', 'gpu', ...)."""
    name, sdk = parse_target(target)
    table = load_table(name)
    meta = table["target"]
    sdk = meta.get("default_sdk") if sdk is None else sdk
    ctx = _Context(model, name, sdk)
    verdicts = [_check_op(op, table, ctx) for op in model.ops]
    return TargetReport(target=_target_label(name, sdk), name=name, sdk=sdk, verdicts=verdicts,
                        title=meta.get("title", name), deprecated=meta.get("deprecated"))


def check_all(model: TFLiteModel, targets=None) -> dict:
    """{target label: TargetReport} for the given targets (all five by default)."""
    reports = [check(model, t) for t in (targets or DEFAULT_TARGETS)]
    return {r.target: r for r in reports}


def _check_op(op: OpInfo, table: dict, ctx: _Context) -> OpVerdict:
    """Apply the target-wide rules and the op's own rules; an op missing from the table is not delegable."""
    reasons, hints, sources = [], [], []
    op_rules = table["ops"].get(op.name)
    if op_rules is None:
        note = table["target"].get("unlisted_note")
        reasons.append(f"not in {ctx.target}'s supported op list" + (f" ({note})" if note else ""))
        sources.extend(table["target"]["sources"])
    applied = []
    for rule in table["all_ops"] + (op_rules or []):
        if not _applies(rule, ctx):
            continue
        applied.append(rule["source"])
        failed = _rule_failures(rule, op, ctx)
        if failed:
            reasons.extend([rule["reason"]] if "reason" in rule else failed)
            sources.append(rule["source"])
            if rule.get("hint"):
                hints.append(rule["hint"])
    delegable = not reasons
    return OpVerdict(index=op.index, op=op.name, version=op.version, delegable=delegable,
                     reasons=_unique(reasons), hints=_unique(hints), sources=_unique(applied if delegable else sources))


def _applies(rule: dict, ctx: _Context) -> bool:
    limit = rule.get("if_sdk_at_most")
    return limit is None or ctx.sdk is None or ctx.sdk <= limit


def _rule_failures(rule: dict, op: OpInfo, ctx: _Context) -> list:
    """The messages of every constraint of ``rule`` that ``op`` breaks (empty: the rule passes)."""
    failures = []
    for key, value in rule.items():
        if key in META_KEYS:
            continue
        failures.extend(CHECKS[key](op, value, ctx))
    limit = rule.get("if_sdk_at_most")
    if limit is not None:
        failures = [f"{msg} before {sdk_label(limit + 1)}" for msg in failures]
    return failures


def _unique(items) -> list:
    return list(dict.fromkeys(items))


# ---- constraints: each takes (op, rule value, context) and returns failure messages ---------------------------

def _supported(op, value, ctx):
    return [] if value else [f"not supported by {ctx.target}"]


def _min_sdk(op, value, ctx):
    if ctx.sdk is None or ctx.sdk >= value:
        return []
    return [f"needs NNAPI {sdk_label(value)}, target is {sdk_label(ctx.sdk)}"]


def _max_version(op, value, ctx):
    return [] if op.version <= value else [f"op version {op.version} > {value}, the highest {ctx.target} takes"]


def _run_time_inputs(op):
    """The inputs that carry data at run time; input 0 when all are constant (e.g. DEQUANTIZE of weights)."""
    present = [t for t in op.inputs if t is not None]
    live = [t for t in present if not t.is_constant]
    return live or present[:1]


def _dtypes(op, value, ctx):
    bad = _unique(t.dtype for t in _run_time_inputs(op) if t.dtype not in value)
    return [f"{d} input not supported (takes {', '.join(value)})" for d in bad]


def _output_dtypes(op, value, ctx):
    bad = _unique(t.dtype for t in op.outputs if t.dtype not in value)
    return [f"{d} output not supported (takes {', '.join(value)})" for d in bad]


def _input(op, i):
    return op.inputs[i] if i < len(op.inputs) else None


def _const_inputs(op, value, ctx):
    out = []
    for i in value:
        t = _input(op, i)
        if t is not None and not t.is_constant and t.index not in ctx.unpacked_weights:
            out.append(f"input {i} ({t.name}) is not a constant tensor")
    return out


def _required_inputs(op, value, ctx):
    return [f"optional input {i} is omitted" for i in value if _input(op, i) is None]


def _per_tensor_only(op, value, ctx):
    if not value:
        return []
    return [f"per-channel quantized {t.name} ({len(t.scales)} scales) not supported"
            for t in op.inputs if t is not None and t.per_channel]


def _reject_options(op, value, ctx):
    return [f"{k}={op.options[k]} not supported" for k in value if op.options.get(k)]


def _exclusive_options(op, value, ctx):
    set_ = [k for k in value if op.options.get(k)]
    return [f"{' and '.join(set_)} both set"] if len(set_) > 1 else []


def _option_values(op, value, ctx):
    return [f"{k}={op.options[k]} not supported (takes {', '.join(map(str, allowed))})"
            for k, allowed in value.items() if k in op.options and op.options[k] not in allowed]


def _option_min(op, value, ctx):
    return [f"{k}={op.options[k]} < {lo}" for k, lo in value.items() if k in op.options and op.options[k] < lo]


def _option_max(op, value, ctx):
    return [f"{k}={op.options[k]} > {hi}" for k, hi in value.items() if k in op.options and op.options[k] > hi]


def _filter_range(op, value, ctx):
    weights = _input(op, 1)
    if weights is None or len(weights.shape) != 4:
        return []
    sizes = {"h": weights.shape[1], "w": weights.shape[2]}
    return [f"filter {axis}={sizes[axis]} outside [{lo}, {hi}]"
            for axis, (lo, hi) in value.items() if not lo <= sizes[axis] <= hi]


def _max_output_hw(op, value, ctx):
    out = op.outputs[0] if op.outputs else None
    if out is None or len(out.shape) != 4 or max(out.shape[1:3]) <= value:
        return []
    return [f"output {out.shape[1]}x{out.shape[2]} larger than {value}x{value}"]


def _tensors(op):
    return [t for t in op.inputs if t is not None] + list(op.outputs)


def _max_rank(op, value, ctx):
    ranks = _unique(len(t.shape) for t in _tensors(op) if len(t.shape) > value)
    return [f"rank-{r} tensor (takes rank <= {value})" for r in ranks]


def _max_dim(op, value, ctx):
    dims = _unique(d for t in _tensors(op) if not t.is_constant for d in t.shape if d > value)
    return [f"dimension {d} > {value}" for d in dims]


def _static_shapes(op, value, ctx):
    if not value or not ctx.model.has_dynamic_shape:
        return []
    dynamic = [t for t in ctx.model.inputs if t.is_dynamic]
    return ["dynamic input shape (" + ", ".join(f"{t.name} {list(t.shape_signature)}" for t in dynamic) + ")"]


CHECKS = {
    "supported": _supported, "min_sdk": _min_sdk, "max_version": _max_version, "dtypes": _dtypes,
    "output_dtypes": _output_dtypes, "const_inputs": _const_inputs, "required_inputs": _required_inputs,
    "per_tensor_only": _per_tensor_only, "reject_options": _reject_options, "exclusive_options": _exclusive_options,
    "option_values": _option_values, "option_min": _option_min, "option_max": _option_max,
    "filter_range": _filter_range, "max_output_hw": _max_output_hw, "max_rank": _max_rank, "max_dim": _max_dim,
    "static_shapes": _static_shapes,
}
RULE_KEYS = set(CHECKS) | META_KEYS


# ---- output ---------------------------------------------------------------------------------------------------

def format_table(reports) -> str:
    """A per-op table (one column per target: ✓ delegable, ✗ not), then the reasons, hints and summaries."""
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    if not reports:
        return ""
    rows = [["#", "op", "v", *[r.target for r in reports]]]
    for i, first in enumerate(reports[0].verdicts):
        rows.append([str(first.index), first.op, str(first.version),
                     *["✓" if r.verdicts[i].delegable else "✗" for r in reports]])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += _section("why not", [_why_not(r.target, vs) for r in reports for vs in _grouped(r.cpu_fallback)])
    lines += _section("hints", [f"{r.target}  {h}" for r in reports for h in r.hints()])
    lines += _section("notes", [f"{r.target}  {r.deprecated}" for r in reports if r.deprecated])
    lines += _section("summary", [r.summary() for r in reports])
    return "\n".join(lines)


def _grouped(verdicts) -> list:
    """Verdicts with the same op and reasons, together (a U-Net repeats one refusal many times)."""
    groups = {}
    for v in verdicts:
        groups.setdefault((v.op, tuple(v.reasons)), []).append(v)
    return list(groups.values())


def _why_not(target: str, group: list) -> str:
    first = group[0]
    where = f"#{first.index}" if len(group) == 1 else f"{len(group)}x (#{', #'.join(str(v.index) for v in group[:6])}" \
        f"{', ...' if len(group) > 6 else ''})"
    return f"{target}  {first.op} {where}: {'; '.join(first.reasons)}"


def _section(title: str, items: list) -> list:
    return ["", f"{title}:", *[f"  {item}" for item in items]] if items else []
