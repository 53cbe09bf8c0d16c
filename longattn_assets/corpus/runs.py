"""Sorted runs of one shard's rows on disk, read back in hash-range buckets.

A run is an Arrow IPC file of rows sorted by (doc_hash, source, location) and free of
duplicate texts, cut into small record batches. Since ``doc_hash`` is a uniform hash,
splitting the hash space into equal ranges splits a shard into buckets of about equal
size: each bucket, gathered from every run, fits in memory, is sorted there, and the
buckets in hash order are the whole shard in order. Every copy of a text has the same
hash, so duplicates always meet in one bucket.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..windows.ids import DOC_HASH_BYTES

SORT_KEYS = [("doc_hash", "ascending"), ("source", "ascending"), ("location", "ascending")]
# The columns of a row's key: what a run of copies holds.
KEY_SCHEMA = pa.schema([("doc_hash", pa.string()), ("source", pa.string()), ("location", pa.int64())])
# Bytes of one record batch in a run: a reader holds one batch per run at a time.
RUN_BATCH_BYTES = 256 << 10
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")
_HASH_SPACE = 1 << (8 * DOC_HASH_BYTES)


def sorted_unique(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(rows sorted by SORT_KEYS keeping the first of each doc_hash, the key columns of the others).

    Only index arrays are filtered, so the rows are copied once, whatever is dropped.
    """
    order = pc.sort_indices(table, sort_keys=SORT_KEYS)
    hashes = table.column("doc_hash").take(order)
    same_as_previous = pc.equal(hashes.slice(1), hashes.slice(0, max(len(order) - 1, 0)))
    is_duplicate = pa.concat_arrays([pa.array([False] * min(len(order), 1), pa.bool_()), *same_as_previous.chunks])
    duplicates = order.filter(is_duplicate)
    keys = table.select([name for name, _ in SORT_KEYS])
    return table.take(order.filter(pc.invert(is_duplicate))), keys.take(duplicates)


def write_run(table: pa.Table, path: Path) -> int:
    """Write sorted rows as a run of small batches; return their Arrow bytes."""
    rows_per_batch = max(1, int(len(table) * RUN_BATCH_BYTES / max(table.nbytes, 1)))
    try:
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=_IPC_OPTIONS) as writer:
            for batch in table.to_batches(max_chunksize=rows_per_batch):
                writer.write_batch(batch)
    except OSError as exc:
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):
            # pyarrow's message names no path; the scratch folder is removed when ingest fails
            raise OSError(errno.ENOSPC, f"no space left to write {path} (ingest's sorted runs): {exc}") from exc
        raise
    return table.nbytes


class _RunCursor:
    """Reads one run front to back, one batch at a time."""

    def __init__(self, path: Path):
        self._reader = pa.ipc.open_file(pa.OSFile(str(path)))
        self._next = 0
        self._batch: pa.RecordBatch | None = None

    def _current(self) -> pa.RecordBatch | None:
        while self._batch is None or len(self._batch) == 0:
            if self._next == self._reader.num_record_batches:
                return None
            self._batch = self._reader.get_batch(self._next)
            self._next += 1
        return self._batch

    def take_below(self, bound: str | None) -> list[pa.RecordBatch]:
        """Every row left whose doc_hash sorts before ``bound`` (all rows when None)."""
        taken = []
        while (batch := self._current()) is not None:
            count = len(batch) if bound is None else pc.sum(pc.less(batch.column("doc_hash"), bound)).as_py() or 0
            taken.append(batch.slice(0, count))
            self._batch = batch.slice(count)
            if count < len(batch):
                break
        return taken


def hash_bound(index: int, buckets: int) -> str | None:
    """The doc_hash that ends bucket ``index`` of ``buckets`` (None: the end of the hash space)."""
    if index == buckets - 1:
        return None
    return f"{(index + 1) * _HASH_SPACE // buckets:0{2 * DOC_HASH_BYTES}x}"


def buckets_in_order(runs: list[Path], schema: pa.Schema, buckets: int) -> Iterator[pa.Table]:
    """The rows of all runs, one hash-range bucket at a time, in hash order (unsorted inside)."""
    cursors = [_RunCursor(path) for path in runs]
    for index in range(buckets):
        bound = hash_bound(index, buckets)
        batches = [batch for cursor in cursors for batch in cursor.take_below(bound)]
        yield pa.Table.from_batches(batches, schema=schema)
