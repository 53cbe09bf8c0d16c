"""Split a category's documents into shards by a stable hash of their text, within a memory budget.

A document's shard depends only on its text, never on file order, file count or worker
count. Within a shard rows are sorted by (doc_hash, source, location), so the same inputs
give the same bytes. Exact duplicates (same text) keep their first row in that order and
set the others aside as rejects, each naming the row that is kept.

Two steps, each run by any number of workers (:mod:`.pool`):

1. :class:`ShardRouter` reads files and routes documents to per-shard buffers; when the
   buffers reach their share of the budget, each shard's buffer is sorted, freed of
   duplicates and written as a run (:mod:`.runs`); the duplicates' keys go to a run of
   copies. Rejects go to sorted runs of their own.
2. :func:`write_shard` gathers a shard's runs bucket by bucket (hash ranges sized to the
   budget), sorts and dedupes each bucket and appends it to the shard file. Every copy of
   a text meets the row kept for it in its bucket, so its reject names that row whatever
   run it was found in.

A shard file is cut into row groups by the rows it holds alone (at most ROW_GROUP_ROWS rows
and ROW_GROUP_TEXT_BYTES of text), never by the budget or the workers, so its bytes are
the same whatever those are; a shard within one row group is the file one in-memory
sort-and-write gives.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..provenance import DocumentsFingerprint
from ..windows.ids import document_hash, shard_of
from .budget import ROW_GROUP_ROWS, ROW_GROUP_TEXT_BYTES
from .memory import release_memory
from .records import Document, Reject, duplicate_reason
from .rejects import reject_size, write_reject_run
from .runs import KEY_SCHEMA, buckets_in_order, sorted_unique, write_run

RAW_CORPUS_SCHEMA = pa.schema(
    [
        ("doc_hash", pa.string()),
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("location", pa.int64()),
        ("n_chars", pa.int64()),
    ]
)
# Python objects of one buffered document besides its text (Document, hash, list slots).
_DOCUMENT_OVERHEAD = 400
# The Parquet writer's batching unit: chunks cut at multiples of it give the bytes one
# contiguous table gives.
_WRITE_BATCH_ROWS = 1024
_PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}


@dataclass
class IngestStats:
    documents: int = 0
    rejects: int = 0
    duplicates: int = 0
    characters: int = 0
    seconds: float = 0.0
    files: int = 0
    input_bytes: int = 0
    workers: int = 1
    memory_budget: int = 0
    runs: int = 0
    spilled_bytes: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    shard_documents: dict[str, int] = field(default_factory=dict)
    obsolete_files: list[str] = field(default_factory=list)  # of an earlier shard count, deleted
    input_files: str = ""  # content fingerprint of the input files read


def duplicate_rejects(copies: pa.Table, kept: pa.Table) -> list[Reject]:
    """Rejects for the rows of ``copies`` (key columns), each naming the row of ``kept`` that
    holds the same text (the first of all copies by source, then location)."""
    if not len(copies):
        return []
    wanted = kept.filter(pc.is_in(kept.column("doc_hash"), value_set=copies.column("doc_hash").unique()))
    first = {
        h: (src, loc)
        for h, src, loc in zip(*(wanted.column(name).to_pylist() for name in ("doc_hash", "source", "location")))
    }
    return [
        Reject(src, loc, duplicate_reason(h, *first[h]), "")
        for h, src, loc in zip(*(copies.column(name).to_pylist() for name in ("doc_hash", "source", "location")))
    ]


class RejectBuffer:
    """Rejects held in memory until the owner spills them as a sorted run."""

    def __init__(self, folder: Path, prefix: str):
        self.folder, self.prefix = folder, prefix
        self.rejects: list[Reject] = []
        self.bytes = 0
        self.runs: list[Path] = []

    def add(self, reject: Reject) -> None:
        self.rejects.append(reject)
        self.bytes += reject_size(reject)

    def spill(self) -> None:
        if self.rejects:
            self.runs.append(write_reject_run(self.rejects, self.folder / f"{self.prefix}-{len(self.runs):05d}.rejects.jsonl"))
            self.rejects, self.bytes = [], 0


@dataclass
class RouterResult:
    """What one reading worker wrote: runs per shard, reject runs, counts."""

    runs: dict[int, list[tuple[Path, int]]]
    copy_runs: dict[int, list[Path]]  # per shard: keys of rows whose text a run already held
    reject_runs: list[Path]
    spilled_bytes: int
    duplicates: int


class ShardRouter:
    """Routes documents to shard buffers and writes them as sorted runs within ``spill_bytes``."""

    def __init__(self, num_shards: int, folder: Path, name: str, spill_bytes: int):
        self.num_shards, self.folder, self.name, self.spill_bytes = num_shards, folder, name, spill_bytes
        self.buffers: list[list[tuple[str, Document]]] = [[] for _ in range(num_shards)]
        self.buffered = 0
        self.rejects = RejectBuffer(folder, name)
        self.runs: dict[int, list[tuple[Path, int]]] = {}
        self.copy_runs: dict[int, list[Path]] = {}
        self.spills = 0
        self.spilled_bytes = 0
        self.duplicates = 0

    def add(self, item: Document | Reject) -> None:
        if isinstance(item, Reject):
            self.rejects.add(item)
        else:
            doc_hash = document_hash(item.text)
            self.buffers[shard_of(doc_hash, self.num_shards)].append((doc_hash, item))
            self.buffered += _DOCUMENT_OVERHEAD + sys.getsizeof(item.text)
        if self.buffered + self.rejects.bytes >= self.spill_bytes:
            self.spill()

    def spill(self) -> None:
        """Write every shard's buffer as one sorted, deduplicated run (and its copies' keys),
        then the rejects."""
        for shard in range(self.num_shards):
            rows, self.buffers[shard] = self.buffers[shard], []
            if not rows:
                continue
            table = _to_table(rows)
            del rows
            unique, duplicates = sorted_unique(table)
            del table
            self.duplicates += len(duplicates)
            if len(duplicates):  # rejected by write_shard, which knows the row kept in the end
                copies = self.folder / f"{self.name}-{self.spills:05d}-{shard:05d}.copies.arrow"
                write_run(duplicates, copies)
                self.copy_runs.setdefault(shard, []).append(copies)
            path = self.folder / f"{self.name}-{self.spills:05d}-{shard:05d}.arrow"
            size = write_run(unique, path)
            del unique, duplicates
            release_memory()  # this shard's texts, before the next shard's are converted
            self.runs.setdefault(shard, []).append((path, size))
            self.spilled_bytes += size
        self.buffered = 0
        self.spills += 1
        self.rejects.spill()

    def finish(self) -> RouterResult:
        self.spill()
        return RouterResult(self.runs, self.copy_runs, self.rejects.runs, self.spilled_bytes, self.duplicates)


def _to_table(rows: list[tuple[str, Document]]) -> pa.Table:
    return pa.table(
        {
            "doc_hash": [h for h, _ in rows],
            "doc_id": [d.doc_id if d.doc_id is not None else h for h, d in rows],
            "text": [d.text for _, d in rows],
            "source": [d.source for _, d in rows],
            "location": [d.location for _, d in rows],
            "n_chars": [len(d.text) for _, d in rows],
        },
        schema=RAW_CORPUS_SCHEMA,
    )


class _ShardFile:
    """Appends sorted rows to a shard file, one row group per ROW_GROUP_ROWS / _TEXT_BYTES."""

    def __init__(self, writer: pq.ParquetWriter):
        self.writer = writer
        self.pending: list[pa.Table] = []
        self.pending_rows = 0
        self.pending_text = 0
        self.written_rows = 0

    def append(self, table: pa.Table) -> None:
        """Add sorted rows; a row group closes before the row that would overfill it."""
        text_bytes = pc.binary_length(table.column("text")).to_numpy(zero_copy_only=False)
        start = 0
        for row, size in enumerate(text_bytes.tolist()):
            full_rows = self.pending_rows == ROW_GROUP_ROWS
            if full_rows or (self.pending_rows and self.pending_text + size > ROW_GROUP_TEXT_BYTES):
                self.pending.append(table.slice(start, row - start))
                self.flush()
                start = row
            self.pending_rows += 1
            self.pending_text += size
        self.pending.append(table.slice(start))

    def flush(self) -> None:
        """Write the pending rows as one row group, chunked as one contiguous table writes."""
        if not self.pending_rows:
            return
        table = pa.concat_tables([t for t in self.pending if len(t)])
        self.pending, self.pending_rows, self.pending_text = [], 0, 0
        aligned = [
            piece if piece.column(0).num_chunks <= 1 else piece.combine_chunks()
            for piece in (table.slice(i, _WRITE_BATCH_ROWS) for i in range(0, len(table), _WRITE_BATCH_ROWS))
        ]
        self.written_rows += len(table)
        del table
        self.writer.write_table(pa.concat_tables(aligned), row_group_size=ROW_GROUP_ROWS)
        del aligned
        release_memory()

    def close(self) -> None:
        """Write what is pending; a shard without rows gets the one empty row group pyarrow writes."""
        self.flush()
        if not self.written_rows:
            self.writer.write_table(RAW_CORPUS_SCHEMA.empty_table())


@dataclass
class ShardResult:
    documents: int
    characters: int
    duplicates: int
    reject_runs: list[Path]
    fingerprint: str  # of the documents written, in order (DocumentsFingerprint)


def write_shard(
    runs: list[tuple[Path, int]],
    path: Path,
    bucket_bytes: int,
    scratch: Path,
    name: str,
    footer: Callable[[str], dict[bytes, bytes]] = lambda documents: {},
    copy_runs: list[Path] = (),
) -> ShardResult:
    """Merge a shard's runs into the Parquet file ``path``; duplicates become reject runs.

    ``path`` is a temporary name the caller renames into place (ingest commits every shard
    of a category together). ``footer(documents)`` gives key-value metadata for the file's
    footer (its provenance) from the fingerprint of the documents written, in order
    (``DocumentsFingerprint``). ``copy_runs`` hold the keys of the rows the readers already
    found to be copies.
    """
    buckets = max(1, math.ceil(sum(size for _, size in runs) / bucket_bytes))
    rejects = RejectBuffer(scratch, name)
    documents = characters = duplicates = 0
    with pq.ParquetWriter(path, RAW_CORPUS_SCHEMA, **_PARQUET_OPTIONS) as writer:
        shard_file = _ShardFile(writer)
        fingerprint = DocumentsFingerprint()
        found_copies = buckets_in_order(list(copy_runs), KEY_SCHEMA, buckets)
        for bucket in buckets_in_order([p for p, _ in runs], RAW_CORPUS_SCHEMA, buckets):
            unique, copies = sorted_unique(bucket)
            duplicates += len(copies)  # the readers counted theirs
            copies = pa.concat_tables([copies, next(found_copies)])
            del bucket
            shard_file.append(unique)
            fingerprint.update(unique)
            documents += len(unique)
            characters += int(pc.sum(unique.column("n_chars")).as_py() or 0)
            for reject in duplicate_rejects(copies, unique):
                rejects.add(reject)
            del unique, copies
            release_memory()
        shard_file.close()
        writer.add_key_value_metadata(footer(fingerprint.hexdigest()))
    rejects.spill()
    return ShardResult(documents, characters, duplicates, rejects.runs, fingerprint.hexdigest())
