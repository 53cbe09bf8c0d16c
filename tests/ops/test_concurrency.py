"""Pool "gpu" with one slot per GPU: two scoring steps never run on one GPU at the same time.

The pool bounds how many scoring steps Dagster starts, but it is a scheduling bound, not a
mutual exclusion: Dagster 1.13 claims a slot with SELECT ... FOR UPDATE SKIP LOCKED on an
autocommit connection (on SQLite the lock clause is ignored altogether), so two runs
starting at the same instant can both take the last slot; this test saw it about once in
forty rounds on PostgreSQL. What makes the guarantee is the device lock every scoring step
holds (`AttentionScorer.scoring_session` -> `scoring/devices.claim_device`), so the stand-in
step below takes it exactly as scored_chunks does.
"""

import multiprocessing as mp
import time
from pathlib import Path

import dagster as dg
import pytest

from longattn_assets.partitions import category_shard_partitions
from longattn_assets.scoring.devices import claim_device

STEP_S = 1.0


def gpu_step_asset(record_dir: Path, devices: list[str]) -> dg.AssetsDefinition:
    """A scored_chunks stand-in in the same pool, holding a device the way scoring does."""

    @dg.asset(name="gpu_step", partitions_def=category_shard_partitions, pool="gpu")
    def _asset(context: dg.AssetExecutionContext) -> None:
        with claim_device("cuda", record_dir / "locks", candidates=devices) as device:
            start = time.time()
            time.sleep(STEP_S)
            name = context.partition_key.replace("|", "-")
            (record_dir / name).write_text(f"{start} {time.time()} {device}")

    return _asset


def materialize_in_process(ref, record_dir: str, devices: list[str], key: str) -> None:
    with dg.DagsterInstance.from_ref(ref) as instance:
        asset = gpu_step_asset(Path(record_dir), devices)
        result = dg.materialize([asset], partition_key=key, instance=instance)
    raise SystemExit(0 if result.success else 1)


def run_concurrently(
    instance: dg.DagsterInstance, record_dir: Path, devices: list[str], keys: list[str]
) -> None:
    """One run per key, each in its own process as a run worker would be."""
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(
            target=materialize_in_process, args=(instance.get_ref(), str(record_dir), devices, k)
        )
        for k in keys
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(keys)


def intervals(record_dir: Path) -> list[tuple[float, float, str]]:
    rows = [p.read_text().split() for p in record_dir.iterdir() if p.is_file()]
    return sorted((float(start), float(end), device) for start, end, device in rows)


@pytest.mark.parametrize("gpus", [1, 2])
def test_scoring_steps_never_share_a_gpu(
    postgres_instance: dg.DagsterInstance, tmp_path: Path, gpus: int
):
    # What `dagster instance concurrency set gpu N` does before a backfill: one slot per GPU.
    postgres_instance.event_log_storage.set_concurrency_slots("gpu", gpus)
    devices = [f"cuda:{i}" for i in range(gpus)]
    for round_ in range(3 if gpus == 1 else 1):
        record_dir = tmp_path / f"round-{round_}"
        record_dir.mkdir()
        run_concurrently(postgres_instance, record_dir, devices, ["book|00000", "book|00001"])
        (a_start, a_end, a_device), (b_start, b_end, b_device) = intervals(record_dir)
        if gpus == 1:
            assert a_device == b_device == "cuda:0"
            assert b_start >= a_end, "two scoring steps used one GPU at the same time"
        else:
            # The control: with two GPUs and two slots the steps do overlap, each on its own GPU.
            assert b_start < a_end and {a_device, b_device} == {"cuda:0", "cuda:1"}
