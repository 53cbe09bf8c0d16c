"""Kept windows' token ids for trainers: MDS shards, a Megatron indexed dataset, the HF layout.

``export_category`` writes one category's kept windows, best LDS first; ``export_mixture``
draws from several categories by token budget or weight, in rank order, and shuffles them
with a seed. Both write one folder, staged and put in place whole (``storage.atomic_dir``):

- ``mds/``: MosaicML Streaming shards (mds.py)
- ``megatron/longabc.bin`` and ``.idx``: Megatron's indexed dataset (megatron.py)
- ``hf/``: the Hugging Face layout with ``input_ids`` (hf.py)
- ``documents.parquet``: row i is document i of every format (data_id, category, rank, tokens)
- ``export.json``: the files, token counts per category, the vocabulary size, and the
  export's provenance: its settings and the fingerprints of the selections and the
  tokenizer it was made from.

Each window's ``input_ids`` are its token ids as windowed_chunks holds them, after the
scorer's BOS when ``include_bos`` (the default: the sequence the scorer read). A call whose
settings and inputs match the folder's record finds it current and writes nothing; the same
settings and inputs always give the same bytes (no time or host is written).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..corpus.budget import parse_size
from ..provenance import Provenance
from ..selection.exports import DEFAULT_HF_FILE_BYTES
from ..storage import atomic_dir, write_text
from ..validation import EXPORT_FORMATS, check
from .hf import HfOutput, training_card
from .inputs import Selection
from .mds import MDS_SHARD_BYTES, MdsOutput, streaming_package, token_dtype
from .megatron import MegatronOutput, megatron_dtype
from .ordering import ordered_batches
from .plan import (
    Draw,
    MixtureError,
    MixtureSettings,
    RankOrder,
    SeededOrder,
    draw_budget,
    whole_selection,
)

LONGABC_TRAINING = "longabc_training"
LONGABC_MIXTURE = "longabc_mixture"
EXPORT_FILE = "export.json"
DOCUMENTS_FILE = "documents.parquet"
MDS_DIR, MEGATRON_DIR, HF_DIR = "mds", "megatron", "hf"
MEGATRON_PREFIX = "longabc"
# Bump when a code change alters the bytes written for the same inputs and settings.
TRAINING_REVISION = "1"
DEFAULT_MEMORY_BUDGET = "512MB"
PROGRESS_SECONDS = 10.0  # at most one progress line this often (and one at the end of each pass)
DOCUMENTS_SCHEMA = pa.schema(
    [("data_id", pa.string()), ("category", pa.string()), ("rank", pa.int64()), ("n_tokens", pa.int32())]
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class ExportSettings:
    """What to write. ``memory_budget`` bounds the export's memory and never changes a byte."""

    include_bos: bool = True
    formats: tuple[str, ...] = EXPORT_FORMATS
    memory_budget: str = DEFAULT_MEMORY_BUDGET

    @classmethod
    def from_options(
        cls, *, include_bos: bool = True, formats: object = EXPORT_FORMATS, memory_budget: object = DEFAULT_MEMORY_BUDGET
    ) -> ExportSettings:
        return cls(bool(include_bos), check("formats", formats), check("memory_budget", memory_budget))


@dataclass(frozen=True)
class ExportResult:
    record: dict[str, Any]  # export.json
    seconds: float
    reused: bool  # the folder was current: nothing was written

    @property
    def tokens(self) -> int:
        return int(self.record["tokens"])

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def export_category(
    selection: Selection,
    out_dir: Path,
    settings: ExportSettings,
    *,
    vocab_size: int,
    say: Say | None = None,
) -> ExportResult:
    """Every window ``selection`` kept, best LDS first."""
    draw = whole_selection(selection, _bos(selection, settings) is not None)
    return _export(
        LONGABC_TRAINING, f"LongABC for training: {selection.category}", [draw], RankOrder(draw.windows),
        out_dir, settings, vocab_size, say, recipe={},
    )  # fmt: skip


