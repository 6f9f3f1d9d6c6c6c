"""benchmarks/bench_common.py: the provenance every results file records, and that every benchmark uses it."""
import ast
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
COMMON = BENCHMARKS / "bench_common.py"


def load_common():
    spec = importlib.util.spec_from_file_location("bench_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bc = load_common()

# Sapphire Rapids-like flags (trimmed), and a plain AVX2 CPU.
CPUINFO_SPR = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx f16c fma avx2 avx512f avx512bw avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu
"""
CPUINFO_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx fma f16c avx2 sse4a\n"


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    root = tmp_path / "repo"
    (root / "benchmarks" / "results").mkdir(parents=True)
    git(root, "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "a.py").write_text("x = 1\n")
    (root / "benchmarks" / "results" / "r.json").write_text("{}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def test_cpu_info_reads_model_and_isa_flags():
    spr = bc.cpu_info(CPUINFO_SPR)
    assert spr["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert spr["isa_flags"] == ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"]
    assert (spr["avx2"], spr["avx512"], spr["vnni"], spr["amx"]) == (True, True, True, True)
    epyc = bc.cpu_info(CPUINFO_AVX2)
    assert epyc["cpu_model"] == "AMD EPYC" and epyc["isa_flags"] == ["sse4_2", "avx", "avx2", "fma", "f16c"]
    assert (epyc["avx2"], epyc["avx512"], epyc["vnni"], epyc["amx"]) == (True, False, False, False)
    arm = bc.cpu_info("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm sve\nCPU part\t: 0xd40\n")
    assert arm["isa_flags"] == ["asimd", "asimddp", "i8mm", "sve"] and arm["avx2"] is False
    unknown = bc.cpu_info("")
    assert unknown["isa_flags"] is None and unknown["avx512"] is None and unknown["cpu_model"]


def test_git_info_commit_and_dirty_flag(repo):
    head = git(repo, "rev-parse", "HEAD").strip()
    assert bc.git_info(repo) == {"commit": head, "branch": git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip(),
                                 "dirty": False, "dirty_files": []}
    (repo / "new.py").write_text("untracked\n")  # untracked: not dirty
    (repo / "benchmarks" / "results" / "r.json").write_text('{"rewritten": 1}\n')  # results: not dirty
    assert bc.git_info(repo)["dirty"] is False
    (repo / "a.py").write_text("x = 2\n")  # a tracked file modified: dirty
    info = bc.git_info(repo)
    assert info["dirty"] is True and info["dirty_files"] == ["a.py"] and info["commit"] == head
    git(repo, "add", "a.py")  # staged counts too
    assert bc.git_info(repo)["dirty"] is True
    outside = bc.git_info(repo.parent)  # not a repository
    assert outside["commit"] is None and outside["dirty"] is None


def test_provenance_header_holds_commit_dirty_cpu_isa_threads_load(repo):
    (repo / "a.py").write_text("x = 3\n")
    p = bc.provenance(threads=[1, 2], repo=repo, cpuinfo=CPUINFO_SPR)
    for key in ("commit", "dirty", "cpu_model", "isa_flags", "avx2", "avx512", "vnni", "amx", "threads",
                "logical_cores", "usable_cores", "load_average_start"):
        assert key in p, key
    assert p["commit"] == git(repo, "rev-parse", "HEAD").strip() and p["dirty"] is True
    assert p["threads"] == [1, 2] and "avx512_vnni" in p["isa_flags"] and p["amx"] is True
    assert 1 <= p["usable_cores"] <= p["logical_cores"]
    if hasattr(os, "getloadavg"):
        assert len(p["load_average_start"]) == 3
    line = bc.provenance_line({"provenance": {**p, "load_average_end": [0.5, 0.4, 0.3]}})
    assert f"commit `{p['commit'][:12]}`" in line and "**dirty**" in line and "a.py" in line
    assert "Intel(R) Xeon(R) Platinum 8480+" in line and "avx512_vnni" in line
    assert "AVX2 yes, AVX-512 yes, VNNI yes, AMX yes" in line and "threads 1, 2" in line
    assert f"{p['load_average_start']} at start, [0.5, 0.4, 0.3] at end" in line
    clean = bc.provenance_line({"provenance": {**bc.provenance(2, repo=repo.parent, cpuinfo=CPUINFO_AVX2)}})
    assert "commit unknown" in clean and "AVX-512 no, VNNI no, AMX no" in clean and "threads 2" in clean
    assert bc.provenance_line({}).startswith("Provenance: not recorded")


def test_report_saved_atomically_with_provenance(tmp_path, monkeypatch):
    report = bc.start_report("demo", ["--threads", "2", "--out", "a b"], threads=2, settings={"x": 1}, results=[])
    assert report["command"] == "python benchmarks/demo.py --threads 2 --out 'a b'"
    assert report["complete"] is False and report["provenance"]["threads"] == 2
    assert report["machine"]["cpu"] == report["provenance"]["cpu_model"]

    def markdown(r):
        return "\n".join(["# Demo", "", *bc.header(r), "", *bc.md_table(["a", "b"], [[1, None]], "lr")]) + "\n"

    paths = bc.save_results(tmp_path / "out", "demo", report, markdown)
    assert [p.name for p in paths] == ["demo.json", "demo.md"]
    saved = json.loads(paths[0].read_text())
    assert saved["provenance"]["commit"] == bc.git_info()["commit"] and "dirty" in saved["provenance"]
    assert saved["load_average_end"] == saved["provenance"]["load_average_end"]
    md = paths[1].read_text()
    assert md.splitlines()[2].startswith("Generated by `python benchmarks/demo.py") and "(incomplete" in md
    assert md.splitlines()[4].startswith("Provenance: ") and "| 1 | – |" in md
    bc.finish_report(report, 0.0)
    assert report["complete"] and report["finished_at"] and report["wall_s"] > 0

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(bc.os, "replace", broken_replace)
    with pytest.raises(OSError):
        bc.save_results(tmp_path / "out", "demo", report, markdown)
    assert json.loads(paths[0].read_text())["complete"] is False  # the old file, whole
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo.json", "demo.md"]  # no temp left


def test_md_table_and_formatters():
    assert bc.md_table(["a", "b", "c"], [["x", 1, None], ["only"]], "lrc") == [
        "| a | b | c |", "|---|---:|:---:|", "| x | 1 | – |", "| only | | |"]
    assert (bc.fmt_ms(1234.5), bc.fmt_ms(12.34), bc.fmt_ms(0.1234), bc.fmt_ms(None)) == (
        "1,234", "12.3", "0.123", "–")
    assert (bc.fmt_bytes(3 * 2**20), bc.fmt_bytes(3 * 2**20, 1), bc.fmt_bytes(2048)) == ("3.00 MiB", "3.0 MiB",
                                                                                        "2.0 KiB")
    assert (bc.fmt_params(7.76e6), bc.fmt_params(485_000), bc.fmt_params(4652)) == ("7.76 M", "485 k", "4,652")
    assert (bc.fmt_pct(0.64), bc.fmt_pct(0.042), bc.fmt_pct(0.00123, 3), bc.fmt_pct(0, 3)) == (
        "64 %", "4.2 %", "0.123 %", "0")
    assert bc.fmt(None, ".2f") == "–" and bc.fmt(1.234, ".2f") == "1.23"


def test_argument_types():
    p = bc.add_common_args(bc.parser("demo", "d"), threads=2, seed=0, quick_help="smoke")
    p.add_argument("--models", type=bc.comma_list(("a", "b")), default="a,b")
    p.add_argument("--threads-list", type=bc.comma_list(cast=bc.positive_int), default="1,2")
    p.add_argument("--size", type=bc.size_hw, default="544x960")
    args = p.parse_args([])
    assert (args.models, args.threads_list, args.size, args.threads, args.seed, args.quick) == (
        ["a", "b"], [1, 2], (544, 960), 2, 0, False)
    assert args.out == str(bc.RESULTS)
    for bad in (["--models", "a,c"], ["--models", ","], ["--threads", "0"], ["--threads-list", "1,x"],
                ["--size", "544"], ["--size", "0x960"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


# The helpers that used to be copied into each benchmark, besides every function bench_common defines.
OLD_COPIES = {"_ms", "_mib", "_size", "_params", "_pct", "_f", "_list", "_cpu_seconds", "_children_cpu_s",
              "machine_extras", "to_markdown"}


def test_every_benchmark_uses_the_common_module_and_copies_none_of_it():
    shared = {n.name for n in ast.parse(COMMON.read_text()).body if isinstance(n, ast.FunctionDef)}
    scripts = sorted(p for p in BENCHMARKS.glob("*.py") if p != COMMON)
    assert {p.stem for p in scripts} >= {"ablation", "export_latency", "quant_fidelity", "runtime_agreement",
                                         "score_throughput", "suite", "tiled_memory", "train_throughput"}
    for path in scripts:
        text = path.read_text()
        tree = ast.parse(text)
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "bench_common" in imported, f"{path.name} does not import bench_common"
        assert "bench_machine" not in imported, path.name
        defs = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert not defs & (shared | OLD_COPIES), f"{path.name} defines its own {sorted(defs & (shared | OLD_COPIES))}"
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        own = calls & {"argparse.ArgumentParser", "sys.path.insert", "os.getloadavg", "atomic.write_json",
                       "atomic.write_text"}
        assert not own, f"{path.name} calls {sorted(own)} itself (use bench_common)"
