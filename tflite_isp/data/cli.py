"""Dataset command line: sensor profiles, noise calibration, synthetic data, and what a dataset folder holds.

    python -m tflite_isp.data profile RAW [RAW ...] --out sensor.json
    python -m tflite_isp.data calibrate --dark DIR --flat DIR --profile sensor.json [--out sensor.json]
    python -m tflite_isp.data synth --out DIR [--task isp|lowlight|colorize|both] [--sensor sensor.json|NAME]
                                    [--photos DIR] [--iso 800,3200] [--ratios 100,300] [--seed N] [--small]
    python -m tflite_isp.data remosaic QUAD_DIR --out DIR
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

from tflite_isp.core.errors import UserError, fail, run_cli
from tflite_isp.data import camera_files, photos, remosaic, synth
from tflite_isp.raw import sensor

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
            extra += f", sensor {s['sensor']['name']}" if isinstance(s.get("sensor"), dict) else ""
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


def _numbers(text: str) -> list:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"expected comma-separated numbers, not {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"expected positive comma-separated numbers, not {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tflite_isp.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prof = sub.add_parser("profile", help="make a sensor profile (JSON) from one camera's RAW files")
    prof.add_argument("raw", nargs="+", type=Path, help="RAW files of one camera (DNG or the maker's format)")
    prof.add_argument("--out", required=True, type=Path, help="the profile to write (sensor.json)")
    prof.add_argument("--name", default="", help="profile name (default: the camera's make and model)")
    cal = sub.add_parser("calibrate", help="measure the sensor's noise from dark and flat frames (ELD's method)")
    cal.add_argument("--dark", required=True, type=Path, help="folder of dark frames (lens capped), per ISO")
    cal.add_argument("--flat", required=True, type=Path,
                     help="folder of flat-field frames: pairs at the same ISO and exposure, several exposures")
    cal.add_argument("--profile", required=True, help="the sensor profile to add the noise to (file or built-in)")
    cal.add_argument("--out", type=Path, help="where to write the updated profile (default: --profile itself)")
    synth_cmd = sub.add_parser("synth", help="write synthetic RAW-RGB data (bundled photos or yours, any sensor)")
    synth_cmd.add_argument("--out", required=True, type=Path, help="new or empty folder")
    synth_cmd.add_argument("--task", choices=("isp", "lowlight", "colorize", "both", "camera"), default="both",
                           help="both: DIR/isp and DIR/lowlight (default); otherwise the dataset is DIR itself; "
                                "camera: a --sensor's own files (shots/, dark/, flat/ DNGs) to profile and calibrate")
    synth_cmd.add_argument("--sensor", help=f"sensor profile JSON or built-in ({', '.join(sorted(sensor.BUILTIN))}); "
                                            "default: each task's embedded sensor")
    synth_cmd.add_argument("--photos", type=Path, help="folder of your own sRGB photos (default: bundled photos)")
    synth_cmd.add_argument("--iso", type=_numbers, help="ISOs to draw noise at, e.g. 800,3200 (needs calibration)")
    synth_cmd.add_argument("--ratios", type=_numbers, help="low-light amplification ratios (default 100,250,300)")
    synth_cmd.add_argument("--size", type=int, help="crop size in RAW pixels (isp) or frame width (lowlight)")
    synth_cmd.add_argument("--crops", type=int, help="crops (isp) or scenes (lowlight) per training photo; shots "
                                                     "(camera)")
    synth_cmd.add_argument("--seed", type=int, default=0)
    synth_cmd.add_argument("--small", action="store_true", help="a tiny set for tests")
    remo = sub.add_parser("remosaic", help="a Quad Bayer PNG-layout set remosaiced to Bayer (pixel swap), for "
                                           "4-channel models")
    remo.add_argument("dir", type=Path, help="the Quad Bayer set (mai21 or zurich layout, with sensor.json)")
    remo.add_argument("--out", required=True, type=Path, help="new or empty folder")
    info = sub.add_parser("info", help="count the pairs in a dataset folder")
    info.add_argument("dir", type=Path)
    return parser


def _synth(args) -> list:
    if args.out.exists() and not args.out.is_dir():
        raise fail(args.out, "exists and is not a folder")
    tasks = ("isp", "lowlight") if args.task == "both" else (args.task,)
    custom = {"sensor": args.sensor, "photos": args.photos, "iso": args.iso, "ratios": args.ratios}
    if "colorize" in tasks and any(custom.values()):
        raise UserError("--sensor, --photos, --iso and --ratios describe RAW data; colorize takes none of them")
    if args.ratios and "lowlight" not in tasks:
        raise UserError("--ratios is for --task lowlight")
    profile = sensor.load(args.sensor) if args.sensor else None
    if args.task == "camera":
        if profile is None or args.photos or args.ratios:
            raise UserError("--task camera writes one --sensor's files; it takes --iso but not --photos or --ratios")
        out = camera_files.make_camera(args.out, profile=profile, seed=args.seed, small=args.small, isos=args.iso,
                                       shots=args.crops)
        return [f"camera {out}: " + ", ".join(f"{sub} {len(list((out / sub).glob('*.dng')))} DNGs"
                                              for sub in ("shots", "dark", "flat"))]
    sources = photos.from_folder(args.photos) if args.photos else None
    lines = []
    for task in tasks:
        out = args.out / task if args.task == "both" else args.out
        extra = {} if task == "colorize" else {"profile": profile, "photos": sources, "isos": args.iso}
        if task == "lowlight":
            extra.update(ratios=args.ratios, scenes_per_photo=args.crops)
        elif task == "isp":
            extra.update(crops_per_photo=args.crops)
        synth.MAKERS[task](out, seed=args.seed, small=args.small, size=args.size, **extra)
        lines += describe(out)
    return lines


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "info":
        print("\n".join(describe(args.dir)))
    elif args.command == "synth":
        print("\n".join(_synth(args)))
    elif args.command == "remosaic":
        print("\n".join(describe(remosaic.remosaic_dataset(args.dir, args.out))))
    elif args.command == "profile":
        from tflite_isp.raw import camera  # lazy: rawpy and tifffile only for profiling

        if args.out.is_dir():
            raise fail(args.out, "is a folder; give the profile's file name (sensor.json)")
        profile = sensor.save(camera.profile_files(args.raw, name=args.name), args.out)
        print(sensor.summary(sensor.load(profile)))
    else:
        from tflite_isp.raw import calibrate  # lazy: only calibration reads dark and flat frames

        if str(args.profile) in sensor.BUILTIN and args.out is None:
            raise UserError(f"{args.profile} is built in; give --out for the calibrated copy")
        base = sensor.load(args.profile)
        noise = calibrate.calibrate_dirs(args.dark, args.flat)
        out = args.out or Path(args.profile)
        saved = sensor.save(sensor.with_noise(base, noise), out)
        print(sensor.summary(sensor.load(saved)))
    return 0


def entry() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    entry()
