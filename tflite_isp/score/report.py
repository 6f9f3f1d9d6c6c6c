"""The scoring report: one static HTML page (plus its PNGs) drawn from an already-computed leaderboard.

``write_report(folder, board, samples)`` writes ``folder/report.html`` and ``folder/report/*.png``:
the leaderboard table (baseline rows marked, learned rows below the baseline's PSNR flagged, failed
rows with their error), a PSNR-vs-runtime plot with its Pareto front, and for each sample a row of
crops (RAW preview, every output, the target) with per-pixel error heat-maps on one shared scale.
The page is self-contained: inline CSS, relative image paths, no external resources.
"""
# long module: one self-contained HTML page (styles, tables, plots, crops) written by plain functions.
from __future__ import annotations

import html
import math
import re
from operator import itemgetter
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from tflite_isp.core import atomic
from tflite_isp.raw import bayer

ASSETS = "report"  # the PNG folder beside report.html (relative image paths use it too)
ERROR_CMAP = "inferno"
ERROR_SCALE = 0.25  # heat-map colour range 0..ERROR_SCALE of mean |error| per pixel, shared by every map
MIN_CROP_PX = 192  # crops are shown upscaled by a whole factor to at least this width (pixelated)
PREVIEW_PERCENTILE = 99  # raw_preview brightens this percentile to 1
PREVIEW_GAMMA = 2.2
DASH = "\u2014"

# (key, header, decimals) of the numeric columns
NUMERIC_COLUMNS = (
    ("size_kb", "Size KB", 1),
    ("macs_g", "GMACs", 2),
    ("psnr", "PSNR dB", 2),
    ("psnr_pooled", "PSNR pooled dB", 2),
    ("ssim", "SSIM", 4),
)
COLOUR_NUMERIC = (("delta_e", "\u0394E2000", 2), ("colourfulness", "Colourfulness", 1))  # colourisation boards


def numeric_columns(rows: list) -> tuple:
    """The numeric columns, with a colourisation board's ΔE2000 and colourfulness when its rows have them."""
    return NUMERIC_COLUMNS + (COLOUR_NUMERIC if any(r.get("delta_e") is not None for r in rows) else ())

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; margin: 24px 32px;
       background: #fff; }
