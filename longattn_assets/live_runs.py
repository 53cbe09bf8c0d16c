"""Runs whose process is gone are ended and their pool slots freed, without a daemon.

A run executed by ``dagster job execute``, ``dagster asset materialize`` or ``dagster dev``
holds a slot of the "gpu" pool while its scoring step runs. Killed (SIGKILL, an OOM kill,
a closed terminal), its process cannot end the run: the run stays STARTED with the slot
claimed, and without a daemon's run monitoring every later scoring step waits for that slot
forever.

So the process that orchestrates a run holds a lock file named after the run for as long
as it executes (an ``flock``, which the kernel releases when its holder dies, as the device
locks of scoring/devices.py do). Whoever can take the lock of an unfinished run knows its
process is gone: that run is marked failed and its slots are freed. Every run executed
with the project's executor does this when it starts and every few seconds while it runs
(so a step waiting for a slot is freed by the kill of the run holding it), and
``longattn demo`` does it before and during its steps.

The demo's own runs execute in its process (``dg.materialize``), not through the executor:
they carry the tag ``longattn/demo`` and the demo holds one lock file for the instance
while it runs, so its runs are known dead when that lock is free.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.executor.base import Executor

if TYPE_CHECKING:
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode
    from dagster._core.execution.step_dependency_config import StepDependencyConfig

LOCK_DIR = "longattn-runs"
# Runs the demo launches carry this tag; the demo holds this file's lock while it runs.
DEMO_TAG = "longattn/demo"
DEMO_LOCK_FILE = "longattn-demo.lock"
SWEEP_EVERY_S = 5.0
UNFINISHED = {
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
}


def lock_dir(instance: dg.DagsterInstance) -> Path | None:
    """The instance's folder of run locks (None for an instance without a folder)."""
    root = getattr(instance, "root_directory", None)
    return Path(root) / LOCK_DIR if root else None


@contextmanager
def run_lock(instance: dg.DagsterInstance, run_id: str) -> Iterator[None]:
    """Hold the lock that says run ``run_id`` has a live process, for the block."""
    folder = lock_dir(instance)
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.lock"
    staging = folder / f".{run_id}.{os.getpid()}.tmp"
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.replace(staging, path)  # appears already locked: never mistaken for a dead run's
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # before the lock goes: see end_dead_runs
    finally:
        os.close(fd)


def _dead(path: Path) -> int | None:
    """An fd holding ``path``'s lock when its holder is gone and the file is still the run's."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        same = False  # unlinked by its run, which ended normally
    if not same:
        os.close(fd)
        return None
    return fd


def end_run(instance: dg.DagsterInstance, run: dg.DagsterRun, why: str) -> bool:
    """Mark ``run`` failed if it is unfinished and free its pool slots; whether it was unfinished."""
    unfinished = run.status in UNFINISHED
    if unfinished:
        instance.report_run_failed(run, why)
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return unfinished


def end_demo_runs(instance: dg.DagsterInstance) -> list[str]:
    """End every unfinished run of a demo: call it holding the demo lock, or knowing no demo runs."""
    runs = instance.get_runs(dg.RunsFilter(tags={DEMO_TAG: "true"}, statuses=list(UNFINISHED)))
    why = "the longattn demo running it ended without finishing (killed)"
    return [run.run_id for run in runs if end_run(instance, run, why)]


def _end_dead_demo_runs(instance: dg.DagsterInstance, root: Path) -> list[str]:
    path = root / DEMO_LOCK_FILE
    if not path.is_file():
        return []
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # a demo is running: its runs are alive
        return end_demo_runs(instance)
    finally:
        os.close(fd)


def end_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """End every unfinished run whose process is gone and free its pool slots; their ids."""
    folder = lock_dir(instance)
    if folder is None:
        return []
    ended = _end_dead_demo_runs(instance, folder.parent)
    for path in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        fd = _dead(path)
        if fd is None:
            continue
        try:
            run = instance.get_run_by_id(path.stem)
            if run is not None and end_run(instance, run, "the process running it is gone (killed or crashed)"):
                ended.append(run.run_id)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return ended


@contextmanager
def ending_dead_runs(instance: dg.DagsterInstance, every_s: float = SWEEP_EVERY_S) -> Iterator[None]:
    """End dead runs now and every ``every_s`` seconds while the block runs."""
    end_dead_runs(instance)
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(every_s):
            end_dead_runs(instance)

    thread = threading.Thread(target=sweep, name="longattn-dead-runs", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class LiveRunExecutor(Executor):
    """Dagster's default executor, whose run holds its liveness lock and ends dead runs."""

    def __init__(self, inner: Executor):
        self._inner = inner

    @property
    def retries(self) -> RetryMode:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[dg.DagsterEvent]:
        instance = plan_context.instance
        with run_lock(instance, plan_context.run_id), ending_dead_runs(instance):
            yield from self._inner.execute(plan_context, execution_plan)


def live_run_executor(base: dg.ExecutorDefinition = dg.multi_or_in_process_executor) -> dg.ExecutorDefinition:
    """``base`` (its name, config and requirements) with :class:`LiveRunExecutor` around it."""
    return dg.ExecutorDefinition(
        name=base.name,
        config_schema=base.config_schema,
        requirements=base.get_requirements,
        executor_creation_fn=lambda init_context: LiveRunExecutor(base.executor_creation_fn(init_context)),
        description=base.description,
    )
