"""Schedule ticks: every missing or stale shard is requested once, current shards never."""

from pathlib import Path

import dagster as dg
import pytest

from longattn_assets.jobs import shard_job
from longattn_assets.partitions import shard_partitions
from longattn_assets.resources import AttentionScorer, Windowing
from longattn_assets.schedules import PLANNED_TAG, SHARDS_JOB, build_schedules, jobs
from tests.ops.helpers import ASSETS, ingest, resources
from tests.ops.tiny import TINY_WINDOW, tiny_corpus

SHARDS = shard_partitions.get_partition_keys()


@pytest.fixture
def setup(tmp_path: Path):
    root = tmp_path / "data"
    small_corpus = tiny_corpus(tmp_path / "input")
    res = resources(root, small_corpus) | {"windowing": Windowing(window_size=TINY_WINDOW)}
    defs = dg.Definitions(
        assets=ASSETS,
        jobs=[shard_job, *jobs],
        schedules=build_schedules(["code", "book"], "0 2 * * *", scoring_on_slurm=False),
        resources=res,
    )
    with dg.instance_for_test() as instance:
        yield defs, instance, root, small_corpus, res


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, res: dict, category: str):
    schedule = defs.resolve_schedule_def(f"{category}_shards")
    with dg.build_schedule_context(
        instance=instance, resources=res, repository_def=defs.get_repository_def()
    ) as context:
        return schedule.evaluate_tick(context)


def run_all(defs: dg.Definitions, instance: dg.DagsterInstance, requests) -> None:
    job = defs.resolve_job_def(SHARDS_JOB)
    for request in requests:
        tags = {**request.tags, "dagster/run_key": request.run_key}
        result = job.execute_in_process(
            partition_key=request.partition_key,
            asset_selection=request.asset_selection,
            instance=instance,
            tags=tags,
        )
        assert result.success


def requested(data) -> list[tuple[str, tuple[str, ...]]]:
    return sorted(
        (str(r.partition_key), tuple(k.to_user_string() for k in r.asset_selection)) for r in data.run_requests
    )


def test_first_tick_requests_every_shard_and_second_tick_nothing(setup):
    defs, instance, root, input_dir, res = setup
    ingest("code", root, input_dir)

    first = tick(defs, instance, res, "code")
    assert requested(first) == [(f"code|{s}", ("windowed_chunks", "scored_chunks")) for s in SHARDS]
    assert len({r.run_key for r in first.run_requests}) == len(SHARDS)
    book = tick(defs, instance, res, "book")
    assert not book.run_requests and book.skip_message.startswith("raw_corpus is missing: the book_new_inputs sensor")

    # Until the runs happen, a tick requests the same keys again; Dagster keeps one run per key
    # within a tick, and the runs' tags make later ticks skip them.
    assert requested(tick(defs, instance, res, "code")) == requested(first)
    run_all(defs, instance, first.run_requests)
    for shard in SHARDS:
        assert (root / "scored_chunks" / "category=code" / f"shard={shard}.parquet").is_file()

    second = tick(defs, instance, res, "code")
    assert not second.run_requests
    assert instance.get_runs_count(dg.RunsFilter(tags={PLANNED_TAG: first.run_requests[0].tags[PLANNED_TAG]})) == 1


def test_stale_shards_are_requested_with_only_the_assets_they_need(setup):
    defs, instance, root, input_dir, res = setup
    ingest("code", root, input_dir)
    run_all(defs, instance, tick(defs, instance, res, "code").run_requests)
    assert not tick(defs, instance, res, "code").run_requests

    # windows cut under another window size, and scores gone
    other = res | {"windowing": Windowing(window_size=2 * TINY_WINDOW)}
    key = dg.MultiPartitionKey({"category": "code", "shard": SHARDS[2]})
    windows = [a for a in ASSETS if a.key.to_user_string() == "windowed_chunks"]
    assert dg.materialize(ASSETS, selection=windows, partition_key=key, resources=other).success
    (root / "scored_chunks" / "category=code" / f"shard={SHARDS[1]}.parquet").unlink()

    stale = tick(defs, instance, res, "code")
    assert requested(stale) == [
        (f"code|{SHARDS[1]}", ("scored_chunks",)),
        (f"code|{SHARDS[2]}", ("windowed_chunks", "scored_chunks")),
    ]
    old_keys = {r.run_key for r in tick(defs, instance, res, "code").run_requests}
    assert old_keys == {r.run_key for r in stale.run_requests}

    run_all(defs, instance, stale.run_requests)
    assert not tick(defs, instance, res, "code").run_requests


