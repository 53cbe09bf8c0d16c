"""A batch of windows scored on single-threaded workers, each window split into fixed pieces.

A window's work comes in three stages: its preparation (the projected rows of its tokens,
one job), the RoPE and rounding of each kv head's operands (``WindowStatistics.round_head``),
then that head's statistics pieces (``WindowStatistics.run``: a few hundred query rows
through every key block, compiled so that workers do not wait on each other for the GIL).
A worker takes the oldest job that is ready, else prepares the next window: several windows
run side by side when a batch has many, and one long window is split over every worker. At
most ``workers + 1`` windows are under way at once, so memory follows the worker count, not
the batch. Which worker runs a job, and when, never reaches the bits: a job's result depends on
its window alone, and each window's partial sums are added in its fixed task order
(``WindowStatistics.result``)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch

from ..numerics import SingleThreadedWorkers
from .statistics import WindowStatistics

W = TypeVar("W")
Heads = tuple[torch.Tensor, torch.Tensor]


class _Cancelled(Exception):
    """The caller stopped waiting (an interrupt): workers stop after their current job."""


class _Batch(Generic[W]):
    def __init__(self, windows: Sequence[W], prepare: Callable[[W], WindowStatistics], workers: int):
        self.windows = windows
        self.prepare = prepare
        self.limit = workers + 1
        self.changed = threading.Condition()
        self.prepared = 0  # windows handed to a worker to prepare
        self.under_way = 0  # windows prepared or being prepared, without a result yet
        self.statistics: dict[int, WindowStatistics] = {}
        self.pending: dict[int, int] = {}  # jobs of a window not finished yet
        self.ready: deque[tuple[int, str, int]] = deque()  # (window, stage, head or task index)
        self.results: dict[int, Heads] = {}
        self.error: BaseException | None = None

    def _next(self) -> tuple[int, str, int] | None:
        """The next job, (window, "prepare", 0) to prepare one, or None when nothing is left."""
        with self.changed:
            while self.error is None and len(self.results) < len(self.windows):
                if self.ready:
                    return self.ready.popleft()
                if self.prepared < len(self.windows) and self.under_way < self.limit:
                    self.prepared += 1
                    self.under_way += 1
                    return self.prepared - 1, "prepare", 0
                self.changed.wait()
            return None

    def _run(self, window: int, stage: str, index: int) -> None:
        if stage == "prepare":
            statistics = self.prepare(self.windows[window])
            follow = [(window, "round", h) for h in range(statistics.num_kv_heads)] if statistics.pieces else []
            with self.changed:
                self.statistics[window] = statistics
                self.pending[window] = 1
            self._done(window, follow)
            return
        statistics = self.statistics[window]
        if stage == "round":
            statistics.round_head(index)
            self._done(window, [(window, "run", piece) for piece in statistics.pieces_of(index)])
        else:
            statistics.run(index)
            self._done(window, [])

    def _done(self, window: int, follow: list[tuple[int, str, int]]) -> None:
        """One job of ``window`` finished and made ``follow`` ready; the last one computes its result."""
        with self.changed:
            self.pending[window] += len(follow) - 1
            self.ready.extend(follow)
            last = self.pending[window] == 0
            self.changed.notify_all()
        if not last:
            return
        heads = self.statistics[window].result()
        with self.changed:
            del self.statistics[window], self.pending[window]
            self.under_way -= 1
            self.results[window] = heads
            self.changed.notify_all()

    def stop(self, error: BaseException) -> None:
        with self.changed:
            if self.error is None:
                self.error = error
            self.changed.notify_all()

    def work(self) -> None:
        """One worker's loop: run jobs until the batch is done or failed."""
        while (job := self._next()) is not None:
            try:
                self._run(*job)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
                self.stop(exc)
                return


def score_windows(
    windows: Sequence[W],
    prepare: Callable[[W], WindowStatistics],
    workers: SingleThreadedWorkers,
) -> list[Heads]:
    """(ds_heads, du_heads) of each window, in order; the first error of any job is raised."""
    batch = _Batch(windows, prepare, workers.workers)
    loops = [workers.submit(batch.work) for _ in range(workers.workers)]
    try:
        for loop in loops:
            loop.result()
    except BaseException:
        batch.stop(_Cancelled())
        raise
    if batch.error is not None:
        raise batch.error
    return [batch.results[window] for window in range(len(windows))]
