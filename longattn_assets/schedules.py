"""One schedule per category: request a run for every shard that is missing or stale.

A shard ``C|S`` needs work when its windowed_chunks file is missing or older than its
raw_corpus shard (then windows and scores are rebuilt), or when only its scored_chunks
file is missing or older than its windows (then only scoring runs). Each request carries
a data version, a hash of the identity (size and mtime) of the files the run reads, so a
run key is ``partition@version``. Dagster deduplicates run keys only within one schedule
tick, so the schedule also skips any token already claimed by a queued, running or
successful run of the same category: a later tick never requests the same work again,
and partitions materialized and current need no request at all.

With LONGATTN_SLURM=1 scoring goes to Slurm: the shard schedule only rebuilds windows,
and a second schedule per category sends all shards whose scores are stale to one
``slurm_score_category`` run (one array job).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from .assets.scoring import SCORED_CHUNKS
from .assets.slurm_scoring import slurm_score_category
from .assets.windows import WINDOWED_CHUNKS
from .jobs import shard_job
from .partitions import CATEGORY, SHARD, category_partitions, shard_partitions
from .resources import DataRoot
from .slurm.settings import slurm_enabled
from .storage import DataLayout
from .validation import check_variable

SHARDS_JOB = shard_job.name
CATEGORY_TAG = "longattn/category"
PLANNED_TAG = "longattn/planned"
RUN_KEY_TAG = "dagster/run_key"
# A request that names its partition in this tag is already resolved: Dagster then adds no
# per-dimension tags ("dagster/partition/category", ...), keys with two namespaces that its
# own tag rules deprecate. The run's steps and their materializations still get the
# multi-partition key (and its dimensions) from it, as for `dagster job execute --tags`.
PARTITION_TAG = "dagster/partition"
DEFAULT_CRON = "0 2 * * *"
# Runs whose work counts as done or under way; a failed or cancelled run frees its shards.
CLAIMING_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
]
RECENT_RUNS = 1000

def schedule_cron() -> str:
    return check_variable("LONGATTN_SCHEDULE_CRON", "cron", DEFAULT_CRON)


def file_identity(path: Path) -> str | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def data_version(*identities: str) -> str:
    return hashlib.sha256("|".join(identities).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShardWork:
    """What one shard needs: the assets to materialize and the version of their inputs."""

    category: str
    shard: str
    assets: tuple[str, ...]
    version: str

    @property
    def token(self) -> str:
        return f"{self.shard}@{self.version}"

    @property
    def partition_key(self) -> dg.MultiPartitionKey:
        return dg.MultiPartitionKey({CATEGORY: self.category, SHARD: self.shard})


def shard_work(layout: DataLayout, category: str, shard: str) -> ShardWork | None:
    """None when the shard is current, or when its raw_corpus shard does not exist yet."""
    raw = layout.shard_path("raw_corpus", category, shard)
    windows = layout.shard_path(WINDOWED_CHUNKS, category, shard)
    scores = layout.shard_path(SCORED_CHUNKS, category, shard)
    raw_id, windows_id, scores_id = file_identity(raw), file_identity(windows), file_identity(scores)
    if raw_id is None:
        return None
    if windows_id is None or raw.stat().st_mtime_ns > windows.stat().st_mtime_ns:
        return ShardWork(category, shard, (WINDOWED_CHUNKS, SCORED_CHUNKS), data_version(raw_id))
    if scores_id is None or windows.stat().st_mtime_ns > scores.stat().st_mtime_ns:
        return ShardWork(category, shard, (SCORED_CHUNKS,), data_version(raw_id, windows_id))
    return None


def claimed_tokens(instance: dg.DagsterInstance, category: str) -> set[str]:
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={CATEGORY_TAG: category}, statuses=CLAIMING_STATUSES),
        limit=RECENT_RUNS,
    )
    return {token for run in runs for token in run.tags.get(PLANNED_TAG, "").split()}


def plan_category(
    layout: DataLayout, category: str, shards: Iterable[str], claimed: set[str]
) -> list[ShardWork]:
    work = (shard_work(layout, category, shard) for shard in shards)
    return [w for w in work if w is not None and w.token not in claimed]


def shard_run_request(work: ShardWork, assets: Sequence[str]) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{work.category}|{work.token}",
        partition_key=work.partition_key,
        asset_selection=[dg.AssetKey(a) for a in assets],
        tags={CATEGORY_TAG: work.category, PLANNED_TAG: work.token, PARTITION_TAG: str(work.partition_key)},
    )


def slurm_run_request(category: str, works: Sequence[ShardWork]) -> dg.RunRequest:
    tokens = " ".join(w.token for w in works)
    return dg.RunRequest(
        run_key=f"{category}@{data_version(tokens)}",
        run_config={"ops": {"score_shards_on_slurm": {"config": {"category": category, "shards": [w.shard for w in works]}}}},
        tags={CATEGORY_TAG: category, PLANNED_TAG: tokens},
    )


def shard_schedule(category: str, cron: str, scoring_on_slurm: bool) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{category}_shards",
        cron_schedule=cron,
        job=shard_job,
        description=f"Materialize every missing or stale shard of {category!r}.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, data_root: DataRoot):
        claimed = claimed_tokens(context.instance, category)
        works = plan_category(data_root.layout, category, shard_partitions.get_partition_keys(), claimed)
        if scoring_on_slurm:
            # Windows are built here; their scoring is the Slurm schedule's, on a later tick.
            works = [w for w in works if WINDOWED_CHUNKS in w.assets]
            requests = [shard_run_request(w, [WINDOWED_CHUNKS]) for w in works]
        else:
            requests = [shard_run_request(w, w.assets) for w in works]
        return requests or dg.SkipReason(f"every shard of {category!r} is current or already requested")

    return _schedule


def slurm_schedule(category: str, cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{category}_slurm_scoring",
        cron_schedule=cron,
        job=slurm_score_category,
        description=f"Score every shard of {category!r} with current windows and stale scores on Slurm.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, data_root: DataRoot):
        claimed = claimed_tokens(context.instance, category)
        works = plan_category(data_root.layout, category, shard_partitions.get_partition_keys(), claimed)
        works = [w for w in works if w.assets == (SCORED_CHUNKS,)]
        if not works:
            return dg.SkipReason(f"no shard of {category!r} waits for scoring")
        return slurm_run_request(category, works)

    return _schedule


def build_schedules(
    categories: Sequence[str], cron: str, scoring_on_slurm: bool
) -> list[dg.ScheduleDefinition]:
    schedules = [shard_schedule(c, cron, scoring_on_slurm) for c in categories]
    if scoring_on_slurm:
        schedules += [slurm_schedule(c, cron) for c in categories]
    return schedules


schedules = build_schedules(category_partitions.get_partition_keys(), schedule_cron(), slurm_enabled())
jobs = [slurm_score_category]
