"""The bundled sample corpus is complete, parseable with plain readers, and documented.

These read the files with json/gzip/zstandard/pyarrow directly, not with the project's
reader, so a reader bug cannot hide a broken sample (and vice versa).
"""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard

import longattn_assets

SAMPLE = Path(longattn_assets.__file__).parent / "data" / "sample"
CATEGORIES = ("arxiv", "book", "code")
SUFFIXES = (".jsonl.zst", ".jsonl.gz", ".parquet")


def _jsonl_rows(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def read_rows(path: Path) -> list[dict]:
    if path.name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    if path.name.endswith(".jsonl.gz"):
        return _jsonl_rows(gzip.decompress(path.read_bytes()))
    if path.name.endswith(".jsonl.zst"):
        # The frames carry no content size, so decompress as a stream.
        return _jsonl_rows(zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes()))
    raise AssertionError(f"unexpected file in the sample: {path}")


def text_of(row: dict) -> str:
    return row["content"] if "content" in row else row["text"]


def sample_files(category: str) -> list[Path]:
    return sorted(p for p in (SAMPLE / category).iterdir() if p.is_file())


@cache
def all_rows() -> dict[str, list[dict]]:
    return {c: [r for p in sample_files(c) for r in read_rows(p)] for c in CATEGORIES}


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_default_category_has_one_or_two_readable_files(category: str) -> None:
    files = sample_files(category)
    assert 1 <= len(files) <= 2
    assert all(p.name.endswith(SUFFIXES) for p in files)


def test_every_reader_format_and_both_text_fields_are_exercised() -> None:
    names = [p.name for c in CATEGORIES for p in sample_files(c)]
    for suffix in SUFFIXES:
        assert any(n.endswith(suffix) for n in names), suffix
    fields = {"content" if "content" in r else "text" for rows in all_rows().values() for r in rows}
    assert fields == {"content", "text"}


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_row_has_a_string_id_in_its_category_and_nonempty_text(category: str) -> None:
    rows = all_rows()[category]
    assert rows
    for row in rows:
        assert isinstance(row["id"], str) and row["id"].startswith(f"{category}/")
        assert ("content" in row) != ("text" in row), row["id"]
        assert isinstance(text_of(row), str) and text_of(row).strip(), row["id"]
        assert row["source"].startswith("debian:") and row["license"], row["id"]


def test_ids_are_unique_across_the_whole_sample() -> None:
    ids = [r["id"] for rows in all_rows().values() for r in rows]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_category_holds_about_a_megabyte_of_text(category: str) -> None:
    assert sum(len(text_of(r)) for r in all_rows()[category]) >= 1_000_000


@pytest.mark.parametrize("category", CATEGORIES)
def test_each_category_mixes_long_documents_with_a_few_short_ones(category: str) -> None:
    # ~4 characters a token: >= 32 KB is past 8k tokens, < 8 KB is under 2k tokens.
    lengths = [len(text_of(r)) for r in all_rows()[category]]
    assert sum(n >= 32_000 for n in lengths) > len(lengths) / 2
    assert 1 <= sum(n < 8_000 for n in lengths) <= 3


def test_manifest_names_every_id_with_its_source_and_nothing_else() -> None:
    manifest = (SAMPLE / "MANIFEST.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+)` \|", manifest, flags=re.MULTILINE))
    ids = {r["id"] for rows in all_rows().values() for r in rows}
    assert listed == ids
    for rows in all_rows().values():
        for row in rows:
            package_version, path = row["source"].removeprefix("debian:").split(":", 1)
            line = next(ln for ln in manifest.splitlines() if f"`{row['id']}`" in ln)
            assert package_version.replace("=", " ") in line and path in line
            assert row["license"] in line
