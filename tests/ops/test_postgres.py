"""deploy/dagster-postgres.yaml against a real PostgreSQL: concurrent runs all recorded."""

import multiprocessing as mp
from pathlib import Path

import dagster as dg

from longattn_assets.assets.windows import windowed_chunks
from tests.ops.helpers import ASSETS, ingest, resources

KEYS = ["code|00000", "code|00001", "code|00002"]


def materialize_windows(ref, root: str, input_dir: str, key: str) -> None:
    with dg.DagsterInstance.from_ref(ref) as instance:
        result = dg.materialize(
            ASSETS, selection=[windowed_chunks], partition_key=key,
            resources=resources(Path(root), Path(input_dir)), instance=instance,
        )
    raise SystemExit(0 if result.success else 1)


def test_concurrent_partition_runs_on_postgres_are_all_recorded(
    postgres_instance: dg.DagsterInstance, small_corpus: Path, tmp_path: Path
):
    instance = postgres_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    root = tmp_path / "data"
    ingest("code", root, small_corpus, instance=instance)

    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(target=materialize_windows, args=(instance.get_ref(), str(root), str(small_corpus), k))
        for k in KEYS
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]

    runs = instance.get_runs()
    assert len(runs) == 4 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    materialized = instance.get_materialized_partitions(dg.AssetKey("windowed_chunks"))
    assert materialized == set(KEYS)
    for key in KEYS:
        shard = key.split("|")[1]
        assert (root / "windowed_chunks" / "category=code" / f"shard={shard}.parquet").is_file()