def mixture_draws(selections: Sequence[Selection], mixture: MixtureSettings, bos: bool) -> list[Draw]:
    """What each category gives to the mixture: its best-ranked windows up to its budget."""
    by_category = {s.category: s for s in selections}
    if len(by_category) != len(selections):
        names = sorted(s.category for s in selections)
        raise MixtureError(f"two selections of one category, never mixed: {', '.join(names)}")
    chosen = mixture.categories(list(by_category))
    available = {c: whole_selection(by_category[c], bos).tokens for c in chosen}
    budgets = mixture.budgets(available)
    return [draw_budget(by_category[c], budgets[c], bos) for c in chosen]


def export_mixture(
    selections: Sequence[Selection],
    out_dir: Path,
    settings: ExportSettings,
    mixture: MixtureSettings,
    *,
    vocab_size: int,
    say: Say | None = None,
) -> ExportResult:
    """A seeded shuffle of each category's best windows, sized by ``mixture``."""
    draws = mixture_draws(selections, mixture, _bos(selections[0], settings) is not None)
    recipe = {"mixture": mixture.as_dict(), "budgets": {d.category: d.tokens for d in draws}}
    return _export(
        LONGABC_MIXTURE, "LongABC mixture for training", draws, SeededOrder(mixture.seed),
        out_dir, settings, vocab_size, say, recipe=recipe,
    )  # fmt: skip


def _bos(selection: Selection, settings: ExportSettings) -> int | None:
    return selection.bos_token_id if settings.include_bos else None


def export_provenance(
    asset: str, draws: Sequence[Draw], settings: ExportSettings, vocab_size: int, order: dict, recipe: dict
) -> Provenance:
    """What the export is made from and with: current while these are unchanged."""
    selections = [d.selection for d in draws]
    return Provenance(
        asset=asset,
        category="+".join(d.category for d in draws),
        shard="",
        recipe={
            "code": TRAINING_REVISION, "formats": list(settings.formats), "include_bos": settings.include_bos,
            "vocab_size": vocab_size, **order, "mds_shard_bytes": MDS_SHARD_BYTES,
            "hf_file_bytes": DEFAULT_HF_FILE_BYTES, **recipe,
        },
        inputs={
            **{f"longabc_dataset/{s.category}": s.fingerprint for s in selections},
            "tokenizer": selections[0].tokenizer,
        },
    )  # fmt: skip


def recorded_export(out_dir: Path) -> dict[str, Any] | None:
    """The folder's export.json, if every file it lists is there with its size."""
    path = out_dir / EXPORT_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    for file in record.get("files", []):
        found = out_dir / file["path"]
        if not found.is_file() or found.stat().st_size != file["bytes"]:
            return None
    return record


def _export(
    asset: str,
    title: str,
    draws: list[Draw],
    order: RankOrder | SeededOrder,
    out_dir: Path,
    settings: ExportSettings,
    vocab_size: int,
    say: Say | None,
    recipe: dict,
) -> ExportResult:
    say = say or (lambda message: None)
    provenance = export_provenance(asset, draws, settings, vocab_size, order.describe(), recipe)
    recorded = recorded_export(out_dir)
    if recorded is not None and recorded["provenance"]["fingerprint"] == provenance.fingerprint:
        say(f"{out_dir} is current ({recorded['tokens']:,} tokens): nothing to write")
        return ExportResult(recorded, 0.0, reused=True)
    if "mds" in settings.formats:
        streaming_package()  # a missing library fails here, before any work; its import is not timed
    progress = ProgressLine(say, sum(d.tokens for d in draws))
    bos = _bos(draws[0].selection, settings)
    facts = {
        "formats": ", ".join(settings.formats), "include_bos": settings.include_bos, "bos_token_id": bos,
        "tokenizer": draws[0].selection.tokenizer, "vocab_size": vocab_size, **order.describe(),
    }  # fmt: skip
    categories = {d.category: {"windows": d.windows, "tokens": d.tokens, "selection": d.selection.fingerprint,
                               "last_rank": d.last_rank} for d in draws}  # fmt: skip
    with atomic_dir(out_dir) as staging:
        outputs = _outputs(staging, settings.formats, vocab_size, provenance)
        written = _write(staging, draws, order, settings, vocab_size, bos, provenance, outputs, progress)
        if HF_DIR in outputs:
            card = training_card(title, facts, categories, written[HF_DIR], outputs[HF_DIR].rows)
            written[HF_DIR].append(write_text(card, staging / HF_DIR / "README.md"))
        files = sorted(path for paths in written.values() for path in paths)
        record = {
            "asset": asset, **facts, "formats": list(settings.formats), "dtypes": _dtypes(settings.formats, vocab_size),
            "windows": sum(d.windows for d in draws), "tokens": progress.total, "categories": categories,
            **({"mixture": recipe["mixture"]} if "mixture" in recipe else {}),
            "files": [{"path": p.relative_to(staging).as_posix(), "bytes": p.stat().st_size} for p in files],
            "provenance": json.loads(provenance.to_json()),
        }  # fmt: skip
        write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", staging / EXPORT_FILE)
    seconds = progress.seconds
    say(f"wrote {progress.total:,} tokens of {record['windows']:,} windows to {out_dir} in {seconds:.1f}s "
        f"({progress.total / seconds if seconds else 0:,.0f} tokens/s)")  # fmt: skip
    return ExportResult(record, seconds, reused=False)


