"""The report's scorer diagnostics section: its table, verdict and plots, in a real browser."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from longattn_assets.diagnostics.controls import CONTROL_KINDS
from longattn_assets.report.diagnostics import BACKGROUNDS, diagnostics_section
from longattn_assets.report.html import render_report, write_report
from tests.diagnostics.synthetic import case, diagnosed
from tests.report.test_browser import find_chromium, pixels_near


@pytest.fixture(scope="module")
def record() -> dict:
    natural, controls, split = case(0, head_shift=True)
    return diagnosed(natural, controls, split, seed_key="book")


def test_the_section_has_the_table_the_verdict_and_three_plots(record):
    html_text = diagnostics_section(record)
    assert html_text.count("data:image/png;base64,") == 3
    assert all(f"<td class=num>{kind}</td>" in html_text for kind in CONTROL_KINDS)
    assert 'id="diagnostics-verdict"' in html_text
    assert "LDS, calibrated (heads [2]" in html_text and "Held out:" in html_text
    assert "materialize <code>scorer_diagnostics</code>" in diagnostics_section(None)


def test_chromium_shows_the_diagnostics_plots(record, selection, tmp_path):
    chromium = find_chromium()
    result, windows = selection
    html_text = render_report("book", result, windows, sections=[diagnostics_section(record)])
    page = write_report(html_text, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            "--window-size=1200,3600", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    for name, tint in BACKGROUNDS.items():
        assert pixels_near(image, tint) > 40_000, (
            f"diagnostics plot {name} is not on the screenshot"
        )
