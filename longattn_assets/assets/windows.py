"""windowed_chunks: each shard's documents cut into token windows (Algorithm 1)."""

import dagster as dg

from ..partitions import category_and_shard, category_shard_partitions, category_to_shards
from ..progress import Throttle
from ..resources import AttentionScorer, DataRoot, Windowing
from ..windows.chunking import WindowSpec, WindowStats
from ..windows.files import raw_corpus_batches, write_windows
from .corpus import raw_corpus

WINDOWED_CHUNKS = "windowed_chunks"


@dg.asset(
    partitions_def=category_shard_partitions,
    deps=[dg.AssetDep(raw_corpus, partition_mapping=category_to_shards)],
    group_name="windows",
    kinds={"parquet"},
    description=(
        "Token windows of each document (LongAttn Algorithm 1) with the scoring model's "
        "tokenizer: token ids, decoded text and stable data_ids."
    ),
)
def windowed_chunks(
    context: dg.AssetExecutionContext,
    data_root: DataRoot,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
) -> dg.MaterializeResult:
    category, shard = category_and_shard(context)
    layout = data_root.layout
    source = layout.shard_path("raw_corpus", category, shard)
    if not source.is_file():
        raise dg.Failure(
            f"{source} does not exist: materialize raw_corpus for category {category!r} first"
        )
    tokenizer = attention_scorer.tokenizer()
    spec = WindowSpec(category, shard, windowing.window_size, windowing.sample_fraction)
    output = layout.shard_path(WINDOWED_CHUNKS, category, shard)

    log = Throttle(context.log.info)

    def progress(stats: WindowStats) -> None:
        log(
            f"{category}|{shard}: {stats.documents:,} documents, {stats.windows:,} windows, "
            f"{stats.document_tokens / max(stats.seconds, 1e-9):,.0f} tokens/s"
        )

    stats = write_windows(raw_corpus_batches(source), tokenizer, spec, output, progress)
    return dg.MaterializeResult(
        metadata={
            **stats.as_metadata(),
            "window_size": windowing.window_size,
            "sample_fraction": windowing.sample_fraction,
            "tokenizer": tokenizer.fingerprint,
            "path": dg.MetadataValue.path(str(output)),
        }
    )
