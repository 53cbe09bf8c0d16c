"""Small real categories on disk: windowed_chunks and scored_chunks shards in the Hive layout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pyarrow as pa
import pytest

from longattn_assets.storage import DataLayout, write_parquet

# (data_id, ds, du, n_tokens)
Score = tuple[str, float, float, int]

WINDOWS_SCHEMA = pa.schema(
    [
        ("data_id", pa.string()), ("doc_id", pa.string()), ("category", pa.string()),
        ("shard", pa.string()), ("window_index", pa.int32()), ("token_start", pa.int64()),
        ("n_tokens", pa.int32()), ("token_ids", pa.list_(pa.int32())), ("content", pa.string()),
        ("tokenizer", pa.string()),
    ]
)  # fmt: skip
SCORES_SCHEMA = pa.schema(
    [
        ("data_id", pa.string()), ("n_tokens", pa.int32()), ("ds", pa.float64()),
        ("du", pa.float64()), ("ds_heads", pa.list_(pa.float32())),
        ("du_heads", pa.list_(pa.float32())), ("model", pa.string()),
    ]
)  # fmt: skip


def write_category(root: Path, category: str, shards: dict[str, Sequence[Score]]) -> DataLayout:
    layout = DataLayout(root)
    for shard, scores in shards.items():
        windows = {
            "data_id": [s[0] for s in scores],
            "doc_id": [f"doc-{s[0]}" for s in scores],
            "category": [category] * len(scores),
            "shard": [shard] * len(scores),
            "window_index": [0] * len(scores),
            "token_start": [0] * len(scores),
            "n_tokens": [s[3] for s in scores],
            "token_ids": [list(range(s[3])) for s in scores],
            "content": [f"text of {s[0]} <b>&</b> ünïcode" for s in scores],
            "tokenizer": ["test"] * len(scores),
        }
        write_parquet(
            pa.table(windows, schema=WINDOWS_SCHEMA),
            layout.shard_path("windowed_chunks", category, shard),
        )
        scored = {
            "data_id": [s[0] for s in scores],
            "n_tokens": [s[3] for s in scores],
            "ds": [s[1] for s in scores],
            "du": [s[2] for s in scores],
            "ds_heads": [[s[1]] * 2 for s in scores],
            "du_heads": [[s[2]] * 2 for s in scores],
            "model": ["test"] * len(scores),
        }
        write_parquet(
            pa.table(scored, schema=SCORES_SCHEMA),
            layout.shard_path("scored_chunks", category, shard),
        )
    return layout


@pytest.fixture
def make_category(tmp_path: Path) -> Callable[..., tuple[str, str]]:
    """Write shards of one category and return its (windows_glob, scores_glob)."""

    def make(shards: dict[str, Sequence[Score]], category: str = "book") -> tuple[str, str]:
        layout = write_category(tmp_path / "data", category, shards)
        return (
            layout.shard_glob("windowed_chunks", category),
            layout.shard_glob("scored_chunks", category),
        )

    return make