def test_a_run_not_finished_yet_claims_its_shard_for_later_ticks(setup):
    defs, instance, root, input_dir, res = setup
    ingest("code", root, input_dir)
    first = tick(defs, instance, res, "code")
    queued = first.run_requests[0]
    job = defs.resolve_job_def(SHARDS_JOB)
    instance.create_run_for_job(
        job, tags={**queued.tags, "dagster/run_key": queued.run_key}, status=dg.DagsterRunStatus.STARTED
    )
    later = tick(defs, instance, res, "code")
    assert {r.run_key for r in later.run_requests} == {r.run_key for r in first.run_requests[1:]}


def test_with_slurm_windows_run_locally_and_scoring_goes_to_one_array_run(setup):
    defs, instance, root, input_dir, res = setup
    ingest("code", root, input_dir)
    windows = [a for a in ASSETS if a.key.to_user_string() == "windowed_chunks"]
    for shard in SHARDS[:2]:
        key = dg.MultiPartitionKey({"category": "code", "shard": shard})
        assert dg.materialize(ASSETS, selection=windows, partition_key=key, resources=res).success
    defs = dg.Definitions(
        assets=ASSETS, jobs=[shard_job, *jobs], schedules=build_schedules(["code"], "0 2 * * *", scoring_on_slurm=True), resources=res
    )
    local = tick(defs, instance, res, "code")
    assert requested(local) == [(f"code|{s}", ("windowed_chunks",)) for s in SHARDS[2:]]
    schedule = defs.resolve_schedule_def("code_slurm_scoring")
    with dg.build_schedule_context(instance=instance, resources=res, repository_def=defs.get_repository_def()) as context:
        slurm = schedule.evaluate_tick(context)
    [request] = slurm.run_requests
    assert request.run_config["ops"]["score_shards_on_slurm"]["config"] == {"category": "code", "shards": SHARDS[:2]}
    assert [t.split("@")[0] for t in request.tags[PLANNED_TAG].split()] == SHARDS[:2]


def test_a_tick_requests_nothing_while_raw_corpus_is_not_current_and_says_why(setup):
    """Issue 23 item 3: an input file added after the ingest; shard runs would refuse, so the
    tick names the problem and the sensor's or the user's ingest to run."""
    defs, instance, root, input_dir, res = setup
    ingest("code", root, input_dir)
    (input_dir / "code" / "part-1.jsonl").write_text('{"text": "one more document"}\n')
    skipped = tick(defs, instance, res, "code")
    assert not skipped.run_requests
    assert "raw_corpus was read from other input files than those there now: added part-1.jsonl" in skipped.skip_message
    assert "`materialize raw_corpus code` redoes it" in skipped.skip_message


def test_another_model_makes_every_shard_request_scores_only(setup, tmp_path):
    """Issue 23 item 1: with the scorer resource on another model (here: another rope theta,
    a new model fingerprint; same tokenizer), every scored shard is requested again, scores only."""
    defs, instance, root, input_dir, res = setup
    ingest("code", root, input_dir)
    run_all(defs, instance, tick(defs, instance, res, "code").run_requests)
    other = res | {"attention_scorer": AttentionScorer(device="cpu", lock_dir=str(root / ".locks"), rope_theta=1234.0)}
    assert requested(tick(defs, instance, other, "code")) == [(f"code|{s}", ("scored_chunks",)) for s in SHARDS]


def test_the_schedules_own_tag_keys_follow_dagsters_rule():
    """One optional namespace, sections of at most 63 of [A-Za-z0-9_.-] (Dagster 1.13's rule)."""
    import re

    from longattn_assets.schedules import ShardWork, shard_run_request, slurm_run_request

    rule = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")
    work = ShardWork("code", "00001", ("windowed_chunks", "scored_chunks"), "abc")
    for request in (shard_run_request(work, work.assets), slurm_run_request("code", [work])):
        assert request.tags and all(rule.match(key) for key in request.tags), request.tags
