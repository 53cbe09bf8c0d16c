"""The viewer in a real browser: headless Chromium pages through ranks and opens a window."""

from __future__ import annotations

import html
import re
import subprocess
import threading
from pathlib import Path

import pytest

from longattn_assets.browse.ranking import CategoryRanking
from longattn_assets.browse.server import make_server
from longattn_assets.selection.rules import SelectionSettings
from tests.browse.conftest import HEADS, text_of
from tests.report.test_browser import find_chromium


@pytest.fixture
def viewer(category):
    ranking = CategoryRanking(*category, SelectionSettings())
    server = make_server(ranking, "book", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", ranking
    server.shutdown()
    server.server_close()
    ranking.close()


def dump_dom(chromium: str, url: str, profile: Path) -> str:
    """The page as Chromium rendered it (after following redirects)."""
    done = subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--dump-dom", url,
        ],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout


def ranks_on(dom: str) -> list[int]:
    return [int(r.replace(",", "")) for r in re.findall(r'<td class="num"><a href="/window\?rank=\d+">([\d,]+)</a>', dom)]


def test_chromium_pages_through_ranks_and_shows_a_window(viewer, tmp_path):
    chromium = find_chromium()
    base, ranking = viewer
    first = dump_dom(chromium, base + "/", tmp_path / "profile")
    assert ranks_on(first) == list(range(1, 51))
    assert "ranks 1–50 of 450" in first
    assert first.count('class="kept"') == 50  # the top 50 of 225 kept
    next_href = html.unescape(re.search(r'<a href="([^"]+)" data-nav="next">', first).group(1))
    second = dump_dom(chromium, base + next_href, tmp_path / "profile")
    assert ranks_on(second) == list(range(51, 101))
    last = dump_dom(chromium, base + "/ranks?from=401", tmp_path / "profile")
    assert ranks_on(last) == list(range(401, 451)) and last.count('class="dropped"') == 50
    assert 'data-nav="next"' not in last

    target = ranking.page(137, 1)[0]
    window = dump_dom(chromium, f"{base}/find?q={target.data_id}", tmp_path / "profile")
    assert "window 137</h1>" in window
    text = re.search(r'<pre class="text" id="text">(.*?)</pre>', window, re.S).group(1)
    assert html.unescape(text) == text_of(target.data_id)
    assert len(re.findall(r"<tr><td class=\"num\">\d+</td>", window)) == HEADS
    by_rank = dump_dom(chromium, f"{base}/find?q=450", tmp_path / "profile")
    assert "window 450</h1>" in by_rank and "(dropped)" in by_rank
