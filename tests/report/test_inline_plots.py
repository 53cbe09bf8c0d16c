"""The histograms in the asset's metadata are short enough for Dagster to show in place."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

import numpy as np
import pyarrow as pa

from longattn_assets.report.inline_plots import _H, _W, BINS, INLINE_LIMIT, inline_histograms
from longattn_assets.report.plots import CUT_COLOUR, DROPPED_COLOUR, KEPT_COLOUR

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(markdown: str) -> ET.Element:
    uri = re.fullmatch(r"!\[\w+\]\(<data:image/svg\+xml,(.*)>\)", markdown).group(1)
    return ET.fromstring(unquote(uri))


def bar_heights(path: str) -> list[int]:
    return [_H - int(v) for v in re.findall(r"V(\d+)H", path)]


def test_each_histogram_is_an_svg_under_the_inline_limit_with_the_true_counts():
    rng = np.random.default_rng(1)
    n = 100_000
    lds = rng.normal(size=n) * 1e-3 + 12345.678901
    order = np.argsort(-lds)
    selected = np.zeros(n, bool)
    selected[order[: n // 3]] = True
    cut = float(lds[order[n // 3 - 1]])
    ranked = pa.table({"ds": rng.random(n), "du": rng.random(n) * 1e-5, "lds": lds, "selected": selected})
    plots = inline_histograms(ranked, cut)
    assert set(plots) == {"ds", "du", "lds"}
    for name, markdown in plots.items():
        assert len(markdown) < INLINE_LIMIT and markdown.startswith(f"![{name}](<data:")
        svg = svg_of(markdown)
        fills = [p.get("fill") for p in svg.iter(f"{SVG}path") if p.get("fill")]
        assert fills == [DROPPED_COLOUR, KEPT_COLOUR]
    svg = svg_of(plots["lds"])
    total, kept = (p.get("d") for p in svg.iter(f"{SVG}path") if p.get("fill"))
    edges = np.linspace(lds.min(), lds.max(), BINS + 1)
    counts = np.histogram(lds, bins=edges)[0]
    assert bar_heights(total) == [round(c * _H / counts.max()) for c in counts]
    kept_counts = np.histogram(lds[selected], bins=edges)[0]
    assert bar_heights(kept) == [round(c * _H / counts.max()) for c in kept_counts]
    (line,) = [p for p in svg.iter(f"{SVG}path") if p.get("stroke") == CUT_COLOUR]
    x = float(re.match(r"M([\d.]+) 0", line.get("d")).group(1))
    assert abs(x - (cut - lds.min()) / (lds.max() - lds.min()) * _W) <= 0.05
    assert not [p for p in svg_of(plots["ds"]).iter(f"{SVG}path") if p.get("stroke")]


def test_no_windows_still_gives_a_small_image():
    empty = pa.table({"ds": pa.array([], pa.float64()), "du": pa.array([], pa.float64()),
                      "lds": pa.array([], pa.float64()), "selected": pa.array([], pa.bool_())})  # fmt: skip
    for markdown in inline_histograms(empty, None).values():
        assert "no windows" in ET.tostring(svg_of(markdown), encoding="unicode")


def test_the_diagnostics_separation_plot_stays_inline_for_any_values():
    """Every coordinate at its longest ("12.3"): the markdown is still under the UI's limit."""
    from longattn_assets.diagnostics.controls import CONTROL_KINDS
    from longattn_assets.report.diagnostics import separation_markdown

    longest = {"auc": 0.4321, "low": 0.1234, "high": 0.9876}
    scores = ("lds", "lds_calibrated", "ds", "-du")
    record = {"separation": {kind: dict.fromkeys(scores, longest) for kind in CONTROL_KINDS}}
    markdown = separation_markdown(record)
    assert len(markdown) < INLINE_LIMIT
    svg = unquote(markdown.split(",", 1)[1].split(">)", 1)[0])
    assert svg.count("<path") == 4 and all(f">{kind}</text>" in svg for kind in CONTROL_KINDS)
    assert "M36.6 " in svg and "H97.1" in svg  # 0.1234 and 0.9876 on the 28..98 axis
