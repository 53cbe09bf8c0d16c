"""A run whose process is gone does not hold the "gpu" pool's slot: the next run frees it.

Without a daemon nothing ends a run whose process was SIGKILLed: it stays STARTED with its
scoring step's slot claimed, and every later scoring step waited for that slot forever
("Step blocked by limit for pool gpu"). live_runs.py ends such runs from their lock files.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from longattn_assets.live_runs import DEMO_LOCK_FILE, DEMO_TAG, end_dead_runs, run_lock
from tests.corpus_fixtures import stdlib_sources, write_jsonl

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _instance(home: Path) -> dg.DagsterInstance:
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())  # pool gpu, one slot
    return dg.DagsterInstance.from_config(str(home))


def _hold_lock(home: str, run_id: str, ready) -> None:
    with dg.DagsterInstance.from_config(home) as instance, run_lock(instance, run_id):
        ready.set()
        time.sleep(600)


def _started_run(instance: dg.DagsterInstance, tags: dict | None = None) -> DagsterRun:
    run = DagsterRun(job_name="shard_job", status=dg.DagsterRunStatus.STARTED, tags=tags or {})
    instance.add_run(run)
    return run


def test_the_slot_of_a_run_whose_process_died_is_freed_and_live_runs_keep_theirs(tmp_path: Path):
    instance = _instance(tmp_path / "home")
    storage = instance.event_log_storage
    storage.set_concurrency_slots("gpu", 2)
    dead, alive = _started_run(instance), _started_run(instance)
    ctx = mp.get_context("fork")
    holders = {}
    for run in (dead, alive):
        ready = ctx.Event()
        holders[run.run_id] = ctx.Process(target=_hold_lock, args=(str(tmp_path / "home"), run.run_id, ready))
        holders[run.run_id].start()
        assert ready.wait(60)
        assert storage.claim_concurrency_slot("gpu", run.run_id, "scored_chunks").is_claimed
    try:
        assert end_dead_runs(instance) == []  # both processes live
        os.kill(holders[dead.run_id].pid, signal.SIGKILL)
        holders[dead.run_id].join()
        assert end_dead_runs(instance) == [dead.run_id]
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
        claimed = [slot.run_id for slot in storage.get_concurrency_info("gpu").claimed_slots]
        assert claimed == [alive.run_id]
        assert end_dead_runs(instance) == []  # said once
    finally:
        for process in holders.values():
            process.kill()
            process.join()


def test_runs_of_a_killed_demo_are_ended_by_any_run_while_a_live_demo_keeps_them(tmp_path: Path):
    instance = _instance(tmp_path / "home")
    run = _started_run(instance, {DEMO_TAG: "true"})
    instance.event_log_storage.set_concurrency_slots("gpu", 1)
    assert instance.event_log_storage.claim_concurrency_slot("gpu", run.run_id, "scored_chunks").is_claimed
    lock = tmp_path / "home" / DEMO_LOCK_FILE
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        assert end_dead_runs(instance) == []  # the demo holding the lock is alive
    finally:
        holder.kill()
        holder.wait()
    assert end_dead_runs(instance) == [run.run_id]
    assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots


@pytest.mark.slow
def test_a_shard_job_killed_while_it_holds_the_gpu_slot_does_not_block_the_next(tmp_path: Path):
    """The issue's case: `dagster job execute -j shard_job` SIGKILLed while it scores."""
    home = tmp_path / "home"
    instance = _instance(home)
    inputs = tmp_path / "input"
    # code: enough 64-token windows that scoring takes a while; book: a few
    write_jsonl(inputs / "code" / "a.jsonl", [{"text": t} for _, t in stdlib_sources(30, min_chars=6000)])
    write_jsonl(inputs / "book" / "a.jsonl", [{"text": t[:800]} for _, t in stdlib_sources(4, offset=40)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LONGATTN_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home), LONGATTN_DATA_ROOT=str(tmp_path / "data"), LONGATTN_INPUT_DIR=str(inputs),
        LONGATTN_WINDOW_SIZE="64", LONGATTN_CATEGORIES="code,book", LONGATTN_NUM_SHARDS="1",
        LONGATTN_DEVICE="cpu", LONGATTN_CACHE_DIR=str(tmp_path / "cache"),
    )  # fmt: skip

    def dagster(*args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "dagster"), *args], cwd=tmp_path, env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def shard_job(partition: str) -> subprocess.Popen:
        tags = json.dumps({"dagster/partition": partition})
        return dagster("job", "execute", "-m", "longattn_assets.definitions", "-j", "shard_job", "--tags", tags)

    for category in ("code", "book"):
        ingest = dagster("asset", "materialize", "-m", "longattn_assets.definitions", "--select", "raw_corpus",
                         "--partition", category)  # fmt: skip
        assert ingest.wait(300) == 0, ingest.stdout.read()[-3000:]
    first = shard_job("code|00000")
    deadline = time.monotonic() + 300
    while not (claimed := instance.event_log_storage.get_concurrency_info("gpu").claimed_slots):
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()[-3000:]
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the job and its step process, mid-scoring
    first.wait()
    second = shard_job("book|00000")
    try:
        out, _ = second.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(second.pid, signal.SIGKILL)
        pytest.fail("the next shard job waited for the killed run's gpu slot")
    assert second.returncode == 0, out[-3000:]
    assert "blocked by limit for pool gpu" not in out
    killed = instance.get_run_by_id(claimed[0].run_id)
    assert killed.status == dg.DagsterRunStatus.FAILURE
    assert (tmp_path / "data/scored_chunks/category=book/shard=00000.parquet").is_file()
