"""The report renders in a real browser: headless Chromium screenshots show every plot."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from longattn_assets.report.html import render_report, write_report
from longattn_assets.report.plots import BACKGROUNDS, CUT_COLOUR, DROPPED_COLOUR, KEPT_COLOUR


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    message = "headless Chromium is needed: apt-get install -y chromium"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def pixels_near(image: np.ndarray, colour: str, tolerance: int = 3) -> int:
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image - target).max(axis=2) <= tolerance).sum())


def test_chromium_screenshot_shows_all_three_plots(selection, tmp_path):
    chromium = find_chromium()
    result, windows = selection
    page = write_report(render_report("book", result, windows), tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
            "--window-size=1200,2400", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert image.shape[:2] == (2400, 1200)
    assert (image.min(axis=2) < 250).mean() > 0.05, "the screenshot is blank"
    # Each plot has its own background tint: finding a plot-sized patch of every tint
    # proves each <img> decoded and was laid out, not just that the page loaded.
    for name, tint in BACKGROUNDS.items():
        assert pixels_near(image, tint) > 40_000, f"plot {name} is not on the screenshot"
    assert pixels_near(image, KEPT_COLOUR) > 1_500
    assert pixels_near(image, DROPPED_COLOUR) > 1_500
    assert pixels_near(image, CUT_COLOUR) > 100
