"""A scored category on disk for the viewer: three shards, three heads, multi-line texts."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from longattn_assets.storage import DataLayout, write_parquet

HEADS = 3


def text_of(data_id: str) -> str:
    return f"first line of {data_id}\n" + "\n".join(f"{data_id} line {i} " + "w" * 30 for i in range(40))


def write_category(root: Path, shards: dict[str, int], seed: int = 7) -> DataLayout:
    rng = random.Random(seed)
    layout = DataLayout(root)
    for shard, n in shards.items():
        ids = [f"book-{shard}-{i:05d}" for i in range(n)]
        ds = [rng.betavariate(2, 5) for _ in ids]
        du = [rng.random() * 1e-3 for _ in ids]
        write_parquet(
            pa.table(
                {
                    "data_id": ids, "doc_id": [f"doc-{i}" for i in ids], "category": ["book"] * n,
                    "shard": [shard] * n, "window_index": pa.array([0] * n, pa.int32()),
                    "token_start": pa.array([0] * n, pa.int64()),
                    "n_tokens": pa.array([64] * n, pa.int32()),
                    "token_ids": pa.array([list(range(64))] * n, pa.list_(pa.int32())),
                    "content": [text_of(i) for i in ids], "tokenizer": ["t"] * n,
                }
            ),
            layout.shard_path("windowed_chunks", "book", shard),
        )  # fmt: skip
        # Scores in another row order than the windows, as a rerun may write them.
        order = list(range(n))
        rng.shuffle(order)
        write_parquet(
            pa.table(
                {
                    "data_id": [ids[i] for i in order], "n_tokens": pa.array([64] * n, pa.int32()),
                    "ds": [ds[i] for i in order], "du": [du[i] for i in order],
                    "ds_heads": pa.array([[ds[i] * (h + 1) / 2 for h in range(HEADS)] for i in order], pa.list_(pa.float32())),
                    "du_heads": pa.array([[du[i] * (h + 1) / 2 for h in range(HEADS)] for i in order], pa.list_(pa.float32())),
                    "model": ["m"] * n,
                }
            ),
            layout.shard_path("scored_chunks", "book", shard),
        )  # fmt: skip
    return layout


@pytest.fixture
def category(tmp_path: Path) -> tuple[str, str]:
    """(windows_glob, scores_glob) of 3 shards, 450 windows of category 'book'."""
    layout = write_category(tmp_path / "data", {"00000": 200, "00001": 150, "00002": 100})
    return layout.shard_glob("windowed_chunks", "book"), layout.shard_glob("scored_chunks", "book")
