"""raw_corpus: a category's input files, validated and split into shards."""

import dagster as dg

from .. import code_versions
from ..consistency import RAW_CORPUS
from ..corpus.ingest import REJECTS, REJECTS_FILE, ingest_category, unconfigured_folders
from ..corpus.progress import IngestProgress
from ..partitions import category_partitions, shard_partitions
from ..progress import LatestLine, TerminalProgress, Throttle
from ..provenance import digest, read_provenance
from ..resources import CorpusInput, DataRoot
from ..storage import check_key


@dg.asset(
    partitions_def=category_partitions,
    group_name="corpus",
    kinds={"parquet"},
    code_version=code_versions.raw_corpus(),
    description=(
        "Documents of one category read from its input folder or bucket prefix (JSONL, "
        "JSONL.gz/.zst, Parquet, Arrow; text under `content` or `text`, or the configured "
        "column), deduplicated by text and split into "
        "shards by a stable hash. Unusable rows go to rejects/category=C/raw_corpus.jsonl."
    ),
)
def raw_corpus(
    context: dg.AssetExecutionContext, data_root: DataRoot, corpus_input: CorpusInput
) -> dg.MaterializeResult:
    category = check_key("category", context.partition_key)
    layout = data_root.layout
    shards = shard_partitions.get_partition_keys()
    num_shards = len(shards)

    plan = corpus_input.memory_plan()
    context.log.info(
        f"{category}: ingest with {plan.workers} workers within {plan.budget / 2**20:,.0f} MB "
        f"(documents buffered up to {plan.spill_bytes / 2**20:,.0f} MB per worker, then sorted on disk)"
    )
    log = Throttle(context.log.info)

    def observation(snapshot: IngestProgress) -> None:
        metadata = snapshot.as_metadata()
        context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=category, metadata=metadata))

    observe = Throttle(observation, every_s=30.0)

    latest = LatestLine(f"{category}: ingest starting")

    def progress(snapshot: IngestProgress) -> None:
        latest.set(snapshot.message())
        log(latest())
        observe(snapshot)

    where = corpus_input.location
    with TerminalProgress(latest):
        stats = ingest_category(where, category, layout, num_shards, progress, plan=plan, fields=corpus_input.fields)
    if stats.obsolete_files:
        context.log.info(f"{category}: removed {len(stats.obsolete_files)} shard files of an earlier shard count")
    records = [read_provenance(layout.shard_path(RAW_CORPUS, category, s)) for s in shards]
    unknown = unconfigured_folders(where, category_partitions.get_partition_keys())
    if unknown:
        context.log.warning(
            f"input folders {unknown} under {corpus_input.shown} match no configured category "
            "(LONGATTN_CATEGORIES); their files are not ingested"
        )
    context.log.info(
        f"{category}: {stats.documents:,} documents in {num_shards} shards, "
        f"{stats.rejects:,} rejected, {stats.input_bytes / 1e6:,.1f} MB in {stats.seconds:.1f}s "
        f"with {stats.workers} workers"
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(digest([r.fingerprint for r in records])),
        metadata={
            "documents": stats.documents,
            "characters": stats.characters,
            "files": stats.files,
            "rejects": stats.rejects,
            "duplicates": stats.duplicates,
            "reject_reasons": dg.MetadataValue.json(stats.reject_reasons),
            "documents_per_shard": dg.MetadataValue.json(stats.shard_documents),
            "rejects_file": dg.MetadataValue.path(
                str(layout.category_file(REJECTS, category, REJECTS_FILE))
            ),
            "shards_dir": dg.MetadataValue.path(str(layout.category_dir("raw_corpus", category))),
            "seconds": round(stats.seconds, 3),
            "input_mb": round(stats.input_bytes / 1e6, 3),
            "mb_per_s": round(stats.input_bytes / 1e6 / stats.seconds, 2) if stats.seconds else 0.0,
            "workers": stats.workers,
            "memory_budget_mb": round(stats.memory_budget / 2**20),
            "spilled_runs": stats.runs,
            "unconfigured_input_folders": dg.MetadataValue.json(unknown),
            "obsolete_shard_files_removed": len(stats.obsolete_files),
            "input_files": stats.input_files,
        },
    )
