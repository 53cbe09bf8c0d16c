"""How ingest divides one memory budget between its worker processes and their buffers.

The budget bounds the peak resident memory of ingest as a whole: the worker processes
(their interpreter and libraries included) and every buffer they hold, whatever the input
size or shard count. The process that starts ingest (a Dagster step, the CLI) is not
counted: its own base is the same with or without ingest. The plan depends on the budget
and the worker count only; the files written do not depend on either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MB = 1 << 20
GB = 1 << 30
DEFAULT_BUDGET = "1GB"

# Resident memory of a spawned worker before it holds any data: Python, pyarrow, zstandard.
WORKER_BASE_BYTES = 96 * MB
# Memory a worker needs for data at the least: one row group being written plus a bucket.
MIN_WORKER_DATA_BYTES = 320 * MB
# Text bytes of one row group of a raw_corpus shard file: the writer holds one row group.
ROW_GROUP_TEXT_BYTES = 32 * MB
# Rows of one row group at most (pyarrow's default, so small shards keep today's layout).
ROW_GROUP_ROWS = 1 << 20

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": MB, "G": GB, "T": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes of ``"1GB"``, ``"512MB"``, ``"1.5GiB"`` or a plain number of bytes (1 KB = 1024 B)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"memory size {text!r} is not understood: write e.g. 1GB, 512MB or 2GiB")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").upper().rstrip("IB")])


class BudgetTooSmallError(ValueError):
    """A memory budget below what one worker needs."""


@dataclass(frozen=True)
class MemoryPlan:
    """Worker processes and the bytes each may buffer, for one memory budget.

    ``spill_bytes``: buffered documents (their Python size) at which a reading worker writes
    them out as sorted runs. ``bucket_bytes``: run bytes a shard-writing worker sorts at a
    time. With one worker the work runs in the calling process (no worker base to pay).
    """

    budget: int
    workers: int
    spill_bytes: int
    bucket_bytes: int

    @classmethod
    def for_budget(cls, budget: int, requested_workers: int) -> MemoryPlan:
        """As many workers as requested and as the budget can feed."""
        if budget < MIN_WORKER_DATA_BYTES:
            raise BudgetTooSmallError(
                f"ingest memory budget {budget / MB:.0f} MB is below the {MIN_WORKER_DATA_BYTES // MB} MB "
                "one worker needs (one row group being written and one bucket being sorted)"
            )
        fed = max(1, budget // (WORKER_BASE_BYTES + MIN_WORKER_DATA_BYTES))
        workers = max(1, min(requested_workers, fed))
        worker_bytes = budget if workers == 1 else budget // workers - WORKER_BASE_BYTES
        # Measured: while a run is written, the buffer is still there and one shard's
        # texts are in Arrow twice (the conversion's builders, the sorted copy) beside
        # the document being parsed: up to ~2.5 times the buffer, with one shard.
        spill_bytes = worker_bytes // 5
        # Measured: a writing worker peaks near 8 times its bucket with buckets as large
        # as a row group (the row group, its writing, the bucket's batches, their
        # concatenation and sorted copy, the runs' current batches): 32 MB buckets keep
        # it near 260 MB; larger ones would not make it faster.
        bucket_bytes = max(16 * MB, min(ROW_GROUP_TEXT_BYTES, (worker_bytes - 64 * MB) // 8))
        return cls(budget, workers, spill_bytes, bucket_bytes)
