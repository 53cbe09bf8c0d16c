"""Scoring on a real single-node Slurm: one array task per shard, reported over Pipes."""

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from longattn_assets.assets.slurm_scoring import slurm_score_category
from longattn_assets.assets.windows import windowed_chunks
from longattn_assets.resources import Windowing
from longattn_assets.scoring.windows_file import score_windows_file
from longattn_assets.slurm import commands
from longattn_assets.slurm.pipes_client import PipesSlurmArrayClient, ShardTask
from longattn_assets.slurm.settings import SlurmSettings
from tests.ops.helpers import ASSETS, ingest, resources
from tests.ops.tiny import TINY_WINDOW, tiny_corpus

SHARDS = ["00000", "00001", "00002"]
ROWS_PER_SHARD = 2


def tiny_windows(tmp_path: Path) -> tuple[Path, dict]:
    """Windows of three shards of 'code', cut to two windows each to keep scoring quick."""
    root = tmp_path / "data"
    input_dir = tiny_corpus(tmp_path / "input")
    ingest("code", root, input_dir)
    res = resources(root, input_dir)
    res["windowing"] = Windowing(window_size=TINY_WINDOW)
    for shard in SHARDS:
        result = dg.materialize(ASSETS, selection=[windowed_chunks], partition_key=f"code|{shard}", resources=res)
        assert result.success
        path = root / "windowed_chunks" / "category=code" / f"shard={shard}.parquet"
        table = pq.read_table(path)
        assert table.num_rows >= ROWS_PER_SHARD
        pq.write_table(table.slice(0, ROWS_PER_SHARD), path)
    return root, res


def scores_by_id(path: Path) -> dict[str, tuple[float, float]]:
    return {r["data_id"]: (r["ds"], r["du"]) for r in pq.read_table(path, columns=["data_id", "ds", "du"]).to_pylist()}


def test_array_job_scores_each_shard_like_a_local_run_and_reports_a_failed_task(slurm: Path, tmp_path: Path):
    root, res = tiny_windows(tmp_path)
    windows = {s: root / "windowed_chunks" / "category=code" / f"shard={s}.parquet" for s in SHARDS}
    expected = {}
    for shard in SHARDS[:2]:
        local = tmp_path / f"local-{shard}.parquet"
        score_windows_file(windows[shard], local, device="cpu")
        expected[shard] = scores_by_id(local)
    windows[SHARDS[2]].write_bytes(b"not a parquet file")

    with dg.instance_for_test() as instance:
        result = slurm_score_category.execute_in_process(
            run_config={"ops": {"score_shards_on_slurm": {"config": {"category": "code", "shards": SHARDS}}}},
            resources=res,
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        failure = result.failure_data_for_node("score_shards_on_slurm").user_failure_data
        assert "1 of 3 shards failed: code|00002" in failure.description
        assert "exit" in failure.metadata["code|00002"].value
        materialized = instance.get_materialized_partitions(dg.AssetKey("scored_chunks"))
        assert materialized == {"code|00000", "code|00001"}

    for shard in SHARDS[:2]:
        got = scores_by_id(root / "scored_chunks" / "category=code" / f"shard={shard}.parquet")
        assert got.keys() == expected[shard].keys() and len(got) == ROWS_PER_SHARD
        for data_id, (ds, du) in expected[shard].items():
            assert got[data_id] == pytest.approx((ds, du), rel=1e-6, abs=1e-9)
    assert not (root / "scored_chunks" / "category=code" / "shard=00002.parquet").exists()


def test_interrupting_the_wait_cancels_the_array_job(slurm: Path, tmp_path: Path):
    settings = SlurmSettings(shared_dir=str(tmp_path / "shared"), cpus_per_task=1, time_limit="5")
    client = PipesSlurmArrayClient(settings, poll_s=0.2)
    tasks = [ShardTask(f"code|{s}", tmp_path / "in", tmp_path / f"out-{s}") for s in SHARDS]
    submitted: list[str] = []
    real_submit = commands.submit

    def submit(script: Path, cwd: Path) -> str:
        submitted.append(real_submit(script, cwd))
        return submitted[-1]

    def interrupted(job_id: str) -> bool:
        raise KeyboardInterrupt  # what terminating the run delivers to the waiting step

    @dg.op
    def waits(context: dg.OpExecutionContext) -> None:
        client.run(context=context, tasks=tasks, score_command=[sys.executable, "-c", "import time; time.sleep(120)"])

    @dg.job
    def cancel_job() -> None:
        waits()

    mp = pytest.MonkeyPatch()
    mp.setattr(commands, "submit", submit)
    mp.setattr(commands, "job_active", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            cancel_job.execute_in_process()
    finally:
        mp.undo()
    assert submitted
    deadline = time.monotonic() + 20
    while commands.job_active(submitted[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not commands.job_active(submitted[0])
    states = subprocess.run(["scontrol", "-o", "show", "job", submitted[0]], capture_output=True, text=True).stdout
    assert "JobState=CANCELLED" in states


def test_tasks_get_the_scorer_workers_when_set_else_the_cpus_slurm_gives_them():
    from longattn_assets.assets.slurm_scoring import scorer_options
    from longattn_assets.resources import AttentionScorer

    assert scorer_options(AttentionScorer(device="cpu", workers=3))[-2:] == ["--workers", "3"]
    assert "--workers" not in scorer_options(AttentionScorer(device="cpu", workers=None))
