"""A search's results: ``pareto.{md,json}``, the trial table and ``report.html`` (the Pareto front, every trial,
the pick by MAI score, and the target's ms-per-GMAC page when a per-op table exists)."""
from __future__ import annotations

import html
import io
import math
from pathlib import Path

import optuna

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError
from tflite_isp.score.leaderboard import mai_score
from tflite_isp.search.targets import parse_target

COMPLETE = optuna.trial.TrialState.COMPLETE


def rows(study) -> list:
    """Every trial as a flat record (finished ones with PSNR, ms, MAI score and whether on the front)."""
    front = {t.number for t in study.best_trials}
    out = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        r = {"trial": t.number, "state": t.state.name.lower(), "summary": a.get("summary", ""),
             "params": a.get("params"), "gmac": a.get("gmac"), "recipe": a.get("recipe"),
             "pruned_at": a.get("pruned_at"), "reason": a.get("reason"), "pareto": t.number in front,
             "seconds": round((t.datetime_complete - t.datetime_start).total_seconds(), 1)
             if t.datetime_complete and t.datetime_start else None}
        if t.state == COMPLETE:
            psnr, ms = t.values
            r.update(psnr=round(psnr, 3), ms=round(ms, 2), mai=round(mai_score(psnr, ms / 1000), 3),
                     keras_psnr=a.get("keras_psnr"), tflite=a.get("tflite"))
        out.append(r)
    return out


def pick(records: list) -> dict | None:
    """The Pareto trial with the best MAI score (PSNR + alpha * (0.2 - clip(t))) on this target."""
    front = [r for r in records if r["pareto"]]
    return max(front, key=lambda r: r["mai"]) if front else None


def write(study, cfg) -> Path:
    """Write pareto.json, pareto.md and report.html into the search folder; returns the HTML page."""
    records = rows(study)
    chosen = pick(records)
    settings = study.user_attrs.get("settings", {})
    folder = cfg.folder
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"study": cfg.name, "settings": settings, "pick": chosen,
           "pareto": [r for r in records if r["pareto"]], "trials": records}
    atomic.write_json(folder / "pareto.json", doc)
    atomic.write_text(folder / "pareto.md", markdown(records, chosen, settings))
    page = folder / "report.html"
    atomic.write_text(page, html_page(cfg.name, records, chosen, settings) + op_costs_html(settings))
    return page


_COLUMNS = (("trial", "trial"), ("psnr", "INT8 PSNR"), ("ms", "ms"), ("mai", "MAI score"), ("params", "params"),
            ("gmac", "GMAC"), ("summary", "candidate"))


def markdown(records: list, chosen, settings: dict) -> str:
    target = settings.get("target", "?")
    front = sorted((r for r in records if r["pareto"]), key=lambda r: r["ms"])
    lines = [f"# Pareto front on {target}", "",
             f"{sum(r['state'] == 'complete' for r in records)} complete, "
             f"{sum(r['state'] == 'pruned' for r in records)} pruned, "
             f"{sum(r['state'] == 'fail' for r in records)} failed trials. PSNR: the INT8 file on the validation "
             f"split after {settings.get('trial_steps')} proxy steps; ms: Full HD on {target} "
             f"({'predicted' if settings.get('latency') == 'predict' else 'measured'}).", "",
             "| " + " | ".join(h for _, h in _COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(k)) for k, _ in _COLUMNS) + " |" for r in front]
    if chosen:
        lines += ["", f"Pick by MAI score: trial {chosen['trial']} ({chosen['psnr']:.2f} dB, {chosen['ms']:.1f} ms): "
                      f"`{chosen['recipe']}`"]
    pruned = [r for r in records if r["state"] == "pruned"]
    if pruned:
        lines += ["", "## Pruned", ""] + [f"- trial {r['trial']} at {r['pruned_at']}: {r['reason']}" for r in pruned]
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v).replace("|", "/")


def _plot_svg(records: list, chosen) -> str:
    import matplotlib  # lazy: plotting only for the page

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # lazy: after the backend is chosen

    done = [r for r in records if r["state"] == "complete"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.scatter([r["ms"] for r in done], [r["psnr"] for r in done], c="#9ab", label="trials")
    front = sorted((r for r in done if r["pareto"]), key=lambda r: r["ms"])
    ax.plot([r["ms"] for r in front], [r["psnr"] for r in front], "o-", c="#c33", label="Pareto front")
    if chosen:
        ax.scatter([chosen["ms"]], [chosen["psnr"]], s=160, facecolors="none", edgecolors="k", label="pick")
    for r in done:
        ax.annotate(str(r["trial"]), (r["ms"], r["psnr"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("latency, ms (Full HD)")
    ax.set_ylabel("INT8 validation PSNR, dB")
    if done and max(r["ms"] for r in done) > 10 * max(min(r["ms"] for r in done), 1e-6):
        ax.set_xscale("log")
    ax.legend(loc="lower right")
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()[buf.getvalue().index("<svg"):]


def op_costs_html(settings: dict) -> str:
    """The target's guidelines from its per-op table: ms per GMAC and per MB moved, op by op (empty without one)."""
    from tflite_isp.search import latency  # lazy: the table reader only for this section

    try:
        table = latency.table_for(parse_target(settings.get("target", "local")), settings.get("table"))
    except UserError:
        return ""
    rows = "".join(f"<tr><td>{html.escape(r['key'])}</td><td>{r['probes']}</td><td>{_cell(r['ms_per_gmac'])}</td>"
                   f"<td>{_cell(r['ms_per_mb'])}</td></tr>" for r in latency.ms_per_gmac(table))
    return (f"<h2>Where {html.escape(latency.describe(table['description']))} spends time</h2>"
            f"<p>From its per-op table <code>{html.escape(table['path'])}</code>: mean ms per GMAC (MAC ops) and per "
            "MB read and written, over the probes of each op; thin convolutions cost bytes, not MACs.</p>"
            f"<table><tr><th>op</th><th>probes</th><th>ms / GMAC</th><th>ms / MB</th></tr>{rows}</table>")


def html_page(name: str, records: list, chosen, settings: dict) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in _COLUMNS) + "<th>state</th><th>why pruned</th>"
    body = "".join(
        f"<tr class='{'front' if r['pareto'] else ''}'>" + "".join(f"<td>{html.escape(_cell(r.get(k)))}</td>"
                                                                    for k, _ in _COLUMNS)
        + f"<td>{r['state']}</td><td>{html.escape(str(r.get('reason') or ''))}</td></tr>"
        for r in sorted(records, key=lambda r: (not r["pareto"], r.get("ms") or math.inf)))
    pick_line = (f"<p><b>Pick by MAI score</b>: trial {chosen['trial']}, {chosen['psnr']:.2f} dB at "
                 f"{chosen['ms']:.1f} ms &mdash; {html.escape(chosen['summary'])}</p>") if chosen else ""
    return ("<!doctype html><meta charset='utf-8'><title>search " + html.escape(name) + "</title>"
            "<style>body{font:14px sans-serif;margin:2em}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
            "tr.front{background:#fee}</style>"
            f"<h1>Search {html.escape(name)} on {html.escape(str(settings.get('target')))}</h1>{pick_line}"
            + (_plot_svg(records, chosen) if any(r["state"] == "complete" for r in records) else "")
            + f"<h2>Trials</h2><table><tr>{head}</tr>{body}</table>")
