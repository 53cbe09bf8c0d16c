"""slurm_score_category: score a category's shards as one Slurm array job.

An op job rather than a second definition of scored_chunks (one asset key has one
definition): every shard a task scored is recorded as an AssetMaterialization of
scored_chunks for partition ``C|S``, so the asset's history and the schedules' view of
what is current are the same whichever way a shard was scored.
"""

import dagster as dg

from ..partitions import category_shard_partitions, shard_partitions
from ..provenance import read_provenance
from ..resources import AttentionScorer, DataRoot
from ..slurm.pipes_client import PipesSlurmArrayClient, ShardTask
from ..slurm.resource import SlurmScoring
from ..storage import check_key
from .scoring import SCORED_CHUNKS
from .windows import WINDOWED_CHUNKS

SLURM_SCORE_JOB = "slurm_score_category"


class SlurmScoreConfig(dg.Config):
    category: str
    shards: list[str] = []  # empty: every shard of the category whose windows exist


def score_command(python: str) -> list[str]:
    """`longattn score` run by the nodes' interpreter (no reliance on PATH inside a job)."""
    return [python, "-m", "longattn_assets.cli", "score"]


def scorer_options(scorer: AttentionScorer) -> list[str]:
    options = ["--model", scorer.model, "--device", scorer.device, "--batch-tokens", str(scorer.batch_tokens),
               "--layer", str(scorer.layer)]  # fmt: skip
    if scorer.rope_theta is not None:
        options += ["--rope-theta", str(scorer.rope_theta)]
    if scorer.rope_scaling is not None:
        options += ["--rope-scaling", scorer.rope_scaling]
    return options


@dg.op(
    description="Submit one Slurm array job (one task per shard) and record each scored shard.",
    tags={"kind": "slurm"},
)
def score_shards_on_slurm(
    context: dg.OpExecutionContext,
    config: SlurmScoreConfig,
    data_root: DataRoot,
    attention_scorer: AttentionScorer,
    slurm_scoring: SlurmScoring,
) -> None:
    category = check_key("category", config.category)
    layout = data_root.layout
    shards = config.shards or [
        s for s in shard_partitions.get_partition_keys()
        if layout.shard_path(WINDOWED_CHUNKS, category, s).is_file()
    ]
    if not shards:
        raise dg.Failure(f"no windowed_chunks shard of {category!r} to score: materialize them first")
    tasks = []
    for shard in shards:
        windows = layout.shard_path(WINDOWED_CHUNKS, category, check_key("shard", shard))
        if not windows.is_file():
            raise dg.Failure(f"{windows} does not exist: materialize windowed_chunks {category}|{shard} first")
        output = layout.shard_path(SCORED_CHUNKS, category, shard)
        output.parent.mkdir(parents=True, exist_ok=True)
        tasks.append(ShardTask(f"{category}|{shard}", windows, output))

    settings = slurm_scoring.settings()
    client = PipesSlurmArrayClient(settings, poll_s=slurm_scoring.poll_s)
    outcome = client.run(
        context=context,
        tasks=tasks,
        score_command=score_command(settings.python),
        score_options=scorer_options(attention_scorer),
    )
    for partition, metadata in outcome.succeeded.items():
        shard = category_shard_partitions.get_partition_key_from_str(partition).keys_by_dimension["shard"]
        record = read_provenance(layout.shard_path(SCORED_CHUNKS, category, shard))
        context.log_event(
            dg.AssetMaterialization(
                asset_key=SCORED_CHUNKS,
                partition=partition,
                metadata={**metadata, "path": dg.MetadataValue.path(metadata["path"])},
                # the same data version the scored_chunks asset reports (the file's provenance)
                tags={"dagster/data_version": record.fingerprint} if record else None,
            )
        )
    if outcome.failed:
        raise dg.Failure(
            description=(
                f"Slurm job {outcome.job_id}: {len(outcome.failed)} of {len(tasks)} shards failed: "
                + ", ".join(sorted(outcome.failed))
            ),
            metadata={p: dg.MetadataValue.text(reason) for p, reason in sorted(outcome.failed.items())},
        )
    context.log.info(f"Slurm job {outcome.job_id}: all {len(tasks)} shards scored")


@dg.job(name=SLURM_SCORE_JOB, tags={"longattn/engine": "slurm"})
def slurm_score_category() -> None:
    score_shards_on_slurm()

