"""The scorer diagnostics of a category as plots and an HTML section.

Everything is drawn from the diagnostics record (diagnostics/summary.py), so the asset's
UI metadata, the report and any later reader show the same numbers.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np
from matplotlib.figure import Figure

from ..diagnostics.controls import CONCATENATED, CONTROL_KINDS
from ..diagnostics.summary import CALIBRATED, SCORES, facts, markdown_table
from .inline_plots import intervals_markdown

COLOURS = {"lds": "#1b7837", CALIBRATED: "#762a83", "ds": "#2166ac", "-du": "#b2182b"}
LABELS = {"lds": "LDS", CALIBRATED: "LDS calibrated", "ds": "DS", "-du": "-DU"}
INLINE = ("lds", CALIBRATED, "-du")  # the inline plot has room for three marks a row
GROUP_COLOURS = {
    "natural": "#1b7837",
    "concatenated": "#b2182b",
    "repeated": "#e08214",
    "shuffled": "#8073ac",
}
BACKGROUNDS = {"separation": "#f3f1fa", "heads": "#eef6f6", "lds_by_group": "#fbf6ee"}


def _png(fig: Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def separation_png(record: dict) -> bytes:
    """Held-out AUC with its interval for each score against each control; 0.5 marked."""
    fig = Figure(figsize=(5.6, 3.2), dpi=100, facecolor=BACKGROUNDS["separation"])
    ax = fig.subplots()
    labels = []
    for row, kind in enumerate(CONTROL_KINDS):
        labels.append(kind)
        found = record["separation"].get(kind)
        for offset, score in zip((-0.27, -0.09, 0.09, 0.27), ("lds", CALIBRATED, "ds", "-du")):
            if found is None or score not in found:
                continue
            s = found[score]
            ax.errorbar(
                s["auc"], row + offset, xerr=[[s["auc"] - s["low"]], [s["high"] - s["auc"]]],
                fmt="o", color=COLOURS[score], capsize=3, label=LABELS[score] if row == 0 else None,
            )  # fmt: skip
    ax.axvline(0.5, color="#555", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("AUC: P(natural window scores higher)")
    ax.set_title("held out: natural windows vs controls (95% interval over documents)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    return _png(fig)


def heads_png(record: dict) -> bytes:
    """Each head's AUC against concatenated windows, for its LDS, DS and -DU."""
    fig = Figure(figsize=(5.6, 3.2), dpi=100, facecolor=BACKGROUNDS["heads"])
    ax = fig.subplots()
    per_head = record["heads"].get(CONCATENATED)
    if per_head:
        for offset, score in zip((-0.2, 0.0, 0.2), SCORES):
            values = per_head[score]
            x = np.arange(len(values)) + offset
            auc = np.array([v["auc"] for v in values])
            errors = np.array(
                [[v["auc"] - v["low"] for v in values], [v["high"] - v["auc"] for v in values]]
            )
            ax.errorbar(
                x,
                auc,
                yerr=errors,
                fmt="o",
                color=COLOURS[score],
                capsize=2,
                markersize=4,
                label=score.upper(),
            )
        ax.set_xticks(range(len(per_head["lds"])))
        ax.legend(fontsize=8)
    else:
        ax.text(
            0.5, 0.5, "no concatenated controls", ha="center", va="center", transform=ax.transAxes
        )
    ax.axhline(0.5, color="#555", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("query head")
    ax.set_ylabel("held-out AUC vs concatenated")
    ax.set_title("per head: natural vs concatenated", fontsize=10)
    return _png(fig)


def lds_png(record: dict) -> bytes:
    """The LDS distribution of natural windows and of each control, with the keep bar."""
    fig = Figure(figsize=(5.6, 3.2), dpi=100, facecolor=BACKGROUNDS["lds_by_group"])
    ax = fig.subplots()
    hist = record["lds_histogram"]
    edges = np.asarray(hist["edges"])
    if len(edges):
        for group in ("natural", *CONTROL_KINDS):
            if group in hist:
                ax.stairs(
                    hist[group], edges, color=GROUP_COLOURS[group], linewidth=1.6, label=group
                )
        ax.legend(fontsize=8)
    bar = record["keep_bar_lds"]
    if bar is not None:
        ax.axvline(bar, color="#222", linestyle="--", linewidth=1.5)
        ax.annotate("kept above", (bar, 1), xycoords=("data", "axes fraction"), xytext=(4, -12),
                    textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_xlabel("LDS (selection's normalization and alpha)")
    ax.set_ylabel("share of windows")
    ax.set_title("LDS: natural windows and controls", fontsize=10)
    return _png(fig)


def separation_markdown(record: dict) -> str:
    """The separation plot (AUC and interval per control and score) small enough to show inline."""
    rows = [
        (kind, [(found[s]["auc"], found[s]["low"], found[s]["high"], COLOURS[s]) for s in INLINE if s in found])
        for kind in CONTROL_KINDS
        if (found := record["separation"].get(kind))
    ]
    caption = "  \nheld-out AUC of natural windows vs each control: lds green, calibrated lds purple, -du red"
    return intervals_markdown("separation", rows, background=BACKGROUNDS["separation"], caption=caption)


def diagnostics_plots(record: dict) -> dict[str, bytes]:
    return {
        "separation": separation_png(record),
        "heads": heads_png(record),
        "lds_by_group": lds_png(record),
    }


def _markdown_to_html(table: str) -> str:
    rows = [
        line.strip("|").split("|") for line in table.splitlines() if not line.startswith("|---")
    ]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td class=num>{html.escape(c.strip())}</td>" for c in row) + "</tr>"
        for row in rows[1:]
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def diagnostics_section(record: dict | None) -> str:
    """The report's "Scorer diagnostics" section (says how to get them when there are none)."""
    title = '<h2 id="scorer-diagnostics">Scorer diagnostics</h2>'
    if record is None:
        return (
            f"{title}<p>Not computed for these scores: materialize <code>scorer_diagnostics</code> "
            "for this category to see whether the score separates natural windows from controls.</p>"
        )
    images = "".join(
        f'<img id="plot-diagnostics-{name}" alt="{name}" '
        f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        for name, png in diagnostics_plots(record).items()
    )
    tint = "#e6f4ea" if record["lds_separates_concatenated"] else "#fff3cd"
    return "\n".join(
        [
            title,
            f'<p id="diagnostics-verdict" style="background:{tint};padding:8px;max-width:900px">'
            f"{html.escape(record['advice'])}</p>",
            _markdown_to_html(markdown_table(record)),
            f"<p>{html.escape(facts(record))}</p>",
            f'<div class="plots">{images}</div>',
        ]
    )
