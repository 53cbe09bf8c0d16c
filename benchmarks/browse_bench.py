"""The window viewer over one category of 10 million windows: start-up, page and window times.

    python -m benchmarks.browse_bench --rows 10000000 --shards 10 --memory-limit 1GB

Uses the synthetic category of ``selection_bench.py`` (generated under --root when absent).
Times building the ranking (``CategoryRanking``), then pages of 50 ranks with their text
previews at the top, middle and bottom, single windows with text and per-head scores, and a
jump by data_id, each through the viewer's HTTP server like a browser; prints peak RSS and the
largest page in bytes (a page holds its 50 rows, whatever the category's size).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.selection_bench import CATEGORY, PeakRss, generate
from longattn_assets.browse.ranking import CategoryRanking
from longattn_assets.browse.server import make_server
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.storage import DataLayout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "selection-bench")
    args = parser.parse_args()

    layout = DataLayout(args.root / f"rows={args.rows}")
    generate(layout, args.rows, args.shards)
    windows = layout.shard_glob("windowed_chunks", CATEGORY)
    scores = layout.shard_glob("scored_chunks", CATEGORY)
    timings: list[tuple[str, float, int]] = []
    with PeakRss() as rss:
        started = time.perf_counter()
        ranking = CategoryRanking(windows, scores, SelectionSettings(), memory_limit=args.memory_limit)
        timings.append(("rank (start-up)", time.perf_counter() - started, 0))
        server = make_server(ranking, CATEGORY, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        middle_id = ranking.page(args.rows // 2, 1)[0].data_id
        for name, path in [
            ("page, ranks 1-50", "/ranks?from=1"),
            ("page, middle", f"/ranks?from={args.rows // 2}"),
            ("page, last", f"/ranks?from={args.rows - 49}"),
            ("window, rank 1", "/window?rank=1"),
            ("window, last rank", f"/window?rank={args.rows}"),
            ("jump by data_id", f"/find?q={middle_id}"),
        ]:
            started = time.perf_counter()
            with urllib.request.urlopen(base + path, timeout=600) as response:
                size = len(response.read())
            timings.append((name, time.perf_counter() - started, size))
        server.shutdown()
        server.server_close()
        ranking.close()
    print(f"\n{args.rows:,} windows, {args.shards} shards, DuckDB memory_limit {args.memory_limit}, "
          f"peak RSS {rss.peak / 2**20:.0f} MiB")  # fmt: skip
    print(f"{'request':22} {'wall s':>8} {'page bytes':>11}")
    for name, seconds, size in timings:
        print(f"{name:22} {seconds:8.3f} {size:11,}")


if __name__ == "__main__":
    main()
