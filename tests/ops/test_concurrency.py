"""Pool "gpu" with limit 1: two scoring steps of concurrent runs never overlap."""

import multiprocessing as mp
import time
from pathlib import Path

import dagster as dg
import pytest

from longattn_assets.partitions import category_shard_partitions

STEP_S = 1.0


def gpu_step_asset(record_dir: Path) -> dg.AssetsDefinition:
    """A scored_chunks stand-in in the same pool, recording when it holds its slot."""

    @dg.asset(name="gpu_step", partitions_def=category_shard_partitions, pool="gpu")
    def _asset(context: dg.AssetExecutionContext) -> None:
        start = time.time()
        time.sleep(STEP_S)
        name = context.partition_key.replace("|", "-")
        (record_dir / name).write_text(f"{start} {time.time()}")

    return _asset


def materialize_in_process(ref, record_dir: str, key: str) -> None:
    with dg.DagsterInstance.from_ref(ref) as instance:
        result = dg.materialize([gpu_step_asset(Path(record_dir))], partition_key=key, instance=instance)
    raise SystemExit(0 if result.success else 1)


def run_concurrently(instance: dg.DagsterInstance, record_dir: Path, keys: list[str]) -> None:
    """One run per key, each in its own process as a run worker would be."""
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=materialize_in_process, args=(instance.get_ref(), str(record_dir), k))
        for k in keys
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(keys)


def intervals(record_dir: Path) -> list[tuple[float, float]]:
    return sorted(tuple(map(float, p.read_text().split())) for p in record_dir.iterdir())


@pytest.mark.parametrize("limit", [1, 2])
def test_gpu_pool_limit_bounds_overlapping_steps(tmp_path: Path, limit: int):
    overrides = {"concurrency": {"pools": {"granularity": "op", "default_limit": limit}}}
    with dg.instance_for_test(overrides=overrides) as instance:
        run_concurrently(instance, tmp_path, ["book|00000", "book|00001"])
    (a_start, a_end), (b_start, b_end) = intervals(tmp_path)
    if limit == 1:
        assert b_start >= a_end, "two steps of the pool ran at the same time"
    else:
        # The control: with two slots the same runs do overlap, so the check above can fail.
        assert b_start < a_end
