"""raw_corpus and windowed_chunks materialized through Dagster into a temporary root."""

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from longattn_assets.assets.corpus import raw_corpus
from longattn_assets.assets.windows import windowed_chunks
from longattn_assets.partitions import shard_partitions
from longattn_assets.resources import AttentionScorer, CorpusInput, DataRoot, Windowing


def resources(root: Path, input_dir: Path, window: int = 512) -> dict:
    return {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(input_dir)),
        "windowing": Windowing(window_size=window),
        "attention_scorer": AttentionScorer(),
    }


def test_materialize_raw_corpus_and_windows_for_one_partition(small_corpus: Path, tmp_path: Path):
    root = tmp_path / "data"
    with open(small_corpus / "code" / "part-1.jsonl", "a", encoding="utf-8") as f:
        f.write('{"content": broken\n{"content": ""}\n')
    (small_corpus / "poetry").mkdir()  # a folder no configured category reads
    res = resources(root, small_corpus)
    result = dg.materialize([raw_corpus], partition_key="code", resources=res)
    assert result.success
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    assert meta["documents"].value == 24 and meta["rejects"].value == 2
    assert meta["unconfigured_input_folders"].value == ["poetry"]
    shards = sorted((root / "raw_corpus" / "category=code").glob("shard=*.parquet"))
    assert [p.name for p in shards] == [
        f"shard={k}.parquet" for k in shard_partitions.get_partition_keys()
    ]
    assert sum(pq.read_metadata(p).num_rows for p in shards) == 24
    rejects = [
        json.loads(line)
        for line in (root / "rejects/category=code/raw_corpus.jsonl").read_text().splitlines()
    ]
    assert [(r["source"], r["location"]) for r in rejects] == [
        ("part-1.jsonl", 13),
        ("part-1.jsonl", 14),
    ]
    assert rejects[0]["reason"].startswith("invalid JSON")

    key = dg.MultiPartitionKey({"category": "code", "shard": "00000"})
    result = dg.materialize(
        [raw_corpus, windowed_chunks], selection=[windowed_chunks], partition_key=key, resources=res
    )
    assert result.success
    out = root / "windowed_chunks" / "category=code" / "shard=00000.parquet"
    table = pq.read_table(out)
    required = {
        "data_id",
        "doc_id",
        "category",
        "shard",
        "window_index",
        "token_start",
        "n_tokens",
        "token_ids",
        "content",
        "tokenizer",
    }
    assert required <= set(table.column_names)
    rows = table.to_pylist()
    assert rows and all(r["n_tokens"] == 512 == len(r["token_ids"]) for r in rows)
    assert all(r["category"] == "code" and r["shard"] == "00000" for r in rows)
    assert len({r["data_id"] for r in rows}) == len(rows)
    meta = result.asset_materializations_for_node("windowed_chunks")[0].metadata
    assert meta["windows"].value == len(rows)
    assert meta["documents"].value == pq.read_metadata(shards[0]).num_rows
    assert not list(out.parent.glob(".tmp-*")), "temporary files left behind"


def test_windowed_chunks_without_raw_corpus_fails_clearly(small_corpus: Path, tmp_path: Path):
    key = dg.MultiPartitionKey({"category": "book", "shard": "00001"})
    result = dg.materialize(
        [raw_corpus, windowed_chunks],
        selection=[windowed_chunks],
        partition_key=key,
        resources=resources(tmp_path / "data", small_corpus),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.failure_data_for_node("windowed_chunks").error.message
    assert "materialize raw_corpus" in failure
