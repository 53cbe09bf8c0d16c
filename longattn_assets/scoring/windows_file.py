"""Score a windowed_chunks table (or Parquet file) into a scored_chunks table.

Windows carry the fingerprint of the tokenizer that made their token ids; scoring them
with a model whose tokenizer differs would feed meaningless ids to its embeddings, so
such tables are refused before any work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..storage import write_parquet
from .scorer import Layer0Scorer

SCORED_SCHEMA = pa.schema(
    [
        ("data_id", pa.string()),
        ("n_tokens", pa.int32()),
        ("ds", pa.float64()),
        ("du", pa.float64()),
        ("ds_heads", pa.list_(pa.float32())),
        ("du_heads", pa.list_(pa.float32())),
        ("model", pa.string()),
    ]
)


class TokenizerMismatchError(ValueError):
    """Windows tokenized with another tokenizer than the scoring model's."""


def _check_tokenizer(windows: pa.Table, expected: str) -> None:
    found = set(windows.column("tokenizer").unique().to_pylist())
    others = sorted(str(value) for value in found - {expected})
    if others:
        raise TokenizerMismatchError(
            f"windows were tokenized with {', '.join(others)} but the scoring model's tokenizer "
            f"is {expected}; re-window the corpus with the scoring model's tokenizer"
        )


def _token_windows(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Each row's token ids as a numpy view, without going through Python lists."""
    windows = []
    for chunk in column.chunks:
        offsets = chunk.offsets.to_numpy()
        values = chunk.values.to_numpy(zero_copy_only=False)
        windows.extend(values[offsets[i] : offsets[i + 1]] for i in range(len(chunk)))
    return windows


def score_windows_table(
    windows: pa.Table,
    scorer: Layer0Scorer,
    model_tokenizer_fingerprint: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """The scored_chunks table of a windowed_chunks table, one row per window, in order."""
    _check_tokenizer(windows, model_tokenizer_fingerprint)
    scores = scorer.score(_token_windows(windows.column("token_ids")), progress=progress)
    return pa.table(
        {
            "data_id": windows.column("data_id").cast(pa.string()),
            "n_tokens": windows.column("n_tokens").cast(pa.int32()),
            "ds": pa.array([s.ds for s in scores], pa.float64()),
            "du": pa.array([s.du for s in scores], pa.float64()),
            "ds_heads": pa.array([s.ds_heads for s in scores], pa.list_(pa.float32())),
            "du_heads": pa.array([s.du_heads for s in scores], pa.list_(pa.float32())),
            "model": pa.array([scorer.fingerprint] * len(scores), pa.string()),
        },
        schema=SCORED_SCHEMA,
    )


def score_windows_file(
    windows_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    model: str | None = None,
    device: str = "auto",
    batch_tokens: int = 65536,
    block_size: int = 512,
    add_bos: bool = True,
    rope_theta: float | None = None,
    scorer: Layer0Scorer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Score a windowed_chunks Parquet file into a scored_chunks file, written atomically.

    A ready ``scorer`` (e.g. one kept by a long-lived resource) is used as it is; the model
    and scorer settings are then taken from it and the other keyword arguments are ignored.
    """
    from ..model.layer0 import load_layer0
    from ..model.source import resolve_model
    from ..model.tokenizer import load_tokenizer

    windows = pq.read_table(windows_path)
    source = scorer.weights.source if scorer is not None else resolve_model(model)
    tokenizer = load_tokenizer(source)
    _check_tokenizer(windows, tokenizer.fingerprint)
    if scorer is None:
        scorer = Layer0Scorer(
            load_layer0(source, rope_theta=rope_theta),
            device=device,
            batch_tokens=batch_tokens,
            block_size=block_size,
            add_bos=add_bos,
            bos_token_id=tokenizer.bos_token_id,
        )
    start = time.perf_counter()
    scored = score_windows_table(windows, scorer, tokenizer.fingerprint, progress=progress)
    seconds = time.perf_counter() - start
    write_parquet(scored, Path(output_path))
    tokens = int(pc.sum(windows.column("n_tokens")).as_py() or 0)
    return {
        "windows": scored.num_rows,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "peak_memory_bytes": scorer.peak_memory_bytes(),
        "device": str(scorer.device),
        "model": scorer.fingerprint,
    }
