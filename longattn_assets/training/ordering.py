"""The drawn windows in their final order, streamed with bounded memory.

Pass 1 reads the windows files one at a time, a batch at a time, keeps the drawn rows
(their token ids, text and scores), gives each its order key and appends it to the bucket
holding its key range: an Arrow IPC file in a scratch folder. Pass 2 reads the buckets in
key order, one at a time, sorts each by (key, data_id) and yields its rows. So memory holds
one windows batch, then one bucket, whatever the size of a category; the number of buckets
follows the memory budget and never changes the order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..consistency import InconsistentDataError
from .inputs import WindowsFile
from .plan import Draw, RankOrder, SeededOrder

ROW_SCHEMA = pa.schema(
    [
        ("key", pa.uint64()), ("data_id", pa.string()), ("category", pa.string()), ("rank", pa.int64()),
        ("token_ids", pa.list_(pa.int32())), ("content", pa.string()),
        ("ds", pa.float64()), ("du", pa.float64()), ("lds", pa.float64()),
    ]
)  # fmt: skip
_SCORE_COLUMNS = ["data_id", "rank", "ds", "du", "lds"]
# Bytes of token ids a batch holds (a 32K-token window is 128 KB), and of a file read buffer
BATCH_BYTES = 4 * 2**20
_READ_BUFFER = 1 << 20

Progress = Callable[[str, int], None]  # (stage, tokens done): after each file read, each batch written


def estimated_bytes(draws: Sequence[Draw]) -> int:
    """What the drawn rows weigh in the buckets: 4 bytes a token plus their text, the text
    estimated from selected.parquet's column sizes (no row is read)."""
    total = 0
    for draw in draws:
        meta = pq.read_metadata(draw.selection.selected)
        column = meta.schema.to_arrow_schema().get_field_index("content")
        text = sum(meta.row_group(i).column(column).total_uncompressed_size for i in range(meta.num_row_groups))
        total += 4 * draw.tokens + (text * draw.windows) // max(draw.selection.kept, 1)
    return total


def ordered_batches(
    draws: Sequence[Draw],
    order: RankOrder | SeededOrder,
    scratch: Path,
    *,
    bucket_bytes: int,
    vocab_size: int,
    bos: int | None,
    progress: Progress | None = None,
) -> Iterator[pa.RecordBatch]:
    """The rows of every drawn window, in order (``scratch``: an empty folder): ROW_SCHEMA
    without the key, with ``input_ids`` (the token ids after ``bos`` when it is not None)
    in place of ``token_ids``."""
    count = max(1, math.ceil(estimated_bytes(draws) / bucket_bytes))
    paths = [scratch / f"bucket-{i:05d}.arrow" for i in range(count)]
    _scatter(draws, order, paths, vocab_size, bos, progress)
    done = 0
    for rows in _batches_of(_sorted_buckets(paths), _batch_rows(draws)):
        input_ids = with_bos(rows.column("token_ids"), bos)
        yield rows.drop_columns(["key", "token_ids"]).append_column("input_ids", input_ids)
        done += len(input_ids.flatten())
        if progress:
            progress("write", done)


def _sorted_buckets(paths: list[Path]) -> Iterator[pa.Table]:
    """Pass 2: each bucket, read alone and sorted by (key, data_id)."""
    for path in paths:
        if path.exists():
            with pa.OSFile(str(path), "rb") as source:
                table = pa.ipc.open_file(source).read_all()
            path.unlink()
            yield table.sort_by([("key", "ascending"), ("data_id", "ascending")])


def _batches_of(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.RecordBatch]:
    """The tables' rows in batches of exactly ``rows`` (the last one shorter): the writers' row
    groups must not depend on where the buckets happened to split the order."""
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        pending.append(table)
        held += table.num_rows
        while held >= rows:
            joined = pa.concat_tables(pending)
            yield joined.slice(0, rows).combine_chunks().to_batches()[0]
            pending, held = [joined.slice(rows)], held - rows
    if held:
        yield pa.concat_tables(pending).combine_chunks().to_batches()[0]


