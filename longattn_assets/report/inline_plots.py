"""Histograms small enough for Dagster's metadata view to show as images, not behind a link.

Dagster 1.13 has no image metadata type. Its UI renders a markdown metadata entry in place
(in the asset's latest-materialization and event tables) when the markdown is shorter than
1,000 characters; longer markdown sits behind "[Show Markdown]". Its markdown renderer keeps
``data:`` image sources. So each plot here is one small SVG (kept and dropped windows
stacked as two step outlines, the cut as a dashed line, the axis range as text) in a data
URI, and the whole markdown entry stays under that limit.
"""

from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pyarrow as pa

from longattn_assets.report.plots import BACKGROUNDS, CUT_COLOUR, DROPPED_COLOUR, KEPT_COLOUR

INLINE_LIMIT = 1000  # characters: Dagster's UI shows shorter markdown entries in place
BINS = 24
_W, _H = 96, 36  # the plotting area in SVG units; text goes below it
_URI_SAFE = " '=/:;.,-"  # left as they are in the data URI; '<', '>', '#' and '"' are escaped


def inline_histograms(ranked: pa.Table, cut_lds: float | None) -> dict[str, str]:
    """Markdown image of each score's histogram (ds, du, lds), each under INLINE_LIMIT."""
    kept = ranked.column("selected").to_numpy(zero_copy_only=False).astype(bool)
    return {
        name: histogram_markdown(
            name,
            ranked.column(name).to_numpy(zero_copy_only=False).astype(float),
            kept,
            background=BACKGROUNDS[name],
            cut=cut_lds if name == "lds" else None,
        )
        for name in ("ds", "du", "lds")
    }


def histogram_markdown(
    name: str,
    values: np.ndarray,
    kept: np.ndarray,
    *,
    background: str,
    cut: float | None = None,
) -> str:
    return _inline(name, histogram_svg(values, kept, background=background, cut=cut))


def histogram_svg(
    values: np.ndarray, kept: np.ndarray, *, background: str, cut: float | None = None
) -> str:
    """Stacked histogram (kept below, dropped above) as a compact SVG document."""
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='300' height='138' viewBox='0 0 {_W} 44' "
        f"style='background:{background}'>"
    ]
    if values.size:
        low, high = float(values.min()), float(values.max())
        if cut is not None:
            low, high = min(low, cut), max(high, cut)
        edges = np.linspace(low, high, BINS + 1) if high > low else np.array([low - 0.5, low + 0.5])
        kept_counts = np.histogram(values[kept], bins=edges)[0]
        all_counts = kept_counts + np.histogram(values[~kept], bins=edges)[0]
        scale = _H / max(int(all_counts.max()), 1)
        bar = _W / (len(edges) - 1)
        for counts, colour in ((all_counts, DROPPED_COLOUR), (kept_counts, KEPT_COLOUR)):
            steps = "".join(
                f"V{_H - round(c * scale)}H{round((i + 1) * bar)}" for i, c in enumerate(counts)
            )
            parts.append(f"<path fill='{colour}' d='M0 {_H}{steps}V{_H}Z'/>")
        if cut is not None:
            x = round((cut - edges[0]) / (edges[-1] - edges[0]) * _W, 1)
            parts.append(f"<path stroke='{CUT_COLOUR}' stroke-dasharray='2' d='M{x} 0V{_H}'/>")
        parts.append(_text(0, "start", f"{low:.3g}"))
        parts.append(_text(_W, "end", f"{high:.3g}"))
    else:
        parts.append(_text(_W / 2, "middle", "no windows"))
    parts.append("</svg>")
    return "".join(parts)


def _text(x: float, anchor: str, text: str) -> str:
    return f"<text x='{x:g}' y='43' font-size='4.5' text-anchor='{anchor}'>{text}</text>"



def _inline(name: str, svg: str, caption: str = "") -> str:
    markdown = f"![{name}](<data:image/svg+xml,{quote(svg, safe=_URI_SAFE)}>){caption}"
    if len(markdown) >= INLINE_LIMIT:
        raise ValueError(f"inline plot {name!r} is {len(markdown)} characters, over {INLINE_LIMIT}")
    return markdown


def intervals_markdown(
    name: str,
    rows: list[tuple[str, list[tuple[float, float, float, str]]]],
    *,
    background: str,
    caption: str = "",
) -> str:
    """Values in [0, 1] with their intervals, a few per labelled row, 0.5 dashed, inline.

    ``rows``: (label, [(value, low, high, colour), ...]); a value is a tick on its interval.
    ``caption``: markdown after the image (what the colours are).
    """
    height = 8 * len(rows) + 6
    paths: dict[str, list[str]] = {}
    labels = []
    for row, (label, points) in enumerate(rows):
        labels.append(f"<text y='{8 * row + 5}' font-size='4'>{label}</text>")
        for index, (value, low, high, colour) in enumerate(points):
            y = 8 * row + 2 + 2 * index
            x, x_low, x_high = (round(28 + 70 * v, 1) for v in (value, low, high))
            paths.setdefault(colour, []).append(f"M{x_low:g} {y}H{x_high:g}M{x:g} {y - 1}v2")
    marks = "".join(f"<path stroke='{c}' stroke-width='.6' d='{''.join(d)}'/>" for c, d in paths.items())
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='300' height='{3 * height}' "
        f"viewBox='0 0 100 {height}' style='background:{background}'>{''.join(labels)}"
        f"<path stroke='#555' stroke-dasharray='1' stroke-width='.3' d='M63 0V{height - 5}'/>{marks}"
        f"<text x='28' y='{height}' font-size='4'>0</text><text x='96' y='{height}' font-size='4'>1</text></svg>"
    )
    return _inline(name, svg, caption)
