"""windowed_chunks: each shard's documents cut into token windows (Algorithm 1)."""

import dagster as dg

from .. import code_versions
from ..consistency import WINDOWED_CHUNKS
from ..partitions import category_and_shard, category_shard_partitions, category_to_shards
from ..progress import LatestLine, TerminalProgress, Throttle, duration
from ..resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from ..validation import check_window_fits
from ..windows.chunking import WindowSpec, WindowStats
from ..windows.files import window_raw_shard
from .corpus import raw_corpus
from .current import current_input, expected_now


@dg.asset(
    partitions_def=category_shard_partitions,
    deps=[dg.AssetDep(raw_corpus, partition_mapping=category_to_shards)],
    group_name="windows",
    kinds={"parquet"},
    code_version=code_versions.windowed_chunks(),
    description=(
        "Token windows of each document (LongAttn Algorithm 1) with the scoring model's "
        "tokenizer: token ids, decoded text and stable data_ids."
    ),
)
def windowed_chunks(
    context: dg.AssetExecutionContext,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
) -> dg.MaterializeResult:
    category, shard = category_and_shard(context)
    layout = data_root.layout
    tokenizer = attention_scorer.tokenizer()
    bos = attention_scorer.add_bos and tokenizer.bos_token_id is not None
    check_window_fits(windowing.window_size, attention_scorer.source(), bos, "windowing.window_size")
    # the raw shard, committed, under today's shard count and from today's input files
    current_input(layout, category, shard, WINDOWED_CHUNKS, expected_now(category, data_root, corpus_input))
    source = layout.shard_path("raw_corpus", category, shard)
    spec = WindowSpec(category, shard, windowing.window_size, windowing.sample_fraction)
    output = layout.shard_path(WINDOWED_CHUNKS, category, shard)

    log = Throttle(context.log.info)
    latest = LatestLine(f"{category}|{shard}: windowing")

    def progress(stats: WindowStats) -> None:
        latest.set(
            f"{category}|{shard}: {stats.documents:,} documents, {stats.windows:,} windows, "
            f"{stats.document_tokens / max(stats.seconds, 1e-9):,.0f} tokens/s, {duration(stats.seconds)} elapsed"
        )
        log(latest())

    with TerminalProgress(latest):
        stats, record = window_raw_shard(source, tokenizer, spec, output, progress)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(record.fingerprint),
        metadata={
            **stats.as_metadata(),
            "window_size": windowing.window_size,
            "sample_fraction": windowing.sample_fraction,
            "tokenizer": tokenizer.fingerprint,
            "provenance": record.fingerprint,
            "path": dg.MetadataValue.path(str(output)),
        },
    )
