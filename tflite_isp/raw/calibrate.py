"""Sensor noise calibration, the ELD way: system gain K, read and row noise per ISO, and their log-linear lines.

After Wei et al., "A Physics-based Noise Formation Model for Extreme Low-light Raw Denoising" (CVPR 2020,
github.com/Vandermode/ELD), written anew. Dark frames give black, row and read noise; pairs of flat frames give
the photon transfer curve (variance = K * signal + read variance); lines of log(sigma) vs log(K) across ISOs are
what :class:`unprocess.EldCamera` samples from. Read noise is modelled as Gaussian: ELD also fits a Tukey-lambda
shape, which this module does not. Pure NumPy functions first; file reading only in :func:`calibrate` and below.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tflite_isp.core.errors import fail
from tflite_isp.raw.bayer import COLOURS, base_pattern, cfa_colour_mask, colour_positions, period
from tflite_isp.raw.meta import read_meta, require_camera
from tflite_isp.raw.rawio import RAW_SUFFIXES, read_raw
from tflite_isp.raw.unprocess import EldCamera

#: File name endings read as RAW (the same list as apps/enhance.py's, which cannot be imported from here).
NOISE_MODEL = "D = K * Poisson(signal / K) + N(0, read_sigma) + N(0, row_sigma) per row, in DN (Gaussian read " \
              "noise: ELD's Tukey-lambda read-noise shape is not fitted)"
SATURATED_FRACTION = 0.001  # a PTC point with more clipped pixels than this is left out of the fit
LEVEL_MISMATCH = 0.1  # a flat pair whose means differ by more than this fraction is not a pair


def planes(mosaic, pattern: str) -> dict:
    """Colour name -> float64 sub-image of that colour (H/2 x W/2), in :data:`bayer.COLOURS` order; a Quad Bayer
    colour's 2 x 2 blocks stay side by side."""
    x = np.asarray(mosaic, np.float64)
    p = period(pattern)
    where = colour_positions(base_pattern(pattern))
    rows, cols = (np.arange(x.shape[0]) % p) // (p // 2), (np.arange(x.shape[1]) % p) // (p // 2)
    return {c: x[np.ix_(rows == where[c][0], cols == where[c][1])] for c in COLOURS}


def _robust(x):
    """Clip hot and dead pixels: values beyond 8 robust sigmas (from the MAD) of the median."""
    med = np.median(x)
    spread = 1.4826 * np.median(np.abs(x - med)) or 1.0
    return np.clip(x, med - 8 * spread, med + 8 * spread)


def dark_stats(mosaic, pattern: str) -> dict:
    """Black per colour (R, Gr, Gb, B), read and row variance (DN^2) of one dark frame.

    Row noise is one offset per sensor row. The variance of a row mean holds read_var / width on top of it, and
    removing the row means takes read_var / width off each pixel; both are corrected here."""
    by_colour = planes(mosaic, pattern)
    black = tuple(float(np.mean(_robust(p))) for p in by_colour.values())
    x = np.asarray(mosaic, np.float64).copy()
    mask = cfa_colour_mask(pattern, *x.shape)
    for c, level in zip(COLOURS, black):
        x[mask == c] = _robust(x[mask == c]) - level
    width = x.shape[1]
    row_means = x.mean(axis=1, keepdims=True)
    read_var = float(np.var(x - row_means)) * width / (width - 1)
    row_var = max(float(np.var(row_means)) - read_var / width, 0.0)
    return {"black": black, "read_var": read_var, "row_var": row_var}


def flat_pair_stats(a, b, pattern: str, black, white: float) -> list:
    """Photon-transfer points of one flat pair, one per colour plane: (signal, variance, clipped fraction).

    Signal is the pair's mean minus black; variance is var(a - b) / 2, which cancels fixed-pattern noise (PRNU,
    vignetting). Row offsets of the difference are removed first (row noise is not shot or read noise), with the
    width / (width - 1) correction for what that takes off the read and shot noise."""
    points = []
    pa, pb = planes(a, pattern), planes(b, pattern)
    for i, c in enumerate(COLOURS):
        diff = pa[c] - pb[c]
        diff = diff - diff.mean(axis=1, keepdims=True)
        width = diff.shape[1]
        variance = float(np.var(diff)) / 2.0 * width / (width - 1)
        signal = float((pa[c].mean() + pb[c].mean()) / 2.0 - black[i])
        clipped = float(np.mean((pa[c] >= white) | (pb[c] >= white)))
        points.append((signal, variance, clipped))
    return points


