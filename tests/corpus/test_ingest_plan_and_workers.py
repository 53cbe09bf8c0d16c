"""The memory plan of ingest, its worker processes' failures, and the asset's progress and metadata."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import dagster as dg
import pytest

from longattn_assets.assets.corpus import raw_corpus
from longattn_assets.corpus.budget import (
    GB,
    MB,
    MIN_WORKER_DATA_BYTES,
    ROW_GROUP_TEXT_BYTES,
    WORKER_BASE_BYTES,
    BudgetTooSmallError,
    MemoryPlan,
    parse_size,
)
from longattn_assets.corpus.pool import WorkerFailedError, WorkerPool
from longattn_assets.resources import CorpusInput, DataRoot


@pytest.mark.parametrize(
    ("text", "size"),
    [("1GB", GB), ("512MB", 512 * MB), ("1.5GiB", 3 * GB // 2), ("2g", 2 * GB), ("4096", 4096), (" 64 kb ", 64 << 10)],
)
def test_sizes_are_read_with_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "GB", "1 TBX", "-1GB", "one gigabyte"])
def test_unreadable_sizes_are_refused(text):
    with pytest.raises(ValueError, match="memory size"):
        parse_size(text)


def test_the_plan_keeps_every_worker_within_its_share_of_the_budget():
    for budget in (512 * MB, GB, 4 * GB, 13 * GB):
        for requested in (1, 2, 8, 32):
            plan = MemoryPlan.for_budget(budget, requested)
            assert 1 <= plan.workers <= requested
            per_worker = budget if plan.workers == 1 else budget / plan.workers - WORKER_BASE_BYTES
            assert per_worker >= MIN_WORKER_DATA_BYTES
            # reading: the buffer plus one shard's Arrow copy and its sorted copy at most
            assert 2.5 * plan.spill_bytes <= per_worker
            # writing: one row group, a bucket and its sorted copy
            assert ROW_GROUP_TEXT_BYTES + 2 * plan.bucket_bytes <= per_worker
    assert MemoryPlan.for_budget(GB, 32).workers == 2
    assert MemoryPlan.for_budget(13 * GB, 32).workers == 32


def test_a_budget_below_one_worker_is_refused_with_the_minimum():
    with pytest.raises(BudgetTooSmallError, match="320 MB"):
        MemoryPlan.for_budget(256 * MB, 1)


class _Squares:
    """A worker that squares numbers, fails on 13 and dies on 17 (built in its process)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def handle(self, task: int) -> int:
        if task == 13:
            raise ValueError("thirteen")
        if task == 17:
            os.kill(os.getpid(), signal.SIGKILL)
        self.seen.append(task)
        return task * task

    def finish(self) -> list[int]:
        return self.seen


@pytest.mark.parametrize("processes", [1, 3])
def test_a_pool_hands_every_task_to_one_worker_and_keeps_its_state_across_phases(processes):
    reports: list[int] = []
    with WorkerPool(processes) as pool:
        finals = pool.run(_Squares, range(10), reports.append)
        again = pool.run(_Squares, range(10, 12), reports.append)
    assert sorted(reports) == [n * n for n in range(12)]
    assert sorted(n for seen in finals for n in seen) == list(range(10)) and len(finals) == processes
    assert sorted(n for seen in again for n in seen) == [10, 11]


class _ArrowPool:
    """Reports the allocator Arrow's C++ code uses in the worker's process (before any override)."""

    def handle(self, task: int) -> str:
        import pyarrow as pa

        return pa.default_memory_pool().backend_name

    def finish(self) -> str:
        return os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "")


def test_worker_processes_allocate_arrow_memory_with_malloc_and_leave_the_caller_as_it_was():
    """mimalloc keeps freed pages: a worker using it holds memory it no longer uses (see memory.py)."""
    before = os.environ.get("ARROW_DEFAULT_MEMORY_POOL")
    reports: list[str] = []
    with WorkerPool(2) as pool:
        finals = pool.run(_ArrowPool, range(4), reports.append)
    assert reports == ["system"] * 4 and finals == ["system", "system"]
    assert os.environ.get("ARROW_DEFAULT_MEMORY_POOL") == before


@pytest.mark.parametrize(("task", "message"), [(13, "ValueError: thirteen"), (17, "exit code -9")])
def test_a_failing_or_killed_worker_fails_the_ingest_with_the_reason(task, message):
    with pytest.raises(WorkerFailedError, match=message), WorkerPool(2) as pool:
        pool.run(_Squares, [1, 2, task, 3], lambda _: None)


def test_raw_corpus_reports_progress_and_its_throughput_and_budget(small_corpus: Path, tmp_path: Path):
    resources = {
        "data_root": DataRoot(root=str(tmp_path / "root")),
        "corpus_input": CorpusInput(input_dir=str(small_corpus), workers=2, memory_budget="1GB"),
    }
    result = dg.materialize([raw_corpus], partition_key="code", resources=resources)
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    files = sorted((small_corpus / "code").iterdir())
    assert meta["workers"].value == 2 and meta["memory_budget_mb"].value == 1024
    assert meta["input_mb"].value == round(sum(p.stat().st_size for p in files) / 1e6, 3)
    assert meta["mb_per_s"].value > 0 and meta["files"].value == len(files)
    observed = [o.metadata for o in result.asset_observations_for_node("raw_corpus")]
    assert observed and observed[0]["files_total"].value == len(files)
    assert {"bytes_done", "bytes_total", "rate_mb_s", "eta_s", "step"} <= set(observed[0])