h1 { font-size: 24px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 30px 0 8px; border-bottom: 1px solid #dde2ea; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #4a5568; margin: 2px 0; }
.headline { margin: 10px 0 4px; max-width: 1000px; }
.note { color: #4a5568; font-size: 13px; max-width: 1000px; }
table#leaderboard { border-collapse: collapse; margin-top: 12px; font-variant-numeric: tabular-nums; }
#leaderboard th, #leaderboard td { padding: 5px 10px; border-bottom: 1px solid #e3e7ee; text-align: left;
                                   vertical-align: top; }
#leaderboard th { background: #f2f4f8; font-weight: 600; font-size: 13px; }
#leaderboard td.num, #leaderboard th.num { text-align: right; }
#leaderboard tr.baseline td { font-style: italic; background: #f7f7fb; }
#leaderboard tr.failed td { color: #8a94a6; }
#leaderboard td.error { color: #b42318; font-style: normal; white-space: pre-wrap; max-width: 640px; }
.badge { display: inline-block; font-size: 11px; font-style: normal; font-weight: 600; padding: 1px 6px;
         border-radius: 9px; margin-left: 6px; vertical-align: 1px; }
.badge.base { background: #e4e7f5; color: #3b4a8c; }
.badge.below { background: #fde4e1; color: #b42318; }
.badge.fail { background: #b42318; color: #fff; }
.src { color: #8a94a6; font-size: 12px; margin-left: 4px; }
#leaderboard td.quality { font-size: 13px; max-width: 260px; }
#leaderboard td.quality.approx { color: #9a5b00; }
.path { color: #8a94a6; font-size: 12px; }
.scroll { overflow-x: auto; }
.crops { display: grid; gap: 6px 12px; align-items: start; }
figure { margin: 0; width: min-content; }
figcaption { font-size: 12px; color: #4a5568; margin-top: 2px; }
figure img { image-rendering: pixelated; display: block; border: 1px solid #dde2ea; }
img.broken { outline: 3px solid #e00; min-width: 40px; min-height: 40px; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) loaded++;
  }
  document.body.dataset.imagesLoaded = loaded;
  document.body.dataset.imagesTotal = images.length;
});
"""


# ---- image helpers (pure) ----

def raw_preview(packed: np.ndarray, order) -> np.ndarray:
    """Packed normalised RAW (h, w, 4) float in [0,1], channels named by `order` e.g. ('B','Gr','R','Gb') -> an RGB
    preview (2h, 2w, 3) float [0,1]: R, mean of Gr/Gb, B, each upsampled 2x (nearest), brightened so the 99th
    percentile maps to 1 and gamma 1/2.2; it is a visualisation of the camera-space RAW, not a rendering."""
    packed = np.asarray(packed, dtype=np.float32)
    if packed.ndim != 3 or packed.shape[-1] != 4:
        raise ValueError(f"raw_preview needs a packed (h, w, 4) RAW, got shape {packed.shape}")
    channel = {colour: packed[..., i] for i, colour in enumerate(bayer.check_order(order))}
    rgb = np.stack([channel["R"], (channel["Gr"] + channel["Gb"]) / 2, channel["B"]], axis=-1)
    rgb = rgb.repeat(2, axis=0).repeat(2, axis=1)
    bright = float(np.percentile(rgb, PREVIEW_PERCENTILE))
    if bright <= 0:
        return np.zeros_like(rgb)
    return np.clip(rgb / bright, 0.0, 1.0) ** (1 / PREVIEW_GAMMA)


def error_map(output: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pixel mean absolute error over channels (H, W) float."""
    output, target = np.asarray(output, dtype=np.float32), np.asarray(target, dtype=np.float32)
    if output.shape != target.shape:
        raise ValueError(f"output {output.shape} and target {target.shape} differ in shape")
    return np.abs(output - target).mean(axis=-1)


def crop_psnr(output: np.ndarray, target: np.ndarray) -> float:
    """PSNR (dB, peak 1) of one crop, the output clipped to [0, 1]; inf when identical."""
    diff = np.clip(np.asarray(output, dtype=np.float64), 0, 1) - np.asarray(target, dtype=np.float64)
    mse = float(np.mean(diff ** 2))
    return math.inf if mse == 0 else -10 * math.log10(mse)


def pareto_front(points) -> list:
    """Indices of the (runtime_ms, psnr) points not dominated by another (lower runtime AND higher-or-equal psnr, or
    equal runtime and higher psnr); sorted by runtime."""
    points = [(float(r), float(p)) for r, p in points]

    def dominated(i):
        """Whether another point is faster and as good, or as fast and better."""
        r, p = points[i]
        return any((r2 < r and p2 >= p) or (r2 == r and p2 > p) for r2, p2 in points)

    def fastest_first(i):
        """Sort key: runtime, then higher PSNR first."""
        return points[i][0], -points[i][1]

    return sorted((i for i in range(len(points)) if not dominated(i)), key=fastest_first)


def slugify(name: str) -> str:
    """A safe file-name stem: lower-case letters, digits and single dashes."""
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "x"


def unique_slugs(names) -> dict:
    """name -> slug, with a numeric suffix where two names slugify alike."""
    out, used = {}, set()
    for name in names:
        if name in out:
            continue
        base = slug = slugify(name)
        n = 2
        while slug in used:
            slug, n = f"{base}-{n}", n + 1
        out[name] = slug
        used.add(slug)
    return out


# ---- PNG writers ----

def save_png(path: Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) float [0, 1] image as an 8-bit PNG, atomically."""

    pixels = (np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0, 1) * 255 + 0.5).astype(np.uint8)
    with atomic.replacing(path) as tmp:
        iio.imwrite(tmp, pixels, extension=".png")


def heat_rgb(errors: np.ndarray) -> np.ndarray:
    """(H, W) errors -> (H, W, 3) colours on the shared 0..ERROR_SCALE scale."""
    import matplotlib  # lazy: matplotlib loads only when a plot is drawn

    cmap = matplotlib.colormaps[ERROR_CMAP]
    return cmap(np.clip(errors / ERROR_SCALE, 0, 1))[..., :3]


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt  # lazy: matplotlib loads only when a plot is drawn

    try:
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, format="png", dpi=fig.dpi, bbox_inches="tight")
    finally:
        plt.close(fig)


def save_colorbar(path: Path) -> None:
    """The one colour bar shared by every error heat-map."""
    import matplotlib  # lazy: matplotlib loads only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib loads only when a plot is drawn

    fig, ax = plt.subplots(figsize=(4.5, 0.85), layout="constrained")
    norm = matplotlib.colors.Normalize(0, ERROR_SCALE)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=ERROR_CMAP), cax=ax, orientation="horizontal",
                       extend="max")
    bar.set_label("mean |output \u2212 target| per pixel (0..1 scale)", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    save_figure(fig, path)


def plottable(rows: list) -> list:
    """The ok rows with a positive runtime and a PSNR, i.e. the points of the runtime plot."""
    return [r for r in rows if r.get("status") == "ok" and isinstance(r.get("runtime_ms"), (int, float))
            and r["runtime_ms"] > 0 and isinstance(r.get("psnr"), (int, float))]


def save_pareto(path: Path, rows: list, baseline_psnr) -> None:
    """PSNR vs runtime (log x) scatter of `rows`, names labelled, baseline marked, Pareto front as a step line."""
    import matplotlib  # lazy: matplotlib loads only when a plot is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib loads only when a plot is drawn

    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=100, layout="constrained")
    xs, ys = [r["runtime_ms"] for r in rows], [r["psnr"] for r in rows]
    front = pareto_front(zip(xs, ys))
    if len(front) > 1:
        ax.step([xs[i] for i in front], [ys[i] for i in front], where="post", color="#2f6fd0", alpha=0.5, lw=1.5,
                zorder=1, label="Pareto front")
    if baseline_psnr is not None:
        ax.axhline(baseline_psnr, color="#888", ls="--", lw=1, zorder=0, label=f"baseline PSNR {baseline_psnr:.2f} dB")
    for i, row in enumerate(rows):
        base = bool(row.get("baseline"))
        ax.scatter(xs[i], ys[i], marker="D" if base else "o", s=60 if base else 45, zorder=3,
                   color="#555" if base else ("#2f6fd0" if i in front else "#9bb6e0"), edgecolor="#1d2430", lw=0.6)
        ax.annotate(str(row.get("name")), (xs[i], ys[i]), xytext=(6, 5), textcoords="offset points", fontsize=8,
                    style="italic" if base else "normal")
    ax.set_xscale("log")
    ax.set_xlabel("runtime per image (ms, log scale)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(True, which="both", alpha=0.25)
    ax.margins(x=0.15, y=0.12)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    save_figure(fig, path)


# ---- HTML ----

def esc(value) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def number(value, decimals: int) -> str:
    """A number to `decimals` places, or a dash for None / not a number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return DASH
    return "\u221e" if math.isinf(value) else f"{value:.{decimals}f}"


def best_baseline(rows: list):
    """(name, psnr) of the ok baseline row with the highest PSNR, or None."""
    bases = [r for r in rows if r.get("baseline") and r.get("status") == "ok"
             and isinstance(r.get("psnr"), (int, float))]
    if not bases:
        return None
    top = max(bases, key=itemgetter("psnr"))
    return top.get("name"), top["psnr"]


def below_baseline(row: dict, baseline) -> bool:
    """Whether `row` is a learned, scored model whose PSNR is under the best baseline's."""
    return (baseline is not None and not row.get("baseline") and row.get("status") == "ok"
            and isinstance(row.get("psnr"), (int, float)) and row["psnr"] < baseline[1])


def name_cell(row: dict, baseline) -> str:
    """The model cell: name, badges, and the model path in small print."""
    badges = ""
    if row.get("baseline"):
        badges += '<span class="badge base">baseline</span>'
    if row.get("status") != "ok":
        badges += '<span class="badge fail">failed</span>'
    if below_baseline(row, baseline):
        badges += (f'<span class="badge below" title="PSNR below the baseline {esc(baseline[0])} '
                   f'({baseline[1]:.2f} dB)">below baseline</span>')
    badges += lint_badge((row.get("details") or {}).get("lint"))
    path = f'<div class="path">{esc(row["path"])}</div>' if row.get("path") else ""
    return f"<td>{esc(row.get('name', '?'))}{badges}{path}</td>"


def lint_badge(lint) -> str:
    """The export's lint findings (its manifest) as a badge: counts shown, each rule and target on hover."""
    if not lint or not lint.get("findings"):
        return ""
    counts = [f"{lint[k]} {k[:-1] if lint[k] == 1 else k}" for k in ("errors", "warnings") if lint.get(k)]
    rules = sorted({f"{f['severity']} {f['rule']} ({f['target']}): {f['message']}" for f in lint["findings"]})
    kind = "fail" if lint.get("errors") else "below"
    return f'<span class="badge {kind}" title="{esc(chr(10).join(rules))}">lint: {esc(", ".join(counts))}</span>'


def runtime_cell(row: dict) -> str:
    """Runtime in ms with where it was measured, or a dash."""
    text = number(row.get("runtime_ms"), 1)
    source = row.get("runtime_source")
    if text != DASH and source:
        text += f'<span class="src">{esc(source)}</span>'
    return f'<td class="num">{text}</td>'


def quality_cell(row: dict) -> str:
    """How the row's PSNR/SSIM were produced (whole image, tiled, fixed canvas), flagged when not exact."""
    how = row.get("quality")
    if not how:
        return f"<td>{DASH}</td>"
    exact = how == "whole image" or how == "tiled, exact"
    return f'<td class="quality{"" if exact else " approx"}">{esc(how)}</td>'


def table_row(row: dict, rank, baseline, numeric=NUMERIC_COLUMNS) -> str:
    """One leaderboard <tr>."""
    ok = row.get("status") == "ok"
    classes = " ".join(c for c in ("baseline" if row.get("baseline") else "", "" if ok else "failed",
                                   "below-baseline" if below_baseline(row, baseline) else "") if c)
    cells = [f'<td class="num">{rank if rank is not None else DASH}</td>', name_cell(row, baseline),
             f"<td>{esc(row.get('precision') or DASH)}</td>", f"<td>{esc(row.get('framework') or DASH)}</td>"]
    if ok:
        cells += [f'<td class="num">{number(row.get(key), d)}</td>' for key, _, d in numeric]
        cells += [quality_cell(row), runtime_cell(row), f'<td class="num">{number(row.get("score"), 2)}</td>']
    else:
        span = len(numeric) + 3
        cells.append(f'<td class="error" colspan="{span}">{esc(row.get("error") or "failed (no error message)")}</td>')
    status = "ok" if ok else "failed"
    return (f'<tr class="{classes}" data-status="{status}" data-name="{esc(row.get("name", ""))}">'
            + "".join(cells) + "</tr>")


def table_html(rows: list, baseline) -> str:
    """The leaderboard table; ok rows ranked in board order, failed rows unranked."""
    head = ['<th class="num">#</th>', "<th>Model</th>", "<th>Precision</th>", "<th>Framework</th>"]
    numeric = numeric_columns(rows)
    head += [f'<th class="num">{esc(title)}</th>' for _, title, _ in numeric]
    head += ["<th>Quality from</th>", '<th class="num">Runtime ms</th>', '<th class="num">MAI score</th>']
    body, rank = [], 0
    for row in rows:
        ok = row.get("status") == "ok"
        rank += ok
        body.append(table_row(row, rank if ok else None, baseline, numeric))
    return (f'<div class="scroll"><table id="leaderboard"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def img_tag(src: str, alt: str, width: int, height: int) -> str:
    """An <img> shown at a whole-number upscale to at least MIN_CROP_PX wide; outlined red if it fails to load."""
    scale = max(1, math.ceil(MIN_CROP_PX / max(width, 1)))
    return (f'<img src="{esc(src)}" alt="{esc(alt)}" width="{width * scale}" height="{height * scale}" '
            f'onerror="this.classList.add(\'broken\')">')


def figure_html(src: str, caption: str, shape) -> str:
    """A captioned image cell."""
    return f"<figure>{img_tag(src, caption, shape[1], shape[0])}<figcaption>{esc(caption)}</figcaption></figure>"


def output_order(rows: list, sample: dict) -> list:
    """The sample's output names, in board order first, then any others as given."""
    outputs = sample.get("outputs") or {}
    names = [r.get("name") for r in rows if r.get("name") in outputs]
    return names + [n for n in outputs if n not in names]


def sample_html(folder: Path, index: int, sample: dict, rows: list, slugs: dict) -> str:
    """Write one sample's PNGs and return its section: crops on top, error heat-maps under the outputs."""
    stem = f"sample{index + 1}-{slugify(sample.get('name', index + 1))}"
    target = np.asarray(sample["target"], dtype=np.float32)
    names = output_order(rows, sample)
    top, bottom = [], ["<div></div>"]

    def put(suffix, image, caption):
        """Save `image` under the sample's stem and return its figure."""
        file = f"{stem}-{suffix}.png"
        save_png(folder / ASSETS / file, image)
        return figure_html(f"{ASSETS}/{file}", caption, image.shape)

    if sample.get("raw") is not None:
        top.append(put("raw", np.asarray(sample["raw"], dtype=np.float32), "RAW (camera-space preview)"))
    else:
        top.append("<div></div>")
    for name in names:
        output = np.asarray(sample["outputs"][name], dtype=np.float32)
        top.append(put(f"out-{slugs[name]}", output, str(name)))
        caption = f"error of {name} \u00b7 PSNR {number(crop_psnr(output, target), 2)} dB on this crop"
        bottom.append(put(f"err-{slugs[name]}", heat_rgb(error_map(output, target)), caption))
    top.append(put("target", target, "target"))
    columns = f"grid-template-columns: repeat({len(top)}, max-content);"
    return (f'<section class="sample"><h3>{esc(sample.get("name", index + 1))}</h3><div class="scroll">'
            f'<div class="crops" style="{columns}">{"".join(top)}{"".join(bottom)}</div></div></section>')


def samples_html(folder: Path, samples: list, rows: list) -> str:
    """The sample crops section with the shared colour bar, or a note when there are none."""
    if not samples:
        return '<h2>Sample crops</h2><p class="note">No sample crops were saved for this report.</p>'
    names = [r.get("name") for r in rows] + [n for s in samples for n in (s.get("outputs") or {})]
    slugs = unique_slugs(names)
    save_colorbar(folder / ASSETS / "error-scale.png")
    intro = (f'<p class="note">Each column is one model on the same crop; the heat-map under it is the per-pixel '
             f'mean absolute error against the target, coloured on one fixed 0\u2013{ERROR_SCALE:g} scale for every '
             f'map. The RAW preview is a gamma-brightened view of the camera-space RAW, not a rendering.</p>'
             f'<img src="{ASSETS}/error-scale.png" alt="error colour scale" onerror="this.classList.add(\'broken\')">')
    parts = [sample_html(folder, i, s, rows, slugs) for i, s in enumerate(samples)]
    return "<h2>Sample crops</h2>" + intro + "".join(parts)


def pareto_html(folder: Path, rows: list, baseline) -> str:
    """The runtime plot section (writes pareto.png), or a note when no runtime was measured."""
    points = plottable(rows)
    if not points:
        return ('<h2>PSNR vs runtime</h2><p class="note">No model has a measured runtime, so there is no '
                'PSNR/runtime plot.</p>')
    save_pareto(folder / ASSETS / "pareto.png", points, baseline[1] if baseline else None)
    marks = " Diamonds are baselines; the dashed line is the best baseline's PSNR." if baseline else ""
    return (f'<h2>PSNR vs runtime</h2><img src="{ASSETS}/pareto.png" alt="PSNR vs runtime" '
            f'onerror="this.classList.add(\'broken\')"><p class="note">Upper left is better. The step line is the '
            f'Pareto front: models that no other model beats on both PSNR and runtime.{marks}</p>')


def header_html(board: dict) -> str:
    """Title plus the data, runtime and creation lines."""
    data = board.get("data") or {}
    where = f"{data.get('layout', '?')}:{data.get('root', '?')}"
    lines = [f"Data: {where} \u00b7 split {data.get('split', '?')} \u00b7 {data.get('images', '?')} images"]
    if board.get("runtime"):
        lines.append(f"Runtimes: {board['runtime']}")
    if board.get("created"):
        lines.append(f"Created {board['created']}")
    return "<h1>Scoring report</h1>" + "".join(f'<p class="meta">{esc(line)}</p>' for line in lines)


def legend_html(board: dict, baseline) -> str:
    """The headline sentence and how to read the table's marks."""
    parts = []
    if board.get("headline"):
        parts.append(f'<p class="headline">{esc(board["headline"])}</p>')
    if baseline:
        parts.append(f'<p class="note">Baseline rows are in italics. <span class="badge below">below baseline</span> '
                     f'marks a learned model whose PSNR is under the best baseline\'s ({esc(baseline[0])}, '
                     f'{baseline[1]:.2f} dB). A dash means not measured.</p>')
    else:
        parts.append('<p class="note">A dash means not measured.</p>')
    parts.append('<p class="note"><em>Quality from</em>: <em>whole image</em> is the dynamic-shape '
                 '<code>model_none.tflite</code> on each whole test image (the MAI 2021 protocol); <em>tiled, '
                 'exact</em> stitches tiles cut at least the receptive radius from every kept pixel (the same '
                 'output); <em>inexact by N px</em> means the cuts came N packed pixels too close, and <em>fixed '
                 'canvas</em> that the image was mirror-padded into the fixed-size <code>model.tflite</code>. Rows in '
                 'amber are not the whole-image figure.</p>')
    return "".join(parts)


def page_html(board: dict, body: str) -> str:
    """The whole document around `body`."""
    title = esc(f"tflite_isp scoring report \u2014 {(board.get('data') or {}).get('layout', '')}".rstrip(" \u2014"))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{CSS}</style><script>{SCRIPT}</script></head>\n<body>\n{body}\n</body></html>\n")


def write_report(folder: Path, board: dict, samples: list) -> Path:
    """Write folder/report.html and folder/report/*.png; returns the html path."""
    folder = Path(folder)
    (folder / ASSETS).mkdir(parents=True, exist_ok=True)
    rows = list(board.get("rows") or [])
    baseline = best_baseline(rows)
    body = (header_html(board) + "<h2>Leaderboard</h2>" + table_html(rows, baseline) + legend_html(board, baseline)
            + pareto_html(folder, rows, baseline) + samples_html(folder, samples or [], rows))
    path = folder / "report.html"
    atomic.write_bytes(path, page_html(board, body).encode("utf-8"))
    return path