def fit_ptc(signal, variance) -> dict:
    """Fit variance = K * signal + read_var by least squares weighted by 1 / variance^2 (a sample variance's
    spread grows with its value); R^2 and the residuals' relative RMS say how straight the curve was."""
    s, v = np.asarray(signal, np.float64), np.asarray(variance, np.float64)
    w = 1.0 / np.maximum(v, 1e-12)
    design = np.stack([s, np.ones_like(s)], axis=1)
    (k, read_var), *_ = np.linalg.lstsq(design * w[:, None], v * w, rcond=None)
    residual = v - (k * s + read_var)
    total = float(np.sum((v - v.mean()) ** 2)) or 1.0
    return {"K": float(k), "read_var": float(read_var), "r2": 1.0 - float(np.sum(residual**2)) / total,
            "rel_rms_residual": float(np.sqrt(np.mean((residual * w) ** 2))), "points": int(s.size)}


def fit_log_line(k, sigma) -> list:
    """ELD's line log(sigma) = slope * log(K) + bias, with the residuals' sigma: [slope, bias, sigma].

    One K gives slope 0 (nothing to fit a slope from) and sigma 0; two give an exact line (sigma 0)."""
    x, y = np.log(np.asarray(k, np.float64)), np.log(np.asarray(sigma, np.float64))
    if x.size == 1 or np.ptp(x) == 0:
        return [0.0, float(y.mean()), float(y.std())]
    slope, bias = np.polyfit(x, y, 1)
    residual = y - (slope * x + bias)
    dof = max(x.size - 2, 1)
    return [float(slope), float(bias), float(np.sqrt(np.sum(residual**2) / dof)) if x.size > 2 else 0.0]


def eld_lines(table: list) -> dict:
    """Across the per-ISO table: K range and the read (g_scale) and row (r_scale) lines, None where no entry has
    the numbers. With one ISO both lines have slope 0."""
    with_k = [e for e in table if e.get("K")]
    if not with_k:
        return {"k_min": None, "k_max": None, "g_scale": None, "r_scale": None, "note": "no K measured"}
    ks = [e["K"] for e in with_k]
    read = [e for e in with_k if e.get("read_sigma")]
    row = [e for e in with_k if e.get("row_sigma")]
    note = "one ISO: the lines have slope 0" if len(set(ks)) == 1 else f"fitted over {len(set(ks))} ISOs"
    return {"k_min": float(min(ks)), "k_max": float(max(ks)),
            "g_scale": fit_log_line([e["K"] for e in read], [e["read_sigma"] for e in read]) if read else None,
            "r_scale": fit_log_line([e["K"] for e in row], [e["row_sigma"] for e in row]) if row else None,
            "note": note}


def eld_camera(result: dict) -> EldCamera:
    """The :class:`unprocess.EldCamera` of a calibration dict; no row-noise line means negligible row noise."""
    lines = result["lines"]
    if lines["k_min"] is None or lines["g_scale"] is None:
        raise ValueError(f"{result.get('source', 'calibration')} has no K or read-noise line")
    r_scale = lines["r_scale"] or [0.0, float(np.log(1e-6)), 0.0]
    return EldCamera(k_min=lines["k_min"], k_max=lines["k_max"], g_scale=tuple(lines["g_scale"]),
                     r_scale=tuple(r_scale))


def _result(source: str, table: list, **extra) -> dict:
    return {"source": source, "noise_model": NOISE_MODEL, **extra, "isos": table, "lines": eld_lines(table)}


def from_noise_profile(pairs, black, white, *, iso=None) -> dict:
    """A DNG NoiseProfile ((S, O) pairs on [0, 1] signal; one pair or one per plane) as the calibration dict:
    K = S * (white - black) DN/e-, read_sigma = sqrt(O) * (white - black) DN; the profile says nothing of rows."""
    values = np.asarray(pairs, np.float64).reshape(-1, 2)
    scale = float(white) - float(np.mean(black))
    k = values[:, 0] * scale
    read = np.sqrt(values[:, 1]) * scale
    entry = {"iso": iso if iso is not None else "unknown", "K": float(k.mean()), "read_sigma": float(read.mean()),
             "row_sigma": None, "black": [float(b) for b in np.broadcast_to(black, (4,))], "white": float(white)}
    if len(values) > 1:
        entry["per_plane"] = {"K": k.tolist(), "read_sigma": read.tolist()}
    return _result("DNG NoiseProfile", [entry])