def _batch_rows(draws: Sequence[Draw]) -> int:
    longest = max((d.selection.window_size for d in draws), default=1)
    return max(1, BATCH_BYTES // (4 * longest))


def _scatter(
    draws: Sequence[Draw],
    order: RankOrder | SeededOrder,
    paths: list[Path],
    vocab_size: int,
    bos: int | None,
    progress: Progress | None,
) -> None:
    """Pass 1: every drawn window into the bucket of its key."""
    done = 0
    with ExitStack() as stack:
        writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}

        def writer(bucket: int) -> pa.ipc.RecordBatchFileWriter:
            if bucket not in writers:
                sink = stack.enter_context(pa.OSFile(str(paths[bucket]), "wb"))
                writers[bucket] = stack.enter_context(pa.ipc.new_file(sink, ROW_SCHEMA))
            return writers[bucket]

        for draw in draws:
            found = 0
            for windows in draw.selection.windows_files:
                for rows in _drawn_rows(draw, windows, vocab_size, _batch_rows(draws)):
                    keys = order.keys(rows.column("data_id"), rows.column("rank").to_numpy())
                    buckets = order.buckets(keys, len(paths))
                    table = pa.Table.from_batches([rows]).add_column(0, "key", pa.array(keys, pa.uint64()))
                    by_bucket = np.argsort(buckets, kind="stable")
                    table, buckets = table.take(by_bucket), buckets[by_bucket]
                    starts = np.flatnonzero(np.diff(buckets, prepend=-1))
                    for start, end in zip(starts, [*starts[1:], len(buckets)]):
                        writer(int(buckets[start])).write_table(table.slice(start, end - start))
                    found += rows.num_rows
                    done += len(rows.column("token_ids").flatten()) + (rows.num_rows if bos is not None else 0)
                if progress:
                    progress("read", done)
            if found != draw.windows:
                raise InconsistentDataError(
                    f"{draw.category}: {found} of the {draw.windows} windows to export were found in the "
                    "windows files the selection names: select again"
                )


def _drawn_rows(draw: Draw, windows: WindowsFile, vocab_size: int, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of one windows file that ``draw`` takes, with their rank and scores."""
    wanted = _wanted(draw, windows)
    if not wanted.num_rows:
        return
    ids = wanted.column("data_id").combine_chunks()
    # read as a stream: pre-buffering would hold a whole row group's column chunks at once
    source = pq.ParquetFile(windows.path, pre_buffer=False, buffer_size=_READ_BUFFER)
    for batch in source.iter_batches(batch_size=batch_rows, columns=["data_id", "token_ids", "content"]):
        where = pc.index_in(batch.column("data_id"), value_set=ids)
        hit = pc.is_valid(where)
        if not pc.any(hit).as_py():
            continue
        rows = batch.filter(hit)
        scores = wanted.take(where.filter(hit))
        _check_ids(rows.column("token_ids"), vocab_size, windows.path)
        yield pa.RecordBatch.from_arrays(
            [
                rows.column("data_id"),
                pa.array([draw.category] * rows.num_rows, pa.string()),
                scores.column("rank").combine_chunks(),
                rows.column("token_ids"),
                rows.column("content"),
                *(scores.column(name).combine_chunks() for name in ("ds", "du", "lds")),
            ],
            schema=ROW_SCHEMA.remove(0),
        )


def _wanted(draw: Draw, windows: WindowsFile) -> pa.Table:
    """The drawn rows of selected.parquet that lie in ``windows``' category and shard (its
    small columns, a batch at a time, so only these rows are ever held)."""
    parts = []
    source = pq.ParquetFile(draw.selection.selected, pre_buffer=False, buffer_size=_READ_BUFFER)
    for batch in source.iter_batches(batch_size=65536, columns=[*_SCORE_COLUMNS, "category", "shard"]):
        mine = pc.and_(
            pc.and_(pc.equal(batch.column("category"), windows.category), pc.equal(batch.column("shard"), windows.shard)),
            pc.less_equal(batch.column("rank"), draw.last_rank),
        )
        parts.append(pa.Table.from_batches([batch.filter(mine).select(_SCORE_COLUMNS)]))
    return pa.concat_tables(parts) if parts else pa.table({name: [] for name in _SCORE_COLUMNS})


def _check_ids(token_ids: pa.ListArray, vocab_size: int, path: Path) -> None:
    low, high = pc.min_max(token_ids.flatten()).values()
    if low.as_py() is not None and (low.as_py() < 0 or high.as_py() >= vocab_size):
        raise InconsistentDataError(
            f"{path} holds token ids outside the vocabulary of {vocab_size} ({low}..{high}): "
            "its windows were not cut with this tokenizer"
        )


def with_bos(token_ids: pa.ListArray, bos: int | None) -> pa.ListArray:
    """Each list with ``bos`` put in front (unchanged when ``bos`` is None)."""
    if bos is None:
        return token_ids
    offsets = token_ids.offsets.to_numpy()
    values = token_ids.flatten().to_numpy(zero_copy_only=False)
    starts = offsets[:-1] - offsets[0]
    shifted = np.append(starts + np.arange(len(starts), dtype=starts.dtype), len(values) + len(starts))
    out = np.insert(values, starts, np.int32(bos))
    return pa.ListArray.from_arrays(pa.array(shifted.astype(np.int32)), pa.array(out, pa.int32()))
