"""The package is the chain: import-linter's layers contract (pyproject.toml), no import cycle, small modules."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tflite_isp"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def test_layers_contract_holds():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint_imports), "--config", str(REPO / "pyproject.toml")], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _cycles(imports: dict) -> list:
    """Every module that can reach itself through imports (with the path found), by depth-first search."""
    found, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        stack.append(module)
        for child in sorted(imports.get(module, ())):
            if state.get(child) == "open":
                found.append(stack[stack.index(child):] + [child])
            elif child not in state:
                visit(child, stack)
        stack.pop()
        state[module] = "done"

    for module in sorted(imports):
        if module not in state:
            visit(module, [])
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    graph = grimp.build_graph("tflite_isp", include_external_packages=False)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    # a package's __init__ is imported by its children implicitly; only explicit imports count here
    assert _cycles(imports) == []


def _long_parts(path: Path) -> list:
    text = path.read_text()
    problems = []
    if len(text.splitlines()) > MAX_MODULE_LINES and "# long module:" not in text:
        problems.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            size = node.end_lineno - node.lineno + 1
            first = text.splitlines()[max(0, node.lineno - 3):node.lineno + 3]
            if size > MAX_FUNCTION_LINES and not any("# long function:" in line for line in first):
                problems.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {size} lines")
    return problems


def test_modules_and_functions_are_small_or_say_why():
    problems = [p for path in sorted(PACKAGE.rglob("*.py")) for p in _long_parts(path)]
    assert problems == []


def test_every_command_still_starts():
    """``python -m tflite_isp[.X] --help`` for every command the earlier flat layout had: each module still runs."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for command in ("tflite_isp", "tflite_isp.train", "tflite_isp.export", "tflite_isp.score", "tflite_isp.enhance",
                    "tflite_isp.ratio", "tflite_isp.data", "tflite_isp.android", "tflite_isp.jetson",
                    "tflite_isp.stream"):
        proc = subprocess.run([sys.executable, "-m", command, "--help"], capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=300)
        # absl's --help exits 1 after printing the usage; argparse's exits 0
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, (command, proc.stderr[-1500:])
        assert "python -m " + command in proc.stdout or "usage" in proc.stdout.lower(), (command, proc.stdout[:500])
