"""Score a windowed_chunks table (or Parquet file) into a scored_chunks table.

A file is scored chunk by chunk and each chunk kept as soon as it is scored (resume.py),
so a killed run loses at most one chunk of work.

Windows carry the fingerprint of the tokenizer that made their token ids; scoring them
with a model whose tokenizer differs would feed meaningless ids to its embeddings, so
such tables are refused before any work. Each score row carries the hash of the token ids
it was computed from (``tokens_hash``), so a selection checks window by window that its
scores belong to its windows. Scores that are not finite (a NaN from bad rope settings or
a broken checkpoint) are refused: nothing is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from ..consistency import (
    SCORED_CHUNKS,
    NonFiniteScoresError,
    derived_provenance,
    non_finite_message,
)
from ..provenance import CODE_REVISIONS
from ..storage import write_parquet
from ..windows.files import recorded_provenance
from ..windows.ids import tokens_hash
from .resume import ScoringParts, file_sha256
from .scorer import Layer0Scorer
from .token_windows import token_windows

if TYPE_CHECKING:
    from ..model.layer0 import Layer0Weights

SCORED_SCHEMA = pa.schema(
    [
        ("data_id", pa.string()),
        ("n_tokens", pa.int32()),
        ("tokens_hash", pa.string()),
        ("ds", pa.float64()),
        ("du", pa.float64()),
        ("ds_heads", pa.list_(pa.float32())),
        ("du_heads", pa.list_(pa.float32())),
        ("model", pa.string()),
    ]
)


# Windows kept per part: a killed run redoes at most this many. At 2,048-token windows a
# chunk is about half a million tokens, seconds on a GPU and a few minutes on a CPU.
RESUME_CHUNK_WINDOWS = 256
_SCORING_COLUMNS = ("data_id", "n_tokens", "token_ids", "tokenizer")


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


def model_identity(weights: Layer0Weights) -> dict[str, object]:
    """The recipe's part that names the model: its fingerprint (the scored layer's weights and
    rope settings), the layer, and the rope settings in effect, so the fingerprint can be recomputed from the
    model's files (:func:`model_problem`)."""
    return {
        "model": weights.fingerprint,
        "layer": weights.layer,
        "rope_theta": weights.rope_theta,
        "rope_scaling": weights.rope_scaling,
    }


def model_problem(recipe: Mapping[str, object], model: str | None) -> str | None:
    """Why scores whose recipe is ``recipe`` were not made by ``model`` (a model spec, as
    ``longattn score --model`` takes it), or None when they were: its layer-0 weights under the
    scores' own rope settings give the scores' model fingerprint."""
    from ..model.layer0 import load_layer0
    from ..model.source import resolve_model

    source = resolve_model(model)
    rope_scaling = recipe.get("rope_scaling")
    weights = load_layer0(
        source,
        rope_theta=recipe.get("rope_theta"),
        rope_scaling=dict(rope_scaling) if rope_scaling else None,
        layer=int(recipe.get("layer", 0)),  # type: ignore[call-overload]
    )
    if weights.fingerprint == recipe.get("model"):
        return None
    return (
        f"the scores were made by the model {recipe.get('model')}, not by {source.spec} ({weights.fingerprint} "
        "under the scores' rope settings): score the windows with that model, or give the model that made them (--model)"
    )


def scorer_recipe(scorer: Layer0Scorer) -> dict[str, object]:
    """The scorer settings that change scores: weights, rope and the scored layer (in the
    model fingerprint; the layer also on its own, for people reading selection.json and the
    dataset card), BOS, precision, statistics kernel and its block size, device kind. Batch
    sizes do not."""
    projector = scorer.projector
    return {
        "code": CODE_REVISIONS[SCORED_CHUNKS],
        **model_identity(scorer.weights),
        "add_bos": projector.add_bos,
        "bos_token_id": projector.bos_token_id,
        "dtype": str(scorer.dtype),
        "kernel": scorer.kernel,
        "block_size": scorer.block_size,
        "device": scorer.device.type,
    }


def expected_scorer_recipe(
    model: Mapping[str, object],
    *,
    bos_token_id: int | None,
    device: str = "auto",
    dtype: str = "auto",
    add_bos: bool = True,
    block_size: int = 512,
) -> dict[str, object]:
    """What :func:`scorer_recipe` records for a scorer with these settings on this machine,
    without building one (no device is touched, no weights are moved); ``model``: the
    :func:`model_identity` of the weights it would load.

    ``auto`` device and dtype resolve as the scorer resolves them here. The statistics
    kernel is not named: which one runs depends on what compiles on the device (the Triton
    kernel falls back to torch), so it is left to the check that a category's shards agree.
    """
    from .factory import scorer_dtype

    kind = torch.device(device).type if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    recipe: dict[str, object] = {
        "code": CODE_REVISIONS[SCORED_CHUNKS],
        **model,
        "add_bos": add_bos,
        "bos_token_id": bos_token_id,
        "dtype": str(scorer_dtype(dtype, kind)),
        "block_size": block_size,
        "device": kind,
    }
    return recipe


