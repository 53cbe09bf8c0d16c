"""Split a category's documents into shards by a stable hash of their text.

A document's shard depends only on its text, never on file order, file count or worker
count. Within a shard rows are sorted by that hash, so the same inputs give the same
bytes. Exact duplicates (same text) keep one row and set the others aside as rejects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..storage import work_dir, write_parquet, write_text
from ..windows.ids import document_hash, shard_of
from .records import Document, Reject

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
SPILL_BYTES = 64 << 20


@dataclass
class IngestStats:
    documents: int = 0
    rejects: int = 0
    duplicates: int = 0
    characters: int = 0
    seconds: float = 0.0
    files: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    shard_documents: dict[str, int] = field(default_factory=dict)

    def count_reject(self, reason: str) -> None:
        self.rejects += 1
        key = reason.split(":")[0]
        self.reject_reasons[key] = self.reject_reasons.get(key, 0) + 1


class _ShardSpill:
    """Rows of one shard buffered in memory and spilled to temporary Parquet files."""

    def __init__(self, folder: Path, shard: int):
        self.folder, self.shard = folder, shard
        self.rows: list[Document] = []
        self.hashes: list[str] = []
        self.bytes = 0
        self.files: list[Path] = []

    def add(self, doc: Document, doc_hash: str) -> None:
        self.rows.append(doc)
        self.hashes.append(doc_hash)
        self.bytes += len(doc.text)
        if self.bytes >= SPILL_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        path = self.folder / f"{self.shard:05d}-{len(self.files):05d}.parquet"
        pq.write_table(_to_table(self.rows, self.hashes), path, compression="zstd")
        self.files.append(path)
        self.rows, self.hashes, self.bytes = [], [], 0

    def table(self) -> pa.Table:
        self.flush()
        tables = [pq.read_table(p) for p in self.files]
        return pa.concat_tables(tables) if tables else RAW_CORPUS_SCHEMA.empty_table()


def _to_table(rows: list[Document], hashes: list[str]) -> pa.Table:
    return pa.table(
        {
            "doc_hash": hashes,
            "doc_id": [d.doc_id if d.doc_id is not None else h for d, h in zip(rows, hashes)],
            "text": [d.text for d in rows],
            "source": [d.source for d in rows],
            "location": [d.location for d in rows],
            "n_chars": [len(d.text) for d in rows],
        },
        schema=RAW_CORPUS_SCHEMA,
    )


def _sorted_unique(table: pa.Table) -> tuple[pa.Table, list[Reject]]:
    """Sort by (doc_hash, source, location); keep the first row of each doc_hash."""
    table = table.sort_by([("doc_hash", "ascending"), ("source", "ascending"), ("location", "ascending")])
    hashes = table.column("doc_hash")
    if len(table) < 2:
        return table, []
    previous = pc.equal(hashes.slice(1), hashes.slice(0, len(table) - 1))
    is_duplicate = pa.concat_arrays([pa.array([False]), previous.combine_chunks()])
    dupes = table.filter(is_duplicate)
    rejects = [
        Reject(src, loc, f"duplicate text: same document as another row (doc_hash {h})", "")
        for src, loc, h in zip(
            dupes.column("source").to_pylist(),
            dupes.column("location").to_pylist(),
            dupes.column("doc_hash").to_pylist(),
        )
    ]
    return table.filter(pc.invert(is_duplicate)), rejects


def write_rejects(rejects: list[Reject], path: Path) -> None:
    """All rejects of a category as JSON lines, sorted by source and location."""
    ordered = sorted(rejects, key=lambda r: (r.source, r.location, r.reason))
    lines = [
        json.dumps(
            {"source": r.source, "location": r.location, "reason": r.reason, "excerpt": r.excerpt},
            ensure_ascii=False,
        )
        for r in ordered
    ]
    write_text("".join(line + "\n" for line in lines), path)


def shard_documents(
    records: Iterable[Document | Reject],
    num_shards: int,
    shard_path: Callable[[int], Path],
    rejects_path: Path,
    spill_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    stamp: Callable[[int, pa.Table], pa.Table] = lambda index, table: table,
) -> IngestStats:
    """Route every document to its shard, write each shard and the rejects atomically.

    ``stamp`` gives a shard's table its provenance record before it is written.
    """
    started = time.perf_counter()
    stats = IngestStats()
    rejects: list[Reject] = []
    with work_dir(spill_dir, "ingest") as tmp:
        spills = [_ShardSpill(Path(tmp), i) for i in range(num_shards)]
        for seen, item in enumerate(records, start=1):
            if isinstance(item, Reject):
                rejects.append(item)
            else:
                doc_hash = document_hash(item.text)
                spills[shard_of(doc_hash, num_shards)].add(item, doc_hash)
            if progress and seen % 10_000 == 0:
                progress(seen, len(rejects))
        for index, spill in enumerate(spills):
            table, duplicates = _sorted_unique(spill.table())
            rejects.extend(duplicates)
            stats.duplicates += len(duplicates)
            write_parquet(stamp(index, table), shard_path(index))
            stats.documents += len(table)
            stats.characters += int(pc.sum(table.column("n_chars")).as_py() or 0)
            stats.shard_documents[f"{index:05d}"] = len(table)
    for reject in rejects:
        stats.count_reject(reject.reason)
    write_rejects(rejects, rejects_path)
    stats.seconds = time.perf_counter() - started
    return stats
