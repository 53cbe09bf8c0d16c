"""Plots of a category's scores as PNG bytes: histograms of ds, du and LDS with kept and
dropped windows stacked, and ds against du in the normalized plane, where the cut is a line.

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
BACKGROUNDS = {"ds": "#eef3fb", "du": "#fbf3e9", "lds": "#f1f8ec", "scatter": "#f6effa"}
SCATTER_POINTS = 20_000
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
    return _png(histogram_figure(values, kept, title=title, background=background, cut=cut, bins=bins))


def histogram_figure(
    values: np.ndarray,
    kept: np.ndarray,
    *,
    title: str,
    background: str = "white",
    cut: float | None = None,
    bins: int = 40,
) -> Figure:
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
    else:
        ax.text(0.5, 0.5, "no windows", ha="center", va="center", transform=ax.transAxes)
    if cut is not None:
        ax.axvline(cut, color=CUT_COLOUR, linewidth=2, linestyle="--")
        _cut_label(ax, cut)
    if values.size:
        # Kept windows lie right of the cut: the legend goes where the label does not.
        ax.legend(fontsize=8, loc="upper left" if _label_side(ax, cut) == "right" else "upper right")
    fig.tight_layout()
    return fig


def ds_du_scatter_png(ranked: pa.Table, cut_lds: float | None, alpha: float) -> bytes:
    """N(ds) against N(du), kept and dropped coloured; LDS = N(ds) - alpha N(du) >= cut is the
    half-plane above the line N(ds) = cut + alpha N(du). At most SCATTER_POINTS windows are
    drawn, evenly spaced in rank order, so the plot stays small for any category size."""
    n = ranked.num_rows
    step = max(1, -(-n // SCATTER_POINTS))
    rows = ranked.take(np.arange(0, n, step)) if step > 1 else ranked
    ds = rows.column("ds_norm").to_numpy(zero_copy_only=False).astype(float)
    du = rows.column("du_norm").to_numpy(zero_copy_only=False).astype(float)
    kept = rows.column("selected").to_numpy(zero_copy_only=False).astype(bool)
    fig = Figure(figsize=(5.6, 3.2), dpi=100, facecolor=BACKGROUNDS["scatter"])
    ax = fig.subplots()
    shown = f" ({rows.num_rows:,} of {n:,} windows)" if step > 1 else ""
    ax.set_title(f"ds against du, normalized{shown}", fontsize=10)
    ax.set_xlabel("N(du)")
    ax.set_ylabel("N(ds)")
    for mask, colour, label in ((~kept, DROPPED_COLOUR, "dropped"), (kept, KEPT_COLOUR, "kept")):
        ax.scatter(du[mask], ds[mask], s=6, color=colour, label=label, linewidths=0)
    if cut_lds is not None and rows.num_rows:
        xs = np.array(ax.get_xlim())
        ax.plot(xs, cut_lds + alpha * xs, color=CUT_COLOUR, linewidth=2, linestyle="--",
                label=f"cut: N(ds) = {cut_lds:.3g} + {alpha:g} N(du)")  # fmt: skip
        ax.set_xlim(*xs)
    if rows.num_rows:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def _label_side(ax, cut: float | None) -> str:
    """Which side of the cut line its label goes: the side with more room."""
    if cut is None:
        return "right"
    low, high = ax.get_xlim()
    return "left" if cut - low > high - cut else "right"


def _cut_label(ax, cut: float) -> None:
    """``cut <value>`` beside the dashed line, never on it and never past the axes' edge."""
    side = _label_side(ax, cut)
    ax.annotate(
        f"cut {cut:.4g}", (cut, 1), xycoords=("data", "axes fraction"),
        xytext=(-5 if side == "left" else 5, -4), textcoords="offset points",
        ha="right" if side == "left" else "left", va="top", color=CUT_COLOUR, fontsize=8,
    )  # fmt: skip


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