def score_windows_table(
    windows: pa.Table,
    scorer: Layer0Scorer,
    model_tokenizer_fingerprint: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Table:
    """The scored_chunks table of a windowed_chunks table, one row per window, in order."""
    _check_tokenizer(windows, model_tokenizer_fingerprint)
    tokens = token_windows(windows.column("token_ids"))
    scores = scorer.score(tokens, progress=progress)
    data_ids = windows.column("data_id").cast(pa.string())
    bad = [i for i, s in enumerate(scores) if not (np.isfinite(s.ds) and np.isfinite(s.du))]
    if bad:
        names = [data_ids[i].as_py() for i in bad]
        raise NonFiniteScoresError(
            non_finite_message(names, len(scores), f"scored by {scorer.fingerprint}")
            + ": nothing was written; check the model's weights and the rope settings (rope_theta, rope_scaling)"
        )
    return pa.table(
        {
            "data_id": data_ids,
            "n_tokens": windows.column("n_tokens").cast(pa.int32()),
            "tokens_hash": pa.array([tokens_hash(t) for t in tokens], pa.string()),
            "ds": pa.array([s.ds for s in scores], pa.float64()),
            "du": pa.array([s.du for s in scores], pa.float64()),
            "ds_heads": pa.array([s.ds_heads for s in scores], pa.list_(pa.float32())),
            "du_heads": pa.array([s.du_heads for s in scores], pa.list_(pa.float32())),
            "model": pa.array([scorer.fingerprint] * len(scores), pa.string()),
        },
        schema=SCORED_SCHEMA,
    )


def _chunks(path: str | os.PathLike[str], rows: int) -> Iterator[pa.Table]:
    """The windows needed for scoring, ``rows`` at a time (the last chunk may be shorter).

    Chunk boundaries depend only on ``rows``, never on the file's row groups, so a resumed
    run cuts the same chunks as the run it resumes.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    batches = pq.ParquetFile(path).iter_batches(batch_size=rows, columns=list(_SCORING_COLUMNS))
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _resume_key(windows_path: str | os.PathLike[str], scorer: Layer0Scorer, chunk_windows: int) -> dict:
    """Everything a chunk's scores depend on: parts made under another key are stale."""
    projector = scorer.projector
    return {
        "input_sha256": file_sha256(windows_path),
        "model": scorer.fingerprint,
        "device": scorer.device.type,
        "dtype": str(scorer.dtype),
        "kernel": scorer.kernel,
        "block_size": scorer.block_size,
        "batch_tokens": scorer.batch_tokens,
        "add_bos": projector.add_bos,
        "bos_token_id": projector.bos_token_id,
        "chunk_windows": chunk_windows,
        "schema": SCORED_SCHEMA.to_string(),
    }


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
    layer: int = 0,
    scorer: Layer0Scorer | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk_windows: int = RESUME_CHUNK_WINDOWS,
) -> dict:
    """Score a windowed_chunks Parquet file into a scored_chunks file, written atomically.

    A ready ``scorer`` (e.g. one kept by a long-lived resource) is used as it is; the model
    and scorer settings are then taken from it and the other keyword arguments are ignored.
    Every ``chunk_windows`` windows are kept as a part as soon as they are scored, so a run
    that was killed resumes after its last finished chunk (``windows_resumed`` says how
    many windows it did not score again); the output is the same bytes either way.
    """
    from ..model.layer0 import load_layer0
    from ..model.source import resolve_model
    from ..model.tokenizer import load_tokenizer

    if chunk_windows < 1:
        raise ValueError(f"chunk_windows must be at least 1, got {chunk_windows}")
    output = Path(output_path)
    source = scorer.weights.source if scorer is not None else resolve_model(model)
    tokenizer = load_tokenizer(source)
    windows_record = recorded_provenance(Path(windows_path))
    _check_tokenizer(pq.read_table(windows_path, columns=["tokenizer"]), tokenizer.fingerprint)
    if scorer is None:
        scorer = Layer0Scorer(
            load_layer0(source, rope_theta=rope_theta, layer=layer),
            device=device,
            batch_tokens=batch_tokens,
            block_size=block_size,
            add_bos=add_bos,
            bos_token_id=tokenizer.bos_token_id,
        )
    total = pq.read_metadata(windows_path).num_rows
    parts = ScoringParts(output, _resume_key(windows_path, scorer, chunk_windows))
    start = time.perf_counter()
    done = resumed = tokens = chunks = 0
    for index, chunk in enumerate(_chunks(windows_path, chunk_windows)):
        chunks += 1
        tokens += int(pc.sum(chunk.column("n_tokens")).as_py() or 0)
        if parts.done(index, chunk.num_rows):
            resumed += chunk.num_rows
            if progress is not None:
                progress(done + chunk.num_rows, total)
        else:
            offset = done
            report = None if progress is None else (lambda d, t, o=offset: progress(o + d, total))
            # The scorer reports after every batch, the last one included: once per count.
            parts.write(index, score_windows_table(chunk, scorer, tokenizer.fingerprint, progress=report))
        done += chunk.num_rows
    seconds = time.perf_counter() - start
    record = derived_provenance(SCORED_CHUNKS, scorer_recipe(scorer), windows_record)
    write_parquet(record.stamped(parts.assemble(chunks, SCORED_SCHEMA)), output)
    parts.remove()
    return {
        "windows": done,
        "windows_resumed": resumed,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else 0.0,
        "peak_memory_bytes": scorer.peak_memory_bytes(),
        "device": str(scorer.device),
        "kernel": scorer.kernel_description,
        "workers": scorer.workers,
        "model": scorer.fingerprint,
        "provenance": record.fingerprint,
    }
