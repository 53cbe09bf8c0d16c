"""Window whole files: raw_corpus shards (Dagster) or raw input files (the CLI)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..corpus.records import Document, Reject
from ..model.tokenizer import ModelTokenizer
from ..storage import atomic_path
from .chunking import WINDOWED_CHUNKS_SCHEMA, WindowSpec, WindowStats, window_documents
from .ids import document_hash

DOCS_PER_BATCH = 64


def raw_corpus_batches(path: Path, docs_per_batch: int = DOCS_PER_BATCH) -> Iterator[pa.Table]:
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=docs_per_batch, columns=["doc_hash", "doc_id", "text"]):
        yield pa.Table.from_batches([batch])


def document_batches(
    records: Iterable[Document | Reject],
    rejects: list[Reject],
    docs_per_batch: int = DOCS_PER_BATCH,
) -> Iterator[pa.Table]:
    """Batches of documents from raw records; rejects are appended to ``rejects``."""
    def documents() -> Iterator[Document]:
        for item in records:
            if isinstance(item, Reject):
                rejects.append(item)
            else:
                yield item

    stream = documents()
    while chunk := list(islice(stream, docs_per_batch)):
        hashes = [document_hash(d.text) for d in chunk]
        yield pa.table(
            {
                "doc_hash": hashes,
                "doc_id": [d.doc_id if d.doc_id is not None else h for d, h in zip(chunk, hashes)],
                "text": [d.text for d in chunk],
            }
        )


def write_windows(
    batches: Iterable[pa.Table],
    tokenizer: ModelTokenizer,
    spec: WindowSpec,
    output: Path,
    progress: Callable[[WindowStats], None] | None = None,
) -> WindowStats:
    """Window every batch and write one Parquet file atomically; return the statistics."""
    stats = WindowStats()
    with atomic_path(output) as tmp:
        with pq.ParquetWriter(tmp, WINDOWED_CHUNKS_SCHEMA, compression="zstd") as writer:
            for table, running in window_documents(batches, tokenizer, spec, progress):
                stats = running
                if len(table):
                    writer.write_table(table)
    return stats