def _write(
    staging: Path,
    draws: list[Draw],
    order: RankOrder | SeededOrder,
    settings: ExportSettings,
    vocab_size: int,
    bos: int | None,
    provenance: Provenance,
    outputs: dict[str, Any],
    progress: ProgressLine,
) -> dict[str, list[Path]]:
    """Every drawn window, in order, into every output and documents.parquet; the files by output."""
    documents = pq.ParquetWriter(staging / DOCUMENTS_FILE, provenance.stamp(DOCUMENTS_SCHEMA), compression="zstd")
    scratch = staging / ".buckets"
    scratch.mkdir()
    bucket_bytes = max(1, parse_size(settings.memory_budget) // 4)
    for rows in ordered_batches(
        draws, order, scratch, bucket_bytes=bucket_bytes, vocab_size=vocab_size, bos=bos, progress=progress
    ):
        for output in outputs.values():
            output.write(rows)
        documents.write_batch(_documents(rows), row_group_size=1 << 20)
    documents.close()
    shutil.rmtree(scratch)
    return {name: output.close() for name, output in outputs.items()} | {"documents": [staging / DOCUMENTS_FILE]}


class ProgressLine:
    """Says how far an export is, with its tokens/s: at most every PROGRESS_SECONDS, and at
    the end of each pass."""

    def __init__(self, say: Say, total: int):
        self.say, self.total = say, total
        self.started = self._said = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, stage: str, done: int) -> None:
        now = time.perf_counter()
        if now - self._said < PROGRESS_SECONDS and done < self.total:
            return
        self._said = now
        rate = done / (now - self.started) if now > self.started else 0.0
        verb = "read" if stage == "read" else "wrote"
        self.say(f"{verb} {done:,} of {self.total:,} tokens ({100 * done / max(self.total, 1):.0f}%), {rate:,.0f} tokens/s")


def _outputs(staging: Path, formats: Sequence[str], vocab_size: int, provenance: Provenance) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    if "mds" in formats:
        outputs[MDS_DIR] = MdsOutput(staging / MDS_DIR, vocab_size)
    if "megatron" in formats:
        (staging / MEGATRON_DIR).mkdir()
        outputs[MEGATRON_DIR] = MegatronOutput(staging / MEGATRON_DIR / MEGATRON_PREFIX, vocab_size)
    if "hf" in formats:
        outputs[HF_DIR] = HfOutput(staging / HF_DIR, provenance)
    return outputs


def _documents(rows: pa.RecordBatch) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [rows.column("data_id"), rows.column("category"), rows.column("rank"),
         pc.list_value_length(rows.column("input_ids")).cast(pa.int32())],
        schema=DOCUMENTS_SCHEMA,
    )  # fmt: skip


def _dtypes(formats: Sequence[str], vocab_size: int) -> dict[str, str]:
    names = {"mds": token_dtype(vocab_size).name, "megatron": megatron_dtype(vocab_size).name, "hf": "int32"}
    return {name: names[name] for name in formats}
