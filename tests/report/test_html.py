"""The HTML report is one self-contained page with the plots, counts and extremes."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from longattn_assets.report.html import render_report, write_report
from longattn_assets.report.plots import CUT_COLOUR, DROPPED_COLOUR, KEPT_COLOUR, score_histograms

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def colour_pixels(png: bytes, colour: str, tolerance: int = 2) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=2) <= tolerance).sum())


def test_report_embeds_three_png_plots_and_fetches_nothing(selection):
    result, windows = selection
    page = render_report("book", result, windows, {"window_size": 64})
    images = [base64.b64decode(m) for m in DATA_URI.findall(page)]
    assert len(images) == 3
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
    preview = re.search(r"<div class=preview>(.*?)</div>", page).group(1)
    assert preview.endswith("x…") and preview.count("x") < 600


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
