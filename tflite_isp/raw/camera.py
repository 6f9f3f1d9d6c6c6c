"""A sensor profile from a camera's own RAW files: CFA, levels, colour matrices, white-balance spread, noise.

Reading is at the edge (:func:`profile_files`); the checks and the summaries are small functions of what was read.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tflite_isp.core.errors import fail
from tflite_isp.raw import calibrate, meta, rawio, sensor


def _colour_matrix(m: meta.FileMeta) -> tuple:
    """XYZ -> camera: the DNG's ColorMatrix1, else LibRaw's table for the camera (rawpy ``rgb_xyz_matrix``)."""
    matrix = m.color_matrix or m.libraw_matrix
    if matrix is None:
        raise fail(m.path, "has no colour matrix (no DNG ColorMatrix1 and LibRaw knows no matrix for this camera)")
    return matrix


def _same(values, what: str, paths) -> object:
    """The one value all files share; the first file that differs is a one-line error."""
    for value, path in zip(values, paths):
        if value != values[0]:
            raise fail(path, f"has {what} {value} but {Path(paths[0]).name} has {values[0]}; "
                             "a sensor profile describes one sensor mode")
    return values[0]


def wb_spread(wbs, margin: float = 0.05) -> tuple:
    """(red_gain, blue_gain) ranges over the files' as-shot white balance (R, Gr, Gb, B multipliers, green 1),
    widened by ``margin`` each side so synthesis covers light a little beyond what was shot."""
    wbs = np.asarray(wbs, np.float64)
    red, blue = wbs[:, 0], wbs[:, 3]
    return ((float(red.min()) * (1 - margin), float(red.max()) * (1 + margin)),
            (float(blue.min()) * (1 - margin), float(blue.max()) * (1 + margin)))


def file_noise(frame: rawio.RawFrame, m: meta.FileMeta) -> dict:
    """One file's noise as a per-ISO entry: its DNG NoiseProfile where present, else a rough flat-region estimate."""
    if m.noise_profile:
        result = calibrate.from_noise_profile(m.noise_profile, frame.black, frame.white, iso=m.iso)
    else:
        try:
            result = calibrate.estimate_single(frame.mosaic, frame.pattern, frame.black, frame.white)
        except ValueError as err:
            raise fail(m.path, f"cannot estimate its noise ({err}); calibrate with dark and flat frames") from None
    return {**result["isos"][0], "iso": m.iso, "source": result["source"]}


def noise_model(entries) -> dict:
    """The profile's ``eld`` noise from per-file entries: the median per ISO, and ELD's log-lines across ISOs."""
    by_iso = {}
    for entry in entries:
        by_iso.setdefault(entry.get("iso"), []).append(entry)
    table = []
    for iso, group in sorted(by_iso.items(), key=lambda kv: kv[0] or 0):
        row = {"iso": iso, "files": len(group)}
        for key in ("K", "read_sigma", "row_sigma"):
            values = [e[key] for e in group if e.get(key)]
            row[key] = float(np.median(values)) if values else None
        table.append(row)
    sources = sorted({e["source"] for e in entries})
    return sensor.eld_noise({"source": "; ".join(sources), "isos": table, "lines": calibrate.eld_lines(table)})


def profile_files(paths, *, name: str = "") -> sensor.SensorProfile:
    """Read every file and summarise them as one sensor profile (files of two cameras or modes: one line)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise fail("data profile", "give at least one RAW file")
    metas, frames, matrices = [], [], []
    for i, path in enumerate(paths):
        m = meta.read_meta(path)
        frame = rawio.read_raw(path)
        matrices.append(_colour_matrix(m))
        metas.append(m)
        frames.append(frame)
        if len(paths) > 5 and (i + 1) % 5 == 0:
            print(f"profile: read {i + 1}/{len(paths)} files", file=sys.stderr, flush=True)
    camera = meta.require_camera(metas)
    names = [str(p) for p in paths]
    pattern = _same([f.pattern for f in frames], "CFA", names)
    white = _same([f.white for f in frames], "white level", names)
    black = _same([tuple(f.black) for f in frames], "black levels", names)
    size = _same([f.mosaic.shape for f in frames], "size", names)
    red, blue = wb_spread([f.wb for f in frames])
    notes = []
    noise = noise_model([file_noise(f, m) for f, m in zip(frames, metas)])
    if "rough" in noise["source"]:
        notes.append("noise estimated from flat regions of ordinary photos (rough): run data calibrate")
    if len(paths) == 1:
        notes.append("one file: the white-balance range is that shot's +-5 %, so give several files for real use")
    return sensor.SensorProfile(
        name=name or camera or paths[0].stem, pattern=pattern, black=black, white=white,
        xyz_to_cam=matrices[0], noise=noise, red_gain=red, blue_gain=blue, make=metas[0].make,
        model=metas[0].model, forward_matrix=metas[0].forward_matrix, orientation=metas[0].orientation,
        size=tuple(size), files=tuple(p.name for p in paths), notes=tuple(notes))
