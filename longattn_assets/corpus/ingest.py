"""Ingest one category's input folder into raw_corpus shards plus a rejects file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from ..consistency import RAW_CORPUS, raw_provenance
from ..provenance import documents_fingerprint, files_fingerprint
from ..storage import DataLayout, shard_key
from .records import Document, Reject, category_files, read_file
from .sharding import IngestStats, shard_documents

REJECTS = "rejects"
REJECTS_FILE = "raw_corpus.jsonl"


class MissingInputError(FileNotFoundError):
    """A category with no input folder or no files in it."""


def input_files(input_dir: Path, category: str) -> list[Path]:
    folder = input_dir / category
    if not folder.is_dir():
        known = (
            sorted(p.name for p in input_dir.iterdir() if p.is_dir()) if input_dir.is_dir() else []
        )
        raise MissingInputError(
            f"no input folder for category {category!r}: expected {folder} "
            f"(folders found under {input_dir}: {known or 'none'})"
        )
    files = category_files(folder)
    if not files:
        raise MissingInputError(f"input folder {folder} holds no files")
    return files


def unconfigured_folders(input_dir: Path, categories: list[str]) -> list[str]:
    """Sub-folders of the input dir that no configured category reads: said, never silently skipped."""
    if not input_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in input_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in categories
    )


def input_fingerprint(input_dir: Path, category: str) -> str:
    """Fingerprint of the files an ingest of ``category`` reads now (paths, sizes, mtimes)."""
    return files_fingerprint(input_files(input_dir, category), relative_to=input_dir / category)


def _records(folder: Path, files: list[Path]) -> Iterator[Document | Reject]:
    for path in files:
        yield from read_file(path, source=path.relative_to(folder).as_posix(), root=folder)


def ingest_category(
    input_dir: Path,
    category: str,
    layout: DataLayout,
    num_shards: int,
    progress: Callable[[int, int], None] | None = None,
) -> IngestStats:
    """Read every file of ``input_dir/category`` and write its documents into shards."""
    files = input_files(input_dir, category)
    source = files_fingerprint(files, relative_to=input_dir / category)

    def stamp(index: int, table: pa.Table) -> pa.Table:
        record = raw_provenance(category, shard_key(index), num_shards, documents_fingerprint(table), source)
        return record.stamped(table)

    stats = shard_documents(
        _records(input_dir / category, files),
        num_shards,
        lambda index: layout.shard_path(RAW_CORPUS, category, shard_key(index)),
        layout.category_file(REJECTS, category, REJECTS_FILE),
        spill_dir=layout.root / ".work",
        progress=progress,
        stamp=stamp,
    )
    stats.files = len(files)
    return stats
