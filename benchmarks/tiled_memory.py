"""Peak memory of SID U-Net INT8 on one full-resolution 4240x2832 RAW frame: the whole frame at once vs tiles.

    .venv/bin/python benchmarks/tiled_memory.py                     # margins 16,32,64,96,128; about 2 min on 2 cores
    .venv/bin/python benchmarks/tiled_memory.py --margins 32,96 --threads 2

The concern it answers: on a Jetson Nano 2 GB, SID inference of a full 4240x2832 RAW took 4.5 GB. Here:

1. **The frame.** A real scikit-image photo (``coffee``, 600x400) is resized up to 4240x2832 and unprocessed
   into a noisy 10-bit RGGB Bayer RAW by the embedded ISP set's own code (``synth.isp_pair``: inverse tone
   curve, gamma, colour matrix, inverse white balance, mosaic, Brooks noise; ``synth.ISP_SENSOR`` levels), then
   written with ``dng.write_dng`` to ``build/tiled_memory/`` (reused when present). rawpy reads it back.
2. **The runs**, each in a FRESH process (``--child``), so the peak RSS is that process's own VmHWM
   (/proc/self/status): read the DNG with rawpy (``rawio.read_raw``), pack and normalise it as the export's
   manifest says (packing order, the file's black/white levels, clip; ``bayer.pack`` + ``bayer.normalise``, the
   same calls as ``pipeline.model_input``, which cannot be imported without TensorFlow), then
   - **whole, model_none**: the export's ``model_none.tflite`` (dynamic H, W) resized to the whole packed frame
     padded to the net's input multiple (16: 1416x2120 -> 1424x2128), run once (``tiling.run_tiled``, tile=None);
   - **whole, refitted**: the fixed Full HD ``model.tflite`` rewritten for the whole padded frame (``refit``:
     shapes only; same ops, weights and quantisation), run once the same way. It runs the same XNNPACK kernels as
     the tiles and is the reference for the comparison: ``model_none.tflite`` does not. Its output differs from
     ``model.tflite``'s on the same input by several int8 steps, because XNNPACK does not take all of its graph
     and LiteRT's built-in kernels round differently (both files give identical output with XNNPACK off);
   - **tiled**: the fixed Full HD ``model.tflite`` (544x960 packed) through ``tiling.run_tiled`` with overlapping
     tiles, once per ``--margins`` value (packed pixels kept on each side of a cut).
   The child imports only numpy, rawpy, ai_edge_litert and light tflite_isp modules (bayer, rawio, runtime,
   tiling, timing); it checks that TensorFlow was not loaded and records the top-level modules it held. It
   reports wall times (read, pack, model load, inference), RSS after imports, RSS before the model, and the
   peak RSS when the output is complete (the int8 output is then converted to quantisation codes and saved
   as .npy; that step is not counted in the peak).
3. **The comparison.** Each tiled output against the refitted whole-frame output (and, for information, the
   model_none one) in units of the int8 output's quantisation step (scale from the file): max |delta|, mean
   |delta|, and the share of pixels (any channel) and of values that differ. The target is "identical up to
   quantisation noise": max |delta| <= 1 step. The chosen margin is the smallest that meets it; all are
   reported. Second target: tiled peak RSS < 1 GB.

The model is ``runs/zoo/sid_unet/export/int8`` (trained and exported by ``zoo.prepare`` when missing).
Results: ``tiled_memory.{json,md}`` in ``--out`` (default ``benchmarks/results``), written atomically after
every run. The outputs (.npy, ~70 MB each) go to a temporary folder that is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import (
    REPO,
    add_common_args,
    comma_list,
    finish_report,
    fmt_pct,
    header,
    log,
    md_table,
    nonnegative_int,
    parser,
    provenance_line,
    save_results,
    start_report,
)

NAME = "tiled_memory"
RAW_SIZE = (2832, 4240)  # RAW rows, columns (a 12 MP frame of SID's Sony A7S II class)
PHOTO = "coffee"
SEED = 0
TILE = (544, 960)  # the Full HD packed input of model.tflite
GB = 1e9


# --- Child: one fresh process per run --------------------------------------------------------------------------------

def child(args) -> int:
    """Read, pack, run (whole or tiled), report; imports nothing heavy."""
    t_start = time.perf_counter()
    import numpy as np

    from tflite_isp.raw import bayer, rawio
    from tflite_isp.run import tiling
    from tflite_isp.run.litert import Runner
    from tflite_isp.run.timing import current_rss_mb, peak_rss_mb

    spec = json.loads(Path(args.manifest).read_text())["input"]
    multiple = args.multiple
    rss_imports = current_rss_mb()
    t0 = time.perf_counter()
    frame = rawio.read_raw(args.dng)
    t_read = time.perf_counter() - t0
    rss_read = current_rss_mb()

    t0 = time.perf_counter()
    order = bayer.check_order(spec["order"])
    black = [frame.black[bayer.COLOURS.index(c)] for c in order] if spec["black"] == "file" else float(spec["black"])
    white = frame.white if spec["white"] == "file" else float(spec["white"])
    x = bayer.normalise(bayer.pack(frame.mosaic, frame.pattern, order), black, white, clip=bool(spec["clip"]))
    x = np.asarray(x, np.float32)
    raw_shape, pattern = frame.mosaic.shape, frame.pattern
    del frame
    t_pack = time.perf_counter() - t0
    rss_before_model = current_rss_mb()

    t0 = time.perf_counter()
    runner = Runner(args.model, threads=args.threads)
    t_load = time.perf_counter() - t0
    scale, zero = runner.output["quantization"]
    tile = None if args.mode == "whole" else TILE
    calls = []

    def run(batch):
        t = time.perf_counter()
        y = runner(batch)
        calls.append(time.perf_counter() - t)
        return y

    t0 = time.perf_counter()
    y = tiling.run_tiled(run, x, tile, margin=args.margin, multiple=multiple)
    t_infer = time.perf_counter() - t0
    peak = peak_rss_mb()
    rss_after = current_rss_mb()
    t_total = time.perf_counter() - t_start

    codes = np.round(y / np.float32(scale) + np.float32(zero)).astype(np.int16)  # int8 output codes (clipped)
    del y
    np.save(args.npy, codes)
    modules = sorted({m.split(".")[0] for m in sys.modules if not m.startswith("_")})
    heavy = [m for m in ("tensorflow", "keras", "tf_keras", "jax", "torch") if m in sys.modules]
    print(json.dumps({
        "mode": args.mode, "margin": None if tile is None else args.margin, "threads": args.threads,
        "model": args.model, "raw_shape": list(raw_shape), "pattern": pattern, "packed_shape": list(x.shape),
        "padded_shape": [tiling.padded_size(n, t, multiple) for n, t in zip(x.shape[:2], tile or (None, None))],
        "multiple": multiple, "tile": list(tile) if tile else None,
        "model_runs": len(calls), "output_scale": float(scale), "output_zero_point": int(zero),
        "read_s": round(t_read, 3), "pack_s": round(t_pack, 3), "load_s": round(t_load, 3),
        "inference_s": round(t_infer, 3), "model_call_s": [round(c, 3) for c in calls],
        "total_s": round(t_total, 3),
        "rss_after_imports_mb": round(rss_imports, 1), "rss_after_read_mb": round(rss_read, 1),
        "rss_before_model_mb": round(rss_before_model, 1), "rss_after_mb": round(rss_after, 1),
        "peak_rss_mb": round(peak, 1), "peak_rss_after_save_mb": round(peak_rss_mb(), 1),
        "heavy_modules_loaded": heavy, "top_level_modules": modules,
    }))
    return 0


# --- Parent ----------------------------------------------------------------------------------------------------------

def make_dng(path: Path) -> dict:
    """The 4240x2832 frame: a scikit-image photo resized up, unprocessed by synth.isp_pair, written as a DNG."""
    import numpy as np
    from skimage.transform import resize

    from tflite_isp.data import photos, synth
    from tflite_isp.raw import sensor as sensors
    from tflite_isp.raw import unprocess as up
    from tflite_isp.raw.dng import write_dng

    sensor = sensors.builtin(synth.ISP_PROFILE)
    meta = {"photo": PHOTO, "raw_shape": list(RAW_SIZE), "seed": SEED, "pattern": sensor.pattern,
            "black": int(sensor.black[0]), "white": int(sensor.white), "bit_depth": sensor.bit_depth}
    if path.is_file():
        return {**meta, "made": False}
    t0 = time.perf_counter()
    photo = photos.load_photo(PHOTO)
    srgb = np.clip(resize(photo, RAW_SIZE, order=1, anti_aliasing=False), 0.0, 1.0).astype(np.float32)
    gains = up.random_gains(np.random.default_rng(SEED))  # isp_pair draws these first from the same generator
    mosaic, _ = synth.isp_pair(srgb, np.random.default_rng(SEED))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(path, mosaic, pattern=sensor.pattern, black=int(sensor.black[0]), white=int(sensor.white),
              xyz_to_cam=sensor.xyz_to_cam, as_shot_neutral=[1.0 / gains[1], 1.0, 1.0 / gains[2]],
              model="synthetic 4240x2832")
    log(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s")
    return {**meta, "made": True, "make_s": round(time.perf_counter() - t0, 1)}


def sid_export(args) -> Path:
    """runs/zoo/sid_unet/export/int8, trained and exported by zoo.prepare when missing."""
    from tflite_isp.score import zoo

    root = Path(args.zoo_dir)
    folder = root / "sid_unet" / "export" / "int8"
    needed = [folder / n for n in ("model.tflite", "model_none.tflite", "manifest.json")]
    if not all(p.is_file() for p in needed):
        log(f"sid_unet INT8 export missing in {folder}; zoo.prepare trains/exports it")
        zoo.prepare("sid_unet", root, data="embedded:isp", steps=args.train_steps, seed=0, log=log)
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        from tflite_isp.core.errors import UserError

        raise UserError(f"not produced by zoo.prepare: {', '.join(missing)}")
    return folder


def run_child(mode: str, model: Path, folder: Path, dng: Path, npy: Path, margin: int, multiple: int,
              threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--model", str(model), "--manifest",
           str(folder / "manifest.json"), "--dng", str(dng), "--npy", str(npy), "--margin", str(margin),
           "--multiple", str(multiple), "--threads", str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed (status {proc.returncode}): {proc.stderr.strip()[-800:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "process_wall_s": round(wall, 2)}


def compare(tiled, whole) -> dict:
    """Differences in output quantisation steps (int8 codes)."""
    import numpy as np

    delta = np.abs(tiled.astype(np.int16) - whole.astype(np.int16))
    pixels = delta.max(axis=-1)
    counts = np.bincount(np.minimum(delta.ravel(), 3), minlength=4)
    return {"max_abs_steps": int(delta.max()), "mean_abs_steps": float(delta.mean()),
            "pixels_differing": float((pixels > 0).mean()), "values_differing": float((delta > 0).mean()),
            "pixels_over_1_step": float((pixels > 1).mean()),
            "values_by_abs_steps": {"0": int(counts[0]), "1": int(counts[1]), "2": int(counts[2]),
                                    ">=3": int(counts[3])}}


def _diff_cells(d) -> list:
    if not d:
        return ["–"] * 4
    return [str(d["max_abs_steps"]), fmt_pct(d["pixels_differing"], 3), fmt_pct(d["values_differing"], 3),
            f"{d['mean_abs_steps']:.2g}"]


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    padded = f"{s['padded_whole'][0]}x{s['padded_whole'][1]}"
    rows = [(f"whole frame, `model_none.tflite` resized to {padded}", report.get("whole_none"),
             (report.get("whole_none") or {}).get("diff_vs_whole_fixed"), None),
            (f"whole frame, `model.tflite` refitted to {padded} (reference)", report.get("whole_fixed"), None, None)]
    rows += [(f"tiled 544x960, margin {t['margin']}", t, t.get("diff_vs_whole_fixed"), t.get("diff_vs_whole_none"))
             for t in report["tiled"]]
    cells = []
    for name, r, d, dn in rows:
        if not r:
            continue
        if "error" in r:
            cells.append([name, f"failed: {r['error'][:100]}"])
            continue
        diff = _diff_cells(d) if d or "reference" not in name else ["(reference)", "–", "–", "–"]
        cells.append([name, r["model_runs"], f"{r['process_wall_s']:.1f}", f"{r['read_s']:.2f}", f"{r['pack_s']:.2f}",
                      f"{r['load_s']:.2f}", f"{r['inference_s']:.2f}", f"{r['rss_before_model_mb']:.0f}",
                      f"**{r['peak_rss_mb']:.0f}**", *diff, dn["max_abs_steps"] if dn else "–"])
    lines = [*header(report), "",
             f"# SID U-Net INT8 on one {s['raw_shape'][1]}x{s['raw_shape'][0]} RAW frame: whole vs tiled", "",
             "Each run is a fresh process: read the DNG (rawpy), pack, normalise, run, stitch. Δ is in int8 output "
             "quantisation steps against the whole frame through the same file (`model.tflite` refitted); the "
             "last column is against the whole frame through `model_none.tflite`.", "",
             *md_table(["run", "model runs", "wall s", "read s", "pack s", "load s", "inference s",
                        "RSS before model MiB", "peak RSS MiB", "max \\|Δ\\|", "pixels differing",
                        "values differing", "mean \\|Δ\\|", "max \\|Δ\\| vs model_none"], cells, "l" + "r" * 13)]
    v = report.get("verdict", {})
    lines += ["", "## Verdict", ""]
    if v:
        def gb(mb):
            return f"{mb:.0f} MiB ({mb * 2**20 / GB:.2f} GB)"

        if v.get("chosen_margin") is not None:
            lines.append(f"- Chosen margin: **{v['chosen_margin']}** packed px ({2 * v['chosen_margin']} RAW px) per "
                         "side of each cut: the smallest margin whose tiled output equals the whole frame through "
                         "the same file up to quantisation noise (max |Δ| ≤ 1 step).")
        else:
            lines.append("- **No margin met the target** (max |Δ| ≤ 1 step against the whole frame); the table "
                         "shows how far each was.")
        radius = s.get("receptive_radius")
        if radius:
            safe = [mg for mg in s["margins"] if mg >= radius]
            lines.append(f"- The graph's worst-case receptive radius is {radius:.0f} packed px "
                         "(`receptive_field.receptive_radius`: the deepest path, through the bottleneck). A margin at "
                         "least that large gives every kept "
                         "output pixel its whole receptive field, so the tiles reproduce the untiled output for any "
                         "frame"
                         + (f" (here {min(safe)})" if safe else "")
                         + "; a smaller one that met the target did so on this frame, where the far part of the "
                           "receptive field moved no int8 output across a rounding step.")
        parts = []
        if "whole_none_peak_mb" in v:
            parts.append(f"whole frame with `model_none.tflite` {gb(v['whole_none_peak_mb'])}")
        if "whole_fixed_peak_mb" in v:
            parts.append(f"whole frame with `model.tflite` refitted {gb(v['whole_fixed_peak_mb'])}")
        if v.get("chosen_peak_mb"):
            parts.append(f"tiled at margin {v['chosen_margin']} {gb(v['chosen_peak_mb'])}")
        parts.append(f"tiled, highest over all margins {gb(v['tiled_peak_max_mb'])}")
        lines.append("- Peak RSS: " + "; ".join(parts) + ". Target tiled < 1 GB: "
                     + ("**met**." if v["tiled_under_1gb"] else "**missed**."))
        lines.append(f"- Output quantisation step: {report['output_scale']:.6g} (int8 output, zero point "
                     f"{report['output_zero_point']}); Δ is counted in these steps on the clipped [0, 1] output.")
    lines += ["", "## How it was measured", "",
              f"- Frame: scikit-image `{s['photo']}` resized to {s['raw_shape'][1]}x{s['raw_shape'][0]}, "
              f"unprocessed by `synth.isp_pair` into a {s['bit_depth']}-bit {s['pattern']} RAW (black {s['black']}, "
              f"white {s['white']}), written by `dng.write_dng` ({report['dng_mib']:.0f} MiB), read by rawpy in "
              "every run (the *read* column).",
              f"- Model: `{s['model_dir']}` (INT8, int8 in/out), {s['threads']} LiteRT threads (XNNPACK, the default "
              f"delegate). Whole frame: the packed frame padded to {padded} (multiple {s['multiple']}) run once "
              "through `tiling.run_tiled(..., tile=None)`, with `model_none.tflite` (dynamic H, W; resized by "
              "`runtime.Runner`) and with `model.tflite` refitted to that size (`refit.refit`: the "
              "input, activation and TRANSPOSE_CONV output shapes scaled; ops, weights and quantisation "
              "untouched). Tiled: `model.tflite` at 544x960 through `tiling.run_tiled` "
              "(tiles per margin: " + ", ".join(f"{k}: {n}" for k, n in s["tiles"].items()) + ").",
              "- Every run imports only numpy, rawpy, ai_edge_litert and tflite_isp's bayer/rawio/runtime/tiling/"
              "timing (TensorFlow or Keras loaded in any run: "
              + ("**yes**" if any((r or {}).get("heavy_modules_loaded") for r in
                                  [report.get("whole_none"), report.get("whole_fixed"), *report["tiled"]])
                 else "no")
              + "). *RSS before model* = VmRSS after reading and packing the frame; *peak RSS* = VmHWM when the "
                "stitched output is complete (before it is turned into codes and saved). *wall s* is the whole "
                "process, start-up and the RAW read included.",
              "- Peak RSS includes what `run_tiled` and `Runner` allocate for the output: the dequantised float32 "
              "output of each model call and the stitched float32 frame (2848x4256x3 padded, 145 MB), clipped in "
              "place.",
              f"- Machine: {m['cpu']}, {m['usable_cores']} cores, {m['memory_gib']} GiB; ai-edge-litert "
              f"{m['ai_edge_litert']}, NumPy {m['numpy']}, Python {m['python']}; load average "
              f"{report['load_average_start']} at start, {report['load_average_end']} at end."]
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--margins", type=comma_list(cast=nonnegative_int), default="16,32,64,96,128",
                   help="Tile margins in packed pixels, comma-separated (default 16,32,64,96,128).")
    p.add_argument("--dng", default=str(REPO / "build" / "tiled_memory" / "frame_4240x2832.dng"),
                   help="The frame (made when missing; default build/tiled_memory/frame_4240x2832.dng).")
    p.add_argument("--zoo-dir", default=str(REPO / "runs" / "zoo"), help="Zoo runs (default runs/zoo).")
    p.add_argument("--train-steps", type=nonnegative_int, default=0,
                   help="Only when the zoo's sid_unet is missing: cap its training at N steps (0: recipe schedule).")
    add_common_args(p, threads=2, threads_help="LiteRT threads")
    # Internal: one measured run in this (fresh) process.
    p.add_argument("--child", choices=("whole", "tiled"), help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--manifest", help=argparse.SUPPRESS)
    p.add_argument("--npy", help=argparse.SUPPRESS)
    p.add_argument("--margin", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--multiple", type=int, default=16, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.mode = args.child
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    import numpy as np

    from tflite_isp.run import flatbuffer, receptive_field, tiling
    from tflite_isp.run.refit import refit

    t_start = time.perf_counter()
    out = Path(args.out)
    folder = sid_export(args)
    dng = Path(args.dng)
    frame = make_dng(dng)
    multiple = receptive_field.input_multiple(flatbuffer.read(folder / "model.tflite"))
    packed = (RAW_SIZE[0] // 2, RAW_SIZE[1] // 2)
    report = start_report(
        NAME, argv, threads=args.threads,
        settings={**frame, "dng": str(dng), "model_dir": str(folder.relative_to(REPO) if folder.is_relative_to(REPO)
                                                              else folder),
                  "threads": args.threads, "margins": args.margins, "multiple": multiple, "tile": list(TILE),
                  "packed_shape": list(packed),
                  "receptive_radius": receptive_field.receptive_radius(flatbuffer.read(folder / "model.tflite")),
                  "padded_whole": [tiling.padded_size(n, None, multiple) for n in packed],
                  "tiles": {str(mg): tiling.tile_count(packed, TILE, margin=mg, multiple=multiple)
                            for mg in args.margins}},
        dng_mib=round(dng.stat().st_size / 2**20, 1), whole_none=None, whole_fixed=None, tiled=[])
    log(provenance_line(report))

    def save():
        return save_results(out, NAME, report, markdown)

    with tempfile.TemporaryDirectory(prefix="tiled_memory-") as tmp:
        tmp = Path(tmp)
        padded = report["settings"]["padded_whole"]
        fitted = tmp / f"model_{padded[0]}x{padded[1]}.tflite"
        fitted.write_bytes(refit((folder / "model.tflite").read_bytes(), *padded))
        refs = {}
        for name, model in (("whole_none", folder / "model_none.tflite"), ("whole_fixed", fitted)):
            log(f"{name}: {model.name} on the whole frame, {padded[0]}x{padded[1]} packed")
            try:
                r = run_child("whole", model, folder, dng, tmp / f"{name}.npy", 0, multiple, args.threads)
                report.setdefault("output_scale", r["output_scale"])
                report.setdefault("output_zero_point", r["output_zero_point"])
                refs[name] = np.load(tmp / f"{name}.npy")
                log(f"{name}: peak RSS {r['peak_rss_mb']:.0f} MiB (before model {r['rss_before_model_mb']:.0f}), "
                    f"inference {r['inference_s']:.1f} s, process {r['process_wall_s']:.1f} s")
            except RuntimeError as err:
                log(f"{name}: FAILED: {err}")
                r = {"error": str(err)}
            report[name] = r
            save()
        if len(refs) == 2:
            report["whole_none"]["diff_vs_whole_fixed"] = compare(refs["whole_none"], refs["whole_fixed"])
        for margin in args.margins:
            log(f"tiled, margin {margin}: {report['settings']['tiles'][str(margin)]} tiles of 544x960")
            try:
                r = run_child("tiled", folder / "model.tflite", folder, dng, tmp / f"tiled_{margin}.npy", margin,
                              multiple, args.threads)
                report.setdefault("output_scale", r["output_scale"])
                report.setdefault("output_zero_point", r["output_zero_point"])
                tiled = np.load(tmp / f"tiled_{margin}.npy")
                for name, ref in refs.items():
                    r[f"diff_vs_{name}"] = compare(tiled, ref)
                del tiled
                (tmp / f"tiled_{margin}.npy").unlink()
                d = r.get("diff_vs_whole_fixed", {})
                log(f"tiled, margin {margin}: peak RSS {r['peak_rss_mb']:.0f} MiB, inference {r['inference_s']:.1f} s, "
                    f"process {r['process_wall_s']:.1f} s; vs whole (same file): max |Δ| {d.get('max_abs_steps')} "
                    f"steps, pixels differing {d.get('pixels_differing', float('nan')):.3%}")
            except RuntimeError as err:
                log(f"tiled, margin {margin}: FAILED: {err}")
                r = {"margin": margin, "error": str(err)}
            report["tiled"].append(r)
            save()

    ok = [t for t in report["tiled"] if "error" not in t]
    meets = [t for t in ok if "diff_vs_whole_fixed" in t and t["diff_vs_whole_fixed"]["max_abs_steps"] <= 1]
    chosen = min(meets, key=lambda t: t["margin"]) if meets else None
    wholes = {k: report[k] for k in ("whole_none", "whole_fixed") if report.get(k) and "error" not in report[k]}
    if ok and wholes:
        report["verdict"] = {
            "target": "tiled = whole frame through the same file up to quantisation noise (max |delta| <= 1 output "
                      "step); tiled peak RSS < 1 GB (1e9 bytes)",
            "chosen_margin": chosen["margin"] if chosen else None,
            "chosen_peak_mb": chosen["peak_rss_mb"] if chosen else None,
            **{f"{k}_peak_mb": v["peak_rss_mb"] for k, v in wholes.items()},
            "tiled_peak_max_mb": max(t["peak_rss_mb"] for t in ok),
            "tiled_under_1gb": (chosen or max(ok, key=lambda t: t["peak_rss_mb"]))["peak_rss_mb"] * 2**20 < GB,
        }
    finish_report(report, t_start)
    paths = save()
    log(f"done in {report['wall_s']:.0f} s: {', '.join(map(str, paths))}")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.exit(main())
    from tflite_isp.core.errors import run_cli

    sys.exit(run_cli(main))
