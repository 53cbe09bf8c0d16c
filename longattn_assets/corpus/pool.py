"""Worker processes that run phases of tasks, each worker keeping its state within a phase.

A phase is a picklable factory and a list of tasks: every process builds its worker with
the factory, takes tasks from one shared queue (whoever is free takes the next), reports
after each, and returns a final result once the queue is drained. The processes live
across phases, so a run pays their start once. With one process everything runs in the
calling process. Processes come from a fork server, never from forking the caller, which
may be a threaded Dagster step; the server imports the ingest modules once.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .memory import worker_environment

_POLL_S = 0.5
_PRELOAD = ["longattn_assets.corpus.ingest"]


class Worker(Protocol):
    def handle(self, task: Any) -> Any: ...

    def finish(self) -> Any: ...


class WorkerFailedError(RuntimeError):
    """A worker process raised or died (killed, out of memory)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _get(channel: Any, caller: int) -> Any:
    """The next message; None (stop) once the caller has died: a killed run leaves no worker."""
    while True:
        try:
            return channel.get(timeout=_POLL_S)
        except queue.Empty:
            if not _alive(caller):
                return None


def _serve(control: Any, tasks: Any, results: Any, caller: int) -> None:
    try:
        while (factory := _get(control, caller)) is not None:
            worker = factory()
            while (task := _get(tasks, caller)) is not None:
                results.put(("report", worker.handle(task)))
            results.put(("final", worker.finish()))
    except OSError as exc:
        # a full disk or a missing file is the user's to fix: said in one line, not a traceback
        results.put(("os-error", (exc.errno, str(exc))))
    except BaseException:
        results.put(("error", traceback.format_exc()))


class WorkerPool:
    """``processes`` workers for a sequence of phases; use as a context manager."""

    def __init__(self, processes: int):
        self.processes = processes
        self._workers: list[Any] = []
        if processes > 1:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            self._tasks, self._results = context.Queue(), context.Queue()
            self._controls = [context.Queue() for _ in range(processes)]
            self._workers = [
                context.Process(target=_serve, args=(c, self._tasks, self._results, os.getpid()), daemon=True)
                for c in self._controls
            ]
            with worker_environment():  # the fork server is started by the first start()
                for process in self._workers:
                    process.start()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, error: type[BaseException] | None, *_: object) -> None:
        if error is None:  # idle workers stop when told; after a failure they are stopped
            for control in self._controls if self._workers else []:
                control.put(None)
            for process in self._workers:
                process.join(timeout=10)
        for process in self._workers:
            if process.is_alive():
                process.terminate()
                process.join()

    def run(self, factory: Callable[[], Worker], tasks: Iterable[Any], on_report: Callable[[Any], None]) -> list[Any]:
        """Handle every task; return each worker's final result (one per process)."""
        if not self._workers:
            worker = factory()
            for task in tasks:
                on_report(worker.handle(task))
            return [worker.finish()]
        for control in self._controls:
            control.put(factory)
        for task in tasks:
            self._tasks.put(task)
        for _ in self._workers:
            self._tasks.put(None)
        finals: list[Any] = []
        while len(finals) < len(self._workers):
            kind, payload = self._next_result()
            if kind == "error":
                raise WorkerFailedError(f"an ingest worker failed:\n{payload}")
            if kind == "os-error":
                raise OSError(*payload)
            (on_report if kind == "report" else finals.append)(payload)
        return finals

    def _next_result(self) -> tuple[str, Any]:
        while True:
            try:
                return self._results.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [p.exitcode for p in self._workers if p.exitcode is not None]
                if dead:
                    raise WorkerFailedError(
                        f"an ingest worker process ended unexpectedly (exit code {dead[0]}; "
                        "-9 is a kill, often by the out-of-memory killer: lower the workers or raise the budget)"
                    ) from None
