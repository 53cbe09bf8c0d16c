"""The HTML report is one self-contained page with the plots, counts and extremes."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from longattn_assets.report.html import preview, render_report, write_report
from longattn_assets.report.plots import (
    BACKGROUNDS,
    CUT_COLOUR,
    DROPPED_COLOUR,
    KEPT_COLOUR,
    ds_du_scatter_png,
    histogram_figure,
    score_histograms,
)

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def colour_pixels(png: bytes, colour: str, tolerance: int = 2) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=2) <= tolerance).sum())


def test_report_embeds_four_png_plots_and_fetches_nothing(selection):
    result, windows = selection
    page = render_report("book", result, windows, {"window_size": 64})
    images = [base64.b64decode(m) for m in DATA_URI.findall(page)]
    assert len(images) == 4  # ds, du, lds histograms and the ds-du scatter
    for png in images:
        assert Image.open(io.BytesIO(png)).size == (560, 320)
    without_images = DATA_URI.sub("", page)
    for external in ("http://", "https://", "<script", "<link", "src=", "url("):
        assert external not in without_images


def test_report_shows_counts_settings_and_escaped_previews_of_the_extremes(selection):
    result, windows = selection
    page = render_report("book", result, windows, {"window_size": 64})
    summary = result.summary
    assert summary.kept == 200
    assert f"<th>kept</th><td class=num>{summary.kept}</td>" in page
    assert f"<th>tokens dropped</th><td class=num>{summary.tokens_dropped}</td>" in page
    assert "<th>window_size</th><td class=num>64</td>" in page
    assert "<th>normalize</th><td class=num>zscore</td>" in page
    ids = result.table.column("data_id").to_pylist()
    for data_id in ids[:10] + ids[-10:]:
        assert (
            f"<div class=preview>{data_id}: &lt;script&gt;alert(1)&lt;/script&gt; &amp; ünïcode"
            in page
        )
    assert ids[10] not in page and ids[-11] not in page
    shown = re.search(r"<div class=preview>(.*?)</div>", page).group(1)
    assert shown.endswith("x…") and shown.count("x") < 600


def test_previews_end_at_a_line_or_word_never_inside_one():
    lines = [f"line {i} " + "word " * 12 for i in range(30)]
    text = "\n".join(lines)
    assert preview(text, chars=200, lines=8) == "\n".join(lines[:2]).rstrip() + "\n…"
    assert preview(text, chars=10_000, lines=3) == "\n".join(lines[:3]).rstrip() + "\n…"
    assert preview("short\ntext", chars=200) == "short\ntext"
    one_line = "alpha beta gamma delta epsilon"
    assert preview(one_line, chars=20) == "alpha beta gamma…"
    assert preview("x" * 50, chars=20) == "x" * 20 + "…"


def test_cut_label_stays_inside_the_axes_and_off_the_line():
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    kept = values > 1.0
    for cut in (values.min(), 1.0, values.max()):  # at the left edge, inside, at the right edge
        fig = histogram_figure(values, kept, title="lds", cut=float(cut))
        renderer = FigureCanvasAgg(fig).get_renderer()
        ax = fig.axes[0]
        (label,) = [t for t in ax.texts if t.get_text().startswith("cut ")]
        box = label.get_window_extent(renderer)
        frame = ax.get_window_extent(renderer)
        line_x = ax.transData.transform((cut, 0))[0]
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, f"label clipped for cut={cut}"
        assert not box.x0 <= line_x <= box.x1, f"label on the line for cut={cut}"


def test_scatter_colours_kept_and_dropped_and_draws_the_cut_line(selection):
    result, _ = selection
    png = ds_du_scatter_png(result.table, result.summary.cut_lds, result.summary.settings.alpha)
    assert colour_pixels(png, BACKGROUNDS["scatter"]) > 20_000
    assert colour_pixels(png, KEPT_COLOUR) > 300 and colour_pixels(png, DROPPED_COLOUR) > 300
    assert colour_pixels(png, CUT_COLOUR) > 100
    # The line N(ds) = cut + alpha N(du) is LDS = cut: kept windows on or above it, dropped below.
    ds, du, lds = (result.table.column(c).to_numpy() for c in ("ds_norm", "du_norm", "lds"))
    assert np.allclose(lds, ds - result.summary.settings.alpha * du, rtol=0, atol=1e-12)
    kept = result.table.column("selected").to_numpy(zero_copy_only=False)
    assert ((lds >= result.summary.cut_lds) == kept).all()


def test_lds_plot_marks_the_cut_and_colours_kept_and_dropped(selection):
    result, _ = selection
    plots = score_histograms(result.table, result.summary.cut_lds)
    for png in plots.values():
        assert colour_pixels(png, KEPT_COLOUR) > 500
        assert colour_pixels(png, DROPPED_COLOUR) > 500
    assert colour_pixels(plots["lds"], CUT_COLOUR) > 100
    assert colour_pixels(plots["ds"], CUT_COLOUR) == 0


def test_report_is_written_atomically(selection, tmp_path):
    result, windows = selection
    path = write_report(render_report("book", result, windows), tmp_path / "r" / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_report_points_to_longattn_browse_for_every_window(selection):
    result, windows = selection
    page = render_report("book", result, windows, {"window_size": 64})
    assert "<code>longattn browse --category book</code>" in page
    assert page.index('id="browse"') < page.index("<h2>Top 10 windows")
