"""Dataset command line: synthesise the embedded datasets, or count what a dataset folder holds.

    python -m tflite_isp.data synth --out DIR [--task isp|lowlight|colorize|both] [--seed N] [--small]
    python -m tflite_isp.data info DIR

``--task both`` writes ``DIR/isp`` and ``DIR/lowlight`` (the cache's layout); a single task
writes its dataset directly into DIR. ``info`` understands the MAI 2021 layout
(``{split}/mediatek_raw`` + ``{split}/fujifilm``) and the SID one (``Sony_{split}_list.txt``),
real or synthetic.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tflite_isp.core.errors import fail, run_cli
from tflite_isp.data import synth

SPLITS = ("train", "val", "test")


def _pngs(folder: Path) -> list:
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def isp_counts(root: Path) -> dict:
    """Pairs per split in a MAI 2021 style folder; a RAW without its target (or vice versa) is an error."""
    counts = {}
    for split in SPLITS:
        raws = {p.name for p in _pngs(root / split / "mediatek_raw")}
        targets = {p.name for p in _pngs(root / split / "fujifilm")}
        if raws != targets:
            odd = sorted(raws ^ targets)[:3]
            raise fail(root / split, f"mediatek_raw and fujifilm do not pair up (e.g. {', '.join(odd)})")
        counts[split] = len(raws)
    return counts


def lowlight_counts(root: Path) -> dict:
    """Pairs, scenes and missing files per split from SID style ``Sony_{split}_list.txt`` files."""
    counts = {}
    for split in SPLITS:
        listing = root / f"Sony_{split}_list.txt"
        if not listing.is_file():
            continue
        lines = [line.split() for line in listing.read_text().splitlines() if line.strip()]
        if any(len(fields) < 2 for fields in lines):
            raise fail(listing, "every line needs a short and a long file name")
        files = {f for fields in lines for f in fields[:2]}
        counts[split] = {
            "pairs": len(lines),
            "scenes": len({fields[1] for fields in lines}),
            "missing": sum(not (root / f).is_file() for f in files),
        }
    return counts


def describe(root) -> list:
    """One line per dataset found in ``root`` (itself, or its ``isp``/``lowlight``/``colorize`` sub-folders)."""
    root = Path(root)
    if not root.is_dir():
        raise fail(root, "no such folder")
    lines = []
    if any((root / s / "mediatek_raw").is_dir() for s in SPLITS):
        counts = isp_counts(root)
        sensor = root / "sensor.json"
        extra = ""
        if sensor.is_file():
            s = json.loads(sensor.read_text())
            extra = f"; {s['pattern']} {s['bit_depth']}-bit, black {s['black']}, white {s['white']}"
        lines.append(f"isp {root}: " + ", ".join(f"{k} {v} pairs" for k, v in counts.items()) + extra)
    if any((root / f"Sony_{s}_list.txt").is_file() for s in SPLITS):
        counts = lowlight_counts(root)
        parts = [f"{k} {v['pairs']} pairs ({v['scenes']} scene{'s' * (v['scenes'] != 1)}"
                 + (f", {v['missing']} files missing)" if v["missing"] else ")") for k, v in counts.items()]
        lines.append(f"lowlight {root}: " + ", ".join(parts))
    manifest = root / "MANIFEST.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("task") == "colorize":
        counts = {s: sum(1 for _ in (root / s).glob("*.png")) for s in SPLITS}
        lines.append(f"colorize {root}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
    for sub in ("isp", "lowlight", "colorize"):
        if (root / sub).is_dir():
            lines += describe(root / sub)
    if not lines:
        raise fail(root, "no dataset here (expected {split}/mediatek_raw + fujifilm, or Sony_{split}_list.txt)")
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tflite_isp.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synth", help="write the synthetic datasets made from bundled photos")
    synth.add_argument("--out", required=True, type=Path, help="new or empty folder")
    synth.add_argument("--task", choices=("isp", "lowlight", "colorize", "both"), default="both",
                       help="both: DIR/isp and DIR/lowlight (default); otherwise the dataset is DIR itself")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--small", action="store_true", help="a tiny set for tests")
    info = sub.add_parser("info", help="count the pairs in a dataset folder")
    info.add_argument("dir", type=Path)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "info":
        print("\n".join(describe(args.dir)))
        return 0

    if args.out.exists() and not args.out.is_dir():
        raise fail(args.out, "exists and is not a folder")
    tasks = ("isp", "lowlight") if args.task == "both" else (args.task,)
    for task in tasks:
        out = args.out / task if args.task == "both" else args.out
        synth.MAKERS[task](out, seed=args.seed, small=args.small)
        print("\n".join(describe(out)))
    return 0


def entry() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry()
