"""Hugging Face datasets as a category's input: a ``save_to_disk`` folder (made here with
``datasets``) and a Hub dataset already in the local Hugging Face cache, read offline, with
the text column configurable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longattn_assets.corpus.ingest import ingest_category, input_fingerprint
from longattn_assets.corpus.sources import InputLocation
from longattn_assets.resources import CorpusInput
from longattn_assets.storage import DataLayout
from tests.corpus_fixtures import stdlib_sources
from tests.sources.corpora import save_to_disk

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _raw_rows(root: Path, category: str = "code") -> list[dict]:
    folder = DataLayout(root).category_dir("raw_corpus", category)
    return [row for p in sorted(folder.glob("*.parquet")) for row in pq.read_table(p).to_pylist()]


def _rejects(root: Path, category: str = "code") -> list[dict]:
    path = DataLayout(root).category_file("rejects", category, "raw_corpus.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_save_to_disk_dataset_and_dataset_dict_are_read_end_to_end_with_a_named_text_column(tmp_path: Path):
    from datasets import Dataset, DatasetDict

    docs = stdlib_sources(6, min_chars=1_000)
    rows = [{"id": name, "body": text, "text": "not this one"} for name, text in docs]
    save_to_disk(tmp_path / "input" / "code" / "single", rows[:2])
    splits = DatasetDict({"train": Dataset.from_list(rows[2:5]), "test": Dataset.from_list(rows[5:])})
    splits.save_to_disk(str(tmp_path / "input" / "code" / "splits"))
    fields = CorpusInput(input_dir=str(tmp_path / "input"), text_column="body").fields
    assert fields == ("body",)

    ingest_category(tmp_path / "input", "code", DataLayout(tmp_path / "data"), num_shards=2, fields=fields)
    read = sorted((row["doc_id"], row["text"], row["source"]) for row in _raw_rows(tmp_path / "data"))
    assert [(i, t) for i, t, _ in read] == sorted(docs)
    assert {s for _, _, s in read} == {
        "single/data-00000-of-00001.arrow", "splits/train/data-00000-of-00001.arrow", "splits/test/data-00000-of-00001.arrow",
    }  # fmt: skip
    assert not (DataLayout(tmp_path / "data").category_file("rejects", "code", "raw_corpus.jsonl").read_text())
    # the text column is part of the input's identity: changing it makes raw_corpus stale
    assert input_fingerprint(tmp_path / "input", "code", fields) != input_fingerprint(tmp_path / "input", "code")


def test_without_the_named_column_every_row_is_a_reject_saying_which_column(tmp_path: Path):
    save_to_disk(tmp_path / "input" / "code" / "ds", [{"text": "one"}, {"text": "two"}])
    ingest_category(tmp_path / "input", "code", DataLayout(tmp_path / "data"), num_shards=1, fields=("story",))
    assert [(r["location"], r["reason"]) for r in _rejects(tmp_path / "data")] == [(1, "no 'story' field"), (2, "no 'story' field")]


def _cached_hub_dataset(cache: Path, repo: str, files: dict[str, bytes]) -> Path:
    """``files`` as the Hugging Face cache lays out a downloaded dataset snapshot: blobs named by
    their hash, the snapshot's files symlinks to them, refs/main naming the snapshot."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = folder / "snapshots" / COMMIT / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(*[".."] * (len(Path(name).parts) + 1), "blobs", blob.name))
    return folder


def test_a_hub_dataset_in_the_local_cache_is_read_offline(tmp_path: Path, monkeypatch):
    from huggingface_hub import constants

    docs = stdlib_sources(4, min_chars=1_000, offset=20)
    table = pa.table({"id": [n for n, _ in docs], "content": [t for _, t in docs]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    _cached_hub_dataset(tmp_path / "hub", "acme/stories", {
        "data/code/train-00000-of-00001.parquet": sink.getvalue().to_pybytes(), "README.md": b"# stories\n",
    })  # fmt: skip
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    url = "hf://datasets/acme/stories/data"
    assert InputLocation(url).folders() == ["code"]
    ingest_category(url, "code", DataLayout(tmp_path / "data"), num_shards=2)
    assert sorted((r["doc_id"], r["text"]) for r in _raw_rows(tmp_path / "data")) == sorted(docs)
    assert not _rejects(tmp_path / "data")

    with pytest.raises(PermissionError, match="acme/missing is not in the local Hugging Face cache"):
        ingest_category("hf://datasets/acme/missing/data", "code", DataLayout(tmp_path / "other"), num_shards=1)
