"""One schedule per category: request a run for every shard that is missing or stale.

Whether a shard needs work is decided by the check every asset makes (consistency.py, with
the resources' settings through ``assets.current.expected_now``): when its windowed_chunks
file is missing or stale (another raw shard, window size or tokenizer), windows and scores
are rebuilt; when only its scored_chunks file is (another windows file, model or scorer
setting), only scoring runs. A raw_corpus that is not current (inputs changed, an ingest
unfinished) is the input sensor's to redo: the tick says so and requests nothing. Each
request carries a data version, a hash of what the run's output will be made from (the
raw shard's fingerprint and the recipes expected) and of the stale files it replaces, so a
run key is ``partition@version``.
Dagster deduplicates run keys only within one schedule tick, so the schedule also skips
any token already claimed by a queued, running or successful run of the same category: a
later tick never requests the same work again, and partitions materialized and current
need no request at all.

With LONGATTN_SLURM=1 scoring goes to Slurm: the shard schedule only rebuilds windows,
and a second schedule per category sends all shards whose scores are stale to one
``slurm_score_category`` run (one array job).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from .assets.current import expected_now
from .assets.slurm_scoring import slurm_score_category
from .consistency import RAW_CORPUS, SCORED_CHUNKS, WINDOWED_CHUNKS, Expected, category_states
from .jobs import shard_job
from .partitions import CATEGORY, SHARD, category_partitions, shard_partitions
from .provenance import digest
from .resources import AttentionScorer, CorpusInput, DataRoot, Windowing
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


@dataclass(frozen=True)
class CategoryPlan:
    """The shards of a category that need a run, or why none can run (raw_corpus not current)."""

    works: list[ShardWork]
    blocked: str | None = None


def plan_category(
    layout: DataLayout, category: str, shards: Sequence[str], expected: Expected, claimed: set[str]
) -> CategoryPlan:
    """The shards whose windows or scores are missing or stale, less those already claimed."""
    raw_problem, states = category_states(layout, category, shards, expected)
    if raw_problem:
        return CategoryPlan([], f"{raw_problem}: the {category}_new_inputs sensor or `materialize {RAW_CORPUS} {category}` redoes it")
    works = []
    for state in states:
        if state.current:
            continue
        # what the run makes its files from, and the stale files it replaces: a file made
        # stale again after a successful run (rewritten under other settings) is a new token
        found = [record.fingerprint if record else "-" for record in (state.windows, state.scores)]
        made_from = [state.raw.fingerprint, digest(expected.windows), digest(expected.scores), *found]
        works.append(ShardWork(category, state.shard, state.stale, data_version(*made_from)))
    return CategoryPlan([w for w in works if w.token not in claimed])


def claimed_tokens(instance: dg.DagsterInstance, category: str) -> set[str]:
    runs = instance.get_runs(
        filters=dg.RunsFilter(tags={CATEGORY_TAG: category}, statuses=CLAIMING_STATUSES),
        limit=RECENT_RUNS,
    )
    return {token for run in runs for token in run.tags.get(PLANNED_TAG, "").split()}


def _plan(context: dg.ScheduleEvaluationContext, category: str, resources: tuple) -> CategoryPlan:
    claimed = claimed_tokens(context.instance, category)
    expected = expected_now(category, *resources, scores=True)
    return plan_category(resources[0].layout, category, shard_partitions.get_partition_keys(), expected, claimed)


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
    def _schedule(
        context: dg.ScheduleEvaluationContext,
        data_root: DataRoot,
        corpus_input: CorpusInput,
        windowing: Windowing,
        attention_scorer: AttentionScorer,
    ):
        plan = _plan(context, category, (data_root, corpus_input, windowing, attention_scorer))
        if plan.blocked:
            return dg.SkipReason(plan.blocked)
        works = plan.works
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
    def _schedule(
        context: dg.ScheduleEvaluationContext,
        data_root: DataRoot,
        corpus_input: CorpusInput,
        windowing: Windowing,
        attention_scorer: AttentionScorer,
    ):
        plan = _plan(context, category, (data_root, corpus_input, windowing, attention_scorer))
        if plan.blocked:
            return dg.SkipReason(plan.blocked)
        works = [w for w in plan.works if w.assets == (SCORED_CHUNKS,)]
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
