"""A scored category on disk and its selection, for the report tests."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from longattn_assets.selection.select import SelectionResult, select_category
from longattn_assets.storage import DataLayout, write_parquet

LONG_TEXT = "<script>alert(1)</script> & ünïcode " + "x" * 2000


def write_shard(layout: DataLayout, shard: str, ids: list[str], rng: random.Random) -> None:
    n = len(ids)
    write_parquet(
        pa.table(
            {
                "data_id": ids, "doc_id": [f"doc-{i}" for i in ids], "category": ["book"] * n,
                "shard": [shard] * n, "window_index": pa.array([0] * n, pa.int32()),
                "token_start": pa.array([0] * n, pa.int64()),
                "n_tokens": pa.array([64] * n, pa.int32()),
                "token_ids": pa.array([list(range(64))] * n, pa.list_(pa.int32())),
                "content": [f"{i}: {LONG_TEXT}" for i in ids], "tokenizer": ["t"] * n,
            }
        ),
        layout.shard_path("windowed_chunks", "book", shard),
    )  # fmt: skip
    write_parquet(
        pa.table(
            {
                "data_id": ids, "n_tokens": pa.array([64] * n, pa.int32()),
                "ds": [rng.betavariate(2, 5) for _ in ids],
                "du": [rng.random() * 1e-3 for _ in ids],
                "ds_heads": pa.array([[0.1]] * n, pa.list_(pa.float32())),
                "du_heads": pa.array([[0.1]] * n, pa.list_(pa.float32())), "model": ["m"] * n,
            }
        ),
        layout.shard_path("scored_chunks", "book", shard),
    )  # fmt: skip


@pytest.fixture
def selection(tmp_path) -> tuple[SelectionResult, str]:
    """400 windows in two shards, selected with the defaults; returns (result, windows_glob)."""
    rng = random.Random(3)
    layout = DataLayout(tmp_path / "data")
    write_shard(layout, "00000", [f"a{i:03d}" for i in range(200)], rng)
    write_shard(layout, "00001", [f"b{i:03d}" for i in range(200)], rng)
    windows = layout.shard_glob("windowed_chunks", "book")
    return select_category(windows, layout.shard_glob("scored_chunks", "book")), windows
