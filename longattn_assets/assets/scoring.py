"""scored_chunks: layer-0 attention statistics (DS_T, DU_T) of every window of a shard."""

import dagster as dg

from .. import code_versions
from ..consistency import SCORED_CHUNKS, WINDOWED_CHUNKS
from ..partitions import category_and_shard, category_shard_partitions
from ..progress import TerminalProgress, Throttle, WindowCount
from ..resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from ..windows.files import window_totals
from .current import current_input, expected_now
from .windows import windowed_chunks


@dg.asset(
    partitions_def=category_shard_partitions,
    deps=[windowed_chunks],
    group_name="scoring",
    kinds={"pytorch", "parquet"},
    pool="gpu",
    code_version=code_versions.scored_chunks(),
    description=(
        "Per window: long-range dependency strength ds (DS_T) and its uniformity du "
        "(DU_T) from layer 0's causal attention, per head and averaged over heads."
    ),
)
def scored_chunks(
    context: dg.AssetExecutionContext,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
) -> dg.MaterializeResult:
    from ..scoring.windows_file import score_windows_file

    category, shard = category_and_shard(context)
    layout = data_root.layout
    expected = expected_now(category, data_root, corpus_input, windowing, attention_scorer)
    current_input(layout, category, shard, SCORED_CHUNKS, expected)
    source = layout.shard_path(WINDOWED_CHUNKS, category, shard)
    output = layout.shard_path(SCORED_CHUNKS, category, shard)
    log = Throttle(context.log.info)
    windows, tokens = window_totals(source)

    with attention_scorer.scoring_session() as scorer:
        context.log.info(f"scoring {windows:,} windows on {scorer.device}")
        count = WindowCount(f"{category}|{shard}", "scored", windows, tokens)

        def progress(done: int, total: int) -> None:
            count.update(done)
            log(count.line(), force=done == total)

        with TerminalProgress(count.line):
            stats = score_windows_file(
                source,
                output,
                scorer=scorer,
                progress=progress,
                chunk_windows=attention_scorer.resume_chunk_windows,
            )
    if stats["windows_resumed"]:
        context.log.info(f"{category}|{shard}: kept {stats['windows_resumed']:,} windows scored by an interrupted run")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(stats["provenance"]),
        metadata={
            "windows": stats["windows"],
            "windows_resumed": stats["windows_resumed"],
            "tokens": stats["tokens"],
            "seconds": round(stats["seconds"], 3),
            "tokens_per_s": round(stats["tokens_per_s"], 1),
            "peak_memory_bytes": stats["peak_memory_bytes"],
            "device": str(stats["device"]),
            "kernel": stats["kernel"],
            "workers": stats["workers"],
            "model": stats["model"],
            "provenance": stats["provenance"],
            "path": dg.MetadataValue.path(str(output)),
        },
    )
