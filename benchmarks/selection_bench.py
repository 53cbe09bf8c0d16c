"""Select one category of 10 million scored windows; print wall time and peak RSS.

    python benchmarks/selection_bench.py --rows 10000000 --shards 10 --memory-limit 1GB

Synthetic shards of scored_chunks and windowed_chunks (short dummy text) are generated
with DuckDB under --root (reused when present), then ``write_selected_parquet`` ranks the
category and writes the kept windows with their text, and, with --in-memory, also
``select_category`` returns the full ranked table as Arrow. Peak RSS is sampled every
20 ms by a thread over this process, where DuckDB runs.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import duckdb
import psutil
import pyarrow.parquet as pq

from longattn_assets.selection.select import select_category, write_selected_parquet
from longattn_assets.storage import DataLayout

CATEGORY = "bench"


class PeakRss:
    def __init__(self, interval: float = 0.02):
        self.process, self.interval = psutil.Process(), interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def generate(layout: DataLayout, rows: int, shards: int) -> None:
    per_shard = -(-rows // shards)
    con = duckdb.connect()
    for s in range(shards):
        shard = f"{s:05d}"
        scores_path = layout.shard_path("scored_chunks", CATEGORY, shard)
        windows_path = layout.shard_path("windowed_chunks", CATEGORY, shard)
        if scores_path.exists() and windows_path.exists():
            continue
        scores_path.parent.mkdir(parents=True, exist_ok=True)
        windows_path.parent.mkdir(parents=True, exist_ok=True)
        lo, hi = s * per_shard, min(rows, (s + 1) * per_shard)
        ids = f"SELECT i, substr(md5(i::VARCHAR), 1, 20) AS data_id FROM range({lo}, {hi}) t(i)"
        con.execute(
            f"""COPY (SELECT data_id, 4096::INTEGER AS n_tokens,
                       (hash(i) % 1000003) / 1000003.0 AS ds,
                       (hash(i * 7 + 1) % 1000003) / 1000003.0 * 1e-4 AS du,
                       [0.1::FLOAT] AS ds_heads, [0.1::FLOAT] AS du_heads, 'synthetic' AS model
                FROM ({ids})) TO '{scores_path}' (FORMAT parquet, COMPRESSION zstd)"""
        )
        con.execute(
            f"""COPY (SELECT data_id, 'doc-' || (i // 4)::VARCHAR AS doc_id,
                       '{CATEGORY}' AS category, '{shard}' AS shard,
                       (i % 4)::INTEGER AS window_index, ((i % 4) * 4096)::BIGINT AS token_start,
                       4096::INTEGER AS n_tokens, [0::INTEGER] AS token_ids,
                       'window text ' || i::VARCHAR AS content, 'synthetic' AS tokenizer
                FROM ({ids})) TO '{windows_path}' (FORMAT parquet, COMPRESSION zstd)"""
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=10)
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument(
        "--root", type=Path, default=Path(tempfile.gettempdir()) / "selection-bench"
    )
    parser.add_argument("--in-memory", action="store_true", help="also time select_category")
    args = parser.parse_args()

    layout = DataLayout(args.root / f"rows={args.rows}")
    started = time.perf_counter()
    generate(layout, args.rows, args.shards)
    print(f"data ready in {time.perf_counter() - started:.1f} s under {layout.root}")
    windows = layout.shard_glob("windowed_chunks", CATEGORY)
    scores = layout.shard_glob("scored_chunks", CATEGORY)
    out = layout.root / "selected.parquet"

    results = []
    with PeakRss() as rss:
        started = time.perf_counter()
        summary = write_selected_parquet(windows, scores, out, memory_limit=args.memory_limit)
        results.append(("write_selected_parquet (COPY)", time.perf_counter() - started, rss))
    assert pq.read_metadata(out).num_rows == summary.kept == args.rows // 2
    if args.in_memory:
        with PeakRss() as rss:
            started = time.perf_counter()
            result = select_category(windows, scores, memory_limit=args.memory_limit)
            results.append(("select_category (Arrow)", time.perf_counter() - started, rss))
        assert result.table.num_rows == args.rows

    print(f"\n{args.rows:,} windows, {args.shards} shards, DuckDB memory_limit {args.memory_limit}, "
          f"kept {summary.kept:,}")  # fmt: skip
    print(f"{'step':32} {'wall s':>8} {'peak RSS MiB':>13}")
    for name, seconds, sampler in results:
        print(f"{name:32} {seconds:8.1f} {sampler.peak / 2**20:13.0f}")


if __name__ == "__main__":
    main()
