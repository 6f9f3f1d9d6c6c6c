"""The MAI 2021 score and the leaderboard table: one row per scored model, as Markdown, CSV and JSON.

Score (Ignatov et al., "Learned Smartphone ISP on Mobile NPUs with Deep Learning, Mobile AI
2021 Challenge", arXiv:2105.07809, section 2.5): PSNR + alpha * (0.2 - clip(t)), with t the
runtime in seconds on a Full HD input, clip(t) = min(max(t, 0.03), 5), alpha = 20 when
clip(t) <= 0.2 s and 0.5 above. Below 30 ms nothing more is gained; every millisecond under
the 200 ms budget is worth 0.02 dB, every millisecond over it 0.0005 dB.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from tflite_isp.core import atomic

FORMAT = "tflite_isp.score/1"

#: (JSON key, column title, format) of the table, in order.
COLUMNS = (
    ("name", "model", "{}"),
    ("precision", "precision", "{}"),
    ("framework", "framework", "{}"),
    ("size_kb", "size KB", "{:,.1f}"),
    ("macs_g", "GMACs", "{:.2f}"),
    ("psnr", "PSNR dB", "{:.3f}"),
    ("psnr_pooled", "PSNR pooled", "{:.3f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("quality", "quality from", "{}"),
    ("runtime_ms", "runtime ms", "{:,.1f}"),
    ("runtime_source", "runtime source", "{}"),
    ("score", "MAI score", "{:.3f}"),
)
#: a colourisation board's extra columns, after SSIM
COLOUR_COLUMNS = (("delta_e", "ΔE2000", "{:.2f}"), ("colourfulness", "colourfulness", "{:.1f}"))
ROW_FIELDS = tuple(key for key, _, _ in COLUMNS + COLOUR_COLUMNS) + ("model", "status", "error", "baseline", "path")


def columns(board: dict) -> tuple:
    """The table's columns: a colourisation board adds ΔE2000 and colourfulness after SSIM and has no MAI score."""
    if (board.get("data") or {}).get("task") != "colorize":
        return COLUMNS
    at = [key for key, _, _ in COLUMNS].index("ssim") + 1
    return tuple(c for c in COLUMNS[:at] + COLOUR_COLUMNS + COLUMNS[at:] if c[0] != "score")


def clip_runtime(seconds: float) -> float:
    """The challenge's runtime clip: faster than 30 ms counts as 30 ms, slower than 5 s as 5 s."""
    return min(max(seconds, 0.03), 5.0)


def mai_score(psnr: float, runtime_s: float) -> float:
    """PSNR + alpha * (0.2 - clip(t)); alpha 20 within the 200 ms budget, 0.5 beyond it."""
    if runtime_s is None or not math.isfinite(runtime_s) or runtime_s < 0:
        raise ValueError(f"runtime must be a non-negative number of seconds, not {runtime_s!r}")
    t = clip_runtime(runtime_s)
    alpha = 20.0 if t <= 0.2 else 0.5
    return psnr + alpha * (0.2 - t)


def new_row(name: str, **fields) -> dict:
    """A leaderboard row with every field present (None where unknown)."""
    unknown = set(fields) - set(ROW_FIELDS) - {"per_image", "runtime", "details"}
    if unknown:
        raise ValueError(f"unknown leaderboard fields {sorted(unknown)}")
    row = dict.fromkeys(ROW_FIELDS)
    row.update(name=name, status="ok", baseline=False, per_image=[], runtime=None, details={})
    row.update(fields)
    return row


def failed_row(name: str, error: str, **fields) -> dict:
    return new_row(name, status="failed", error=error, **fields)


def sort_rows(rows) -> list:
    """Scored rows by MAI score, then rows without a score by PSNR, then failed rows (in given order)."""
    ok = [r for r in rows if r["status"] == "ok"]
    scored = sorted((r for r in ok if r["score"] is not None), key=lambda r: -r["score"])
    unscored = sorted((r for r in ok if r["score"] is None), key=lambda r: -(r["psnr"] or -math.inf))
    return scored + unscored + [r for r in rows if r["status"] != "ok"]


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None or value == "":
        return "—"
    return fmt.format(value)


def to_markdown(board: dict) -> str:
    """The table as GitHub Markdown, failed rows with their error."""
    cols = columns(board)
    titles = ["#"] + [title for _, title, _ in cols]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for rank, row in enumerate(board["rows"], start=1):
        if row["status"] != "ok":
            cells = [str(rank), row["name"], "FAILED: " + str(row["error"]).replace("|", "\\|")] + \
                ["—"] * (len(cols) - 2)
        else:
            cells = [str(rank)] + [_cell(row, key, fmt) for key, _, fmt in cols]
            if row["baseline"]:
                cells[1] = f"*{cells[1]} (baseline)*"
        lines.append("| " + " | ".join(cells) + " |")
    data = board["data"]
    notes = [f"Data: {data['layout']}:{data['root']} {data['split']}, {data['images']} images.",
             board["headline"], f"Runtime: {board['runtime']}."]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def to_csv(board: dict) -> str:
    """One CSV line per row: the table's fields plus status and error, unformatted."""
    fields = ["rank", *(key for key, _, _ in columns(board)), "status", "error", "baseline", "path"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rank, row in enumerate(board["rows"], start=1):
        writer.writerow({**row, "rank": rank})
    return buf.getvalue()


def write(folder, board: dict) -> dict:
    """leaderboard.{md,csv,json} into ``folder``; returns {format: path}."""

    folder = Path(folder)
    paths = {ext: folder / f"leaderboard.{ext}" for ext in ("md", "csv", "json")}
    atomic.write_text(paths["md"], to_markdown(board))
    atomic.write_text(paths["csv"], to_csv(board))
    atomic.write_json(paths["json"], board)
    return paths


__all__ = ["FORMAT", "COLUMNS", "COLOUR_COLUMNS", "columns", "clip_runtime", "mai_score", "new_row", "failed_row",
           "sort_rows", "to_markdown",
           "to_csv", "write"]
