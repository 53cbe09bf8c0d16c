"""A small corpus with a file of every supported format, damaged files, and a Hugging Face
``save_to_disk`` dataset made here with ``datasets``."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from tests.corpus_fixtures import stdlib_sources, write_jsonl

BAD_INPUTS = Path(__file__).resolve().parents[1] / "reliability" / "data" / "bad_inputs" / "code"


def save_to_disk(folder: Path, rows: list[dict]) -> Path:
    """``rows`` as a Hugging Face dataset saved with ``Dataset.save_to_disk``."""
    from datasets import Dataset

    Dataset.from_list(rows).save_to_disk(str(folder))
    return folder


def every_format(root: Path) -> Path:
    """``root/code`` with JSONL (plain, .gz, .zst), Parquet, a save_to_disk dataset, the
    damaged files of tests/reliability, a cut Parquet file and a hidden folder; returns root."""
    rows = [{"id": name, "text": text} for name, text in stdlib_sources(24, min_chars=1_500, offset=3)]
    folder = root / "code"
    write_jsonl(folder / "plain.jsonl", rows[:4])
    lines = "".join(json.dumps({"content": r["text"], "id": r["id"]}) + "\n" for r in rows[4:8])
    (folder / "zipped.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    lines = "".join(json.dumps(r) + "\n" for r in rows[8:12])
    (folder / "nested" / "deep").mkdir(parents=True)
    (folder / "nested" / "deep" / "packed.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    pq.write_table(pa.Table.from_pylist(rows[12:16]), folder / "table.parquet")
    whole = (folder / "table.parquet").read_bytes()
    (folder / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    save_to_disk(folder / "hf_saved", rows[16:20])
    shutil.copytree(BAD_INPUTS, folder / "bad")
    write_jsonl(folder / ".staging" / "partial.jsonl", rows[20:])  # hidden: never read
    write_jsonl(root / "book" / "one.jsonl", rows[20:])
    return root
