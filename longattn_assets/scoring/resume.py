"""Progress of a scoring run kept per chunk of windows, so a killed run resumes where it was.

Chunk ``i`` (windows ``[i * n, (i + 1) * n)``) is written, once scored, as
``.<output name>.parts/part-0000i.parquet`` beside the output, atomically. A manifest holds
a key of everything the scores depend on: the input file's bytes, the model, the scorer
settings and the chunk size. Parts written under another key are stale and are discarded,
so a resumed file is byte-identical to one scored in a single run. The folder's name
starts with a dot, so the readers' ``shard=*.parquet`` globs and hidden-file-skipping
dataset readers never see the parts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..storage import write_parquet, write_text

MANIFEST = "manifest.json"
_HASH_BLOCK = 8 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def parts_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.parts"


class ScoringParts:
    """The finished chunks of one output file; stale ones are removed on opening."""

    def __init__(self, output: Path, key: dict[str, object]):
        self.folder = parts_dir(output)
        self.key = key
        manifest = self.folder / MANIFEST
        try:
            current = json.loads(manifest.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            current = None
        if current != key:
            shutil.rmtree(self.folder, ignore_errors=True)
            write_text(json.dumps(key, sort_keys=True), manifest)

    def path(self, index: int) -> Path:
        return self.folder / f"part-{index:05d}.parquet"

    def done(self, index: int, rows: int) -> bool:
        """Chunk ``index`` is on disk with ``rows`` rows (parts are renamed in only when whole)."""
        try:
            return pq.read_metadata(self.path(index)).num_rows == rows
        except (OSError, pa.ArrowException):
            return False

    def write(self, index: int, table: pa.Table) -> None:
        write_parquet(table, self.path(index))

    def assemble(self, count: int, schema: pa.Schema) -> pa.Table:
        """Every part in order as one table with one chunk per column (bytes independent of parts)."""
        tables = [pq.read_table(self.path(i), schema=schema) for i in range(count)]
        return pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