def _block_view(x, block: int):
    h, w = (x.shape[0] // block) * block, (x.shape[1] // block) * block
    return x[:h, :w].reshape(h // block, block, w // block, block).swapaxes(1, 2)


def single_file_points(plane, low: float, high: float, *, block: int = 16, bins: int = 24, keep: float = 0.2):
    """(signal, variance) points of one black-subtracted colour plane, one per brightness bin.

    The residual (x[i,j] - x[i,j+1] - x[i+1,j] + x[i+1,j+1]) / 2 of a 2 x 2 cell cancels smooth signal (also
    row offsets) and has the noise variance. Cells are split like a chequerboard: one half picks the flattest
    blocks of each bin (lowest ``keep`` fraction), the other half, with independent noise, measures them, so
    picking the low-variance blocks does not bias the variance low. Blocks with a pixel at ``low`` or ``high``
    (clipped, in black-subtracted DN) are left out."""
    x = np.asarray(plane, np.float64)
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:h, :w]
    cells = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    cell_block = block // 2
    res = _block_view(cells, cell_block).reshape(-1, cell_block * cell_block)
    chequer = ((np.arange(cell_block)[:, None] + np.arange(cell_block)[None, :]) % 2 == 0).ravel()
    pick, measure = res[:, chequer].var(axis=1, ddof=1), res[:, ~chequer].var(axis=1, ddof=1)
    pixels = _block_view(x, block).reshape(len(res), -1)
    mean = pixels.mean(axis=1)
    ok = (pixels.max(axis=1) < high) & (pixels.min(axis=1) > low)
    signal, variance = [], []
    bins = min(bins, int(np.sum(ok)) // 20)
    if bins < 1:
        return signal, variance
    edges = np.quantile(mean[ok], np.linspace(0, 1, bins + 1))
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = ok & (mean >= lo) & (mean <= hi)
        if np.sum(inside) < 10:
            continue
        flat = inside & (pick <= np.quantile(pick[inside], keep))
        signal.append(float(mean[flat].mean()))
        variance.append(float(measure[flat].mean()))
    return signal, variance


def estimate_single(mosaic, pattern: str, black, white: float, *, block: int = 16) -> dict:
    """A rough K and read sigma from one ordinary photo's flattest regions (no dark or flat frames needed).

    Textured blocks that pass as flat make it overestimate; expect a factor ~1.5, not the 5 % of flat frames."""
    black = np.broadcast_to(np.asarray(black, np.float64), (4,))
    signal, variance = [], []
    for i, p in enumerate(planes(mosaic, pattern).values()):
        s, v = single_file_points(p - black[i], -black[i], float(white) - black[i], block=block)
        signal += s
        variance += v
    if len(signal) < 2:
        raise ValueError("too few flat, unclipped regions to estimate noise from")
    ptc = fit_ptc(signal, variance)
    entry = {"iso": "unknown", "K": ptc["K"], "read_sigma": float(np.sqrt(max(ptc["read_var"], 0.0))),
             "row_sigma": None, "black": black.tolist(), "white": float(white), "ptc": ptc}
    return _result("single-file estimate from flat regions (rough)", [entry])


# --- Files ------------------------------------------------------------------------------

def raw_files(folder) -> list:
    """The RAW files of a folder (.dng and the usual camera endings), sorted by name; none is a one-line error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise fail(folder, "no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in RAW_SUFFIXES)
    if not files:
        raise fail(folder, f"no RAW files ({', '.join(RAW_SUFFIXES[:4])}, ...) in this folder")
    return files


class _Reader:
    """Reads frames one at a time, checking they are all one size and from one camera; reports progress."""

    def __init__(self, total: int, progress=None):
        self.total, self.done, self.progress, self.first, self.metas = total, 0, progress, None, {}

    def meta(self, path):
        if path not in self.metas:
            self.metas[path] = read_meta(path)
        return self.metas[path]

    def frame(self, path):
        frame = read_raw(path)
        if self.first is None:
            self.first = frame
        elif frame.mosaic.shape != self.first.mosaic.shape:
            (h, w), (h0, w0) = frame.mosaic.shape, self.first.mosaic.shape
            raise fail(path, f"is {h}x{w}, but {Path(self.first.path).name} is {h0}x{w0}; "
                             "calibration frames must all be one size")
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total, path)
        return frame


def _iso_key(meta):
    if not meta.iso:
        return "unknown"
    return int(meta.iso) if float(meta.iso).is_integer() else float(meta.iso)


def _iso_order(key):
    return (1, 0.0) if key == "unknown" else (0, float(key))


def _flat_pairs(flat_files, reader) -> dict:
    """ISO -> list of (path a, path b): flats grouped by ISO and exposure, paired in name order."""
    groups = {}
    for path in flat_files:
        m = reader.meta(path)
        groups.setdefault((_iso_key(m), m.exposure_time), []).append(path)
    pairs = {}
    for (iso, exposure), paths in sorted(groups.items(), key=lambda kv: (_iso_order(kv[0][0]), kv[0][1] or 0)):
        if len(paths) % 2:
            raise fail(paths[-1], f"flat frame has no partner at ISO {iso}, exposure {exposure or 'unknown'} s; "
                                  "flat frames come in pairs of the same ISO and exposure")
        pairs.setdefault(iso, []).extend(zip(paths[0::2], paths[1::2]))
    return pairs


def _darks(dark_files, reader) -> dict:
    """ISO -> averaged dark statistics (black per colour, read and row variance) and the frame count."""
    by_iso = {}
    for path in dark_files:
        frame = reader.frame(path)
        by_iso.setdefault(_iso_key(reader.meta(path)), []).append(dark_stats(frame.mosaic, frame.pattern))
    return {iso: {"black": tuple(np.mean([s["black"] for s in stats], axis=0).tolist()),
                  "read_var": float(np.mean([s["read_var"] for s in stats])),
                  "row_var": float(np.mean([s["row_var"] for s in stats])), "frames": len(stats)}
            for iso, stats in by_iso.items()}


def _ptc(iso, pairs, dark, reader) -> tuple:
    """The photon transfer fit of one ISO's flat pairs (black from its darks, else from the files), and white."""
    signal, variance, levels, excluded, white = [], [], 0, 0, None
    for path_a, path_b in pairs:
        a, b = reader.frame(path_a), reader.frame(path_b)
        white = a.white
        for frame in (a, b):
            if np.mean(frame.mosaic >= frame.white) > 0.5:
                raise fail(frame.path, f"flat frame is saturated ({100 * np.mean(frame.mosaic >= frame.white):.0f} % "
                                       "of pixels at the white level); expose it shorter")
        mean_a, mean_b = float(a.mosaic.mean()), float(b.mosaic.mean())
        if abs(mean_a - mean_b) > LEVEL_MISMATCH * max(mean_a, mean_b):
            raise fail(path_b, f"flat frame's mean {mean_b:.1f} DN differs from its partner {Path(path_a).name}'s "
                               f"{mean_a:.1f} DN; a pair must be two shots at one exposure")
        black = dark["black"] if dark else a.black
        used = [(s, v) for s, v, clipped in flat_pair_stats(a.mosaic, b.mosaic, a.pattern, black, a.white)
                if clipped <= SATURATED_FRACTION and s > 0]
        excluded += 4 - len(used)
        levels += bool(used)
        signal += [s for s, _ in used]
        variance += [v for _, v in used]
    if levels < 2:
        raise fail(pairs[0][0], f"ISO {iso}: flat pairs at {levels} exposure level(s) below saturation; "
                                "the photon transfer curve needs 2 or more")
    return {**fit_ptc(signal, variance), "levels": levels, "excluded_points": excluded}, white


def calibrate(dark_files, flat_files, *, progress=None) -> dict:
    """Noise calibration from dark frames and flat-frame pairs: per ISO K, read and row sigma, black; ELD lines.

    ``progress(done, total, path)`` is called after each frame is read. Read sigma comes from the dark frames
    (the PTC intercept where an ISO has none); row sigma only from dark frames."""
    dark_files, flat_files = [Path(p) for p in dark_files], [Path(p) for p in flat_files]
    if not dark_files and not flat_files:
        raise ValueError("calibrate needs dark or flat frames")
    reader = _Reader(len(dark_files) + len(flat_files), progress)
    camera = require_camera([reader.meta(p) for p in dark_files + flat_files])
    pairs = _flat_pairs(flat_files, reader)
    darks = _darks(dark_files, reader)
    table = []
    for iso in sorted(set(darks) | set(pairs), key=_iso_order):
        dark = darks.get(iso)
        ptc, white = _ptc(iso, pairs[iso], dark, reader) if iso in pairs else (None, None)
        read_var = dark["read_var"] if dark else max(ptc["read_var"], 0.0)
        table.append({
            "iso": iso, "K": ptc["K"] if ptc else None, "read_sigma": float(np.sqrt(read_var)),
            "row_sigma": float(np.sqrt(dark["row_var"])) if dark else None,
            "black": list(dark["black"]) if dark else None, "white": white,
            "read_sigma_from": "dark frames" if dark else "PTC intercept",
            "dark_frames": dark["frames"] if dark else 0, "flat_pairs": len(pairs.get(iso, ())), "ptc": ptc})
    return _result(f"calibrated from {len(dark_files)} dark and {len(flat_files)} flat frames", table,
                   camera=camera)


def _stderr_progress(done: int, total: int, path) -> None:
    print(f"calibrate: {done}/{total} {Path(path).name}", file=sys.stderr, flush=True)


def calibrate_dirs(dark_dir, flat_dir, *, progress_from: int = 8) -> dict:
    """:func:`calibrate` on every RAW file of a dark-frame folder and a flat-frame folder (sorted by name);
    progress lines go to stderr when there are ``progress_from`` files or more."""
    darks, flats = raw_files(dark_dir), raw_files(flat_dir)
    progress = _stderr_progress if len(darks) + len(flats) >= progress_from else None
    return calibrate(darks, flats, progress=progress)
