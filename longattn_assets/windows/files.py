"""Window whole files: raw_corpus shards (Dagster) or raw input files (the CLI)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..consistency import WINDOWED_CHUNKS, derived_provenance, windows_recipe
from ..corpus.records import Document, Reject, duplicate_reason
from ..model.tokenizer import ModelTokenizer
from ..provenance import Provenance, read_provenance
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
    """Batches of documents from raw records; rejects are appended to ``rejects``.

    A text seen before is rejected as a duplicate, as ingest does, so the window ids (a
    hash of the text and the window's place) are unique in any file written from them.
    """
    kept: dict[str, tuple[str, int]] = {}  # doc_hash -> (source, location) of the row kept

    def documents() -> Iterator[Document]:
        for item in records:
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            doc_hash = document_hash(item.text)
            if doc_hash in kept:
                rejects.append(Reject(item.source, item.location, duplicate_reason(doc_hash, *kept[doc_hash]), ""))
                continue
            kept[doc_hash] = (item.source, item.location)
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
    *,
    provenance: Provenance,
) -> WindowStats:
    """Window every batch and write one Parquet file, with its provenance, atomically."""
    stats = WindowStats()
    schema = provenance.stamp(WINDOWED_CHUNKS_SCHEMA)
    with atomic_path(output) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for table, running in window_documents(batches, tokenizer, spec, progress):
                stats = running
                if len(table):
                    writer.write_table(table)
    return stats


def window_totals(path: Path) -> tuple[int, int]:
    """(windows, tokens) of a windowed_chunks file."""
    n_tokens = pq.read_table(path, columns=["n_tokens"]).column("n_tokens")
    return len(n_tokens), int(pc.sum(n_tokens).as_py() or 0)


class MissingProvenanceError(ValueError):
    """An input file that does not say what made it, so what is made from it could not either."""


def recorded_provenance(path: Path) -> Provenance:
    record = read_provenance(path)
    if record is None:
        raise MissingProvenanceError(
            f"{path} records no provenance (written by an older version or by hand): make it again"
        )
    return record


def window_raw_shard(
    source: Path,
    tokenizer: ModelTokenizer,
    spec: WindowSpec,
    output: Path,
    progress: Callable[[WindowStats], None] | None = None,
    docs_per_batch: int = DOCS_PER_BATCH,
) -> tuple[WindowStats, Provenance]:
    """Window a raw_corpus shard into ``output``, recording that it was made from ``source``."""
    recipe = windows_recipe(spec.window_size, spec.sample_fraction, tokenizer.fingerprint)
    record = derived_provenance(WINDOWED_CHUNKS, recipe, recorded_provenance(source))
    batches = raw_corpus_batches(source, docs_per_batch)
    return write_windows(batches, tokenizer, spec, output, progress, provenance=record), record


def files_provenance(spec: WindowSpec, tokenizer: ModelTokenizer, input_files: str) -> Provenance:
    """The record of windows cut straight from input files (``longattn window``); ``input_files``:
    their content fingerprint (``consistency.inputs_fingerprint``)."""
    recipe = windows_recipe(spec.window_size, spec.sample_fraction, tokenizer.fingerprint)
    inputs = {"input_files": input_files}
    return Provenance(WINDOWED_CHUNKS, spec.category, spec.shard, recipe, inputs, inputs)
