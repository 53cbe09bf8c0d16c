"""Histograms of a category's ds, du and LDS, kept and dropped windows stacked, as PNG bytes.

Figures are built on matplotlib's Agg canvas without pyplot, so rendering holds no global
state and works in any thread or process. Each figure has its own light background tint,
which lets a screenshot test find every plot on the rendered page.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

KEPT_COLOUR = "#1a9850"
DROPPED_COLOUR = "#f46d43"
CUT_COLOUR = "#b2182b"
BACKGROUNDS = {"ds": "#eef3fb", "du": "#fbf3e9", "lds": "#f1f8ec"}
TITLES = {
    "ds": "ds: dependency strength",
    "du": "du: dependency uniformity (variance)",
    "lds": "LDS = N(ds) - alpha N(du)",
}


def score_histograms(ranked: pa.Table, cut_lds: float | None, bins: int = 40) -> dict[str, bytes]:
    """One PNG per score of a ranked table (ds, du, lds and selected columns)."""
    kept = ranked.column("selected").to_numpy(zero_copy_only=False).astype(bool)
    return {
        name: histogram_png(
            ranked.column(name).to_numpy(zero_copy_only=False).astype(float),
            kept,
            title=TITLES[name],
            background=BACKGROUNDS[name],
            cut=cut_lds if name == "lds" else None,
            bins=bins,
        )
        for name in ("ds", "du", "lds")
    }


def histogram_png(
    values: np.ndarray,
    kept: np.ndarray,
    *,
    title: str,
    background: str = "white",
    cut: float | None = None,
    bins: int = 40,
) -> bytes:
    fig = Figure(figsize=(5.6, 3.2), dpi=100, facecolor=background)
    ax = fig.subplots()
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("windows")
    if values.size:
        edges = np.histogram_bin_edges(values, bins=bins)
        ax.hist(
            [values[kept], values[~kept]], bins=edges, stacked=True,
            color=[KEPT_COLOUR, DROPPED_COLOUR], label=["kept", "dropped"],
        )  # fmt: skip
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no windows", ha="center", va="center", transform=ax.transAxes)
    if cut is not None:
        ax.axvline(cut, color=CUT_COLOUR, linewidth=2, linestyle="--", label="cut")
        ax.annotate(
            f"cut {cut:.4g}", (cut, 1), xycoords=("data", "axes fraction"),
            xytext=(4, -12), textcoords="offset points", color=CUT_COLOUR, fontsize=8,
        )  # fmt: skip
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
