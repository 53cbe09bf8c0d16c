"""Cut a shard's documents into token windows (Algorithm 1) with stable ids.

Documents are tokenized once, in batches, with the scoring model's tokenizer (no special
tokens added, and special-token strings in the text read as ordinary text). Each window
keeps its token ids, which the scorer reads as they are, and for export the exact span of
source characters its tokens cover (see :func:`window_text`), never a decoding of its
ids: a byte-level token boundary may fall inside a character, and decoding half of one
would invent U+FFFD.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from tokenizers import Encoding

from ..model.tokenizer import ModelTokenizer
from .algorithm import window_starts
from .ids import tokens_hash, unit_interval, window_id

WINDOWED_CHUNKS_SCHEMA = pa.schema(
    [
        ("data_id", pa.string()),
        ("doc_id", pa.string()),
        ("category", pa.string()),
        ("shard", pa.string()),
        ("window_index", pa.int32()),
        ("token_start", pa.int64()),
        ("n_tokens", pa.int32()),
        ("token_ids", pa.list_(pa.int32())),
        ("tokens_hash", pa.string()),
        ("content", pa.string()),
        ("tokenizer", pa.string()),
    ]
)


@dataclass
class WindowStats:
    documents: int = 0
    too_short: int = 0
    windows: int = 0
    sampled_out: int = 0
    document_tokens: int = 0
    longest_document: int = 0  # tokens of the longest document (what window size would fit)
    window_tokens: int = 0
    seconds: float = 0.0
    windows_per_document: dict[int, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, float | int]:
        return {
            "documents": self.documents,
            "documents_too_short": self.too_short,
            "windows": self.windows,
            "windows_sampled_out": self.sampled_out,
            "document_tokens": self.document_tokens,
            "longest_document_tokens": self.longest_document,
            "window_tokens": self.window_tokens,
            "seconds": round(self.seconds, 3),
            "tokens_per_s": round(self.document_tokens / self.seconds, 1) if self.seconds else 0.0,
        }


@dataclass(frozen=True)
class WindowSpec:
    category: str
    shard: str
    window_size: int
    sample_fraction: float = 1.0


def window_text(text: str, encoding: Encoding, start: int, end: int) -> str:
    """The characters of ``text`` that tokens ``[start, end)`` of its encoding cover.

    Each character belongs to exactly one token: the first whose offsets touch it, i.e. the
    token holding its first byte when a byte-level token boundary splits it, and the token
    after it for characters no token's offsets cover (whitespace some tokenizers' offsets
    leave out). Text before the first token and after the last belongs to those tokens.
    So a window that starts inside a character starts at the next one, a window that ends
    inside one keeps it whole, and adjacent windows' texts join up to the document.
    """
    n = len(encoding.ids)
    begin = 0 if start == 0 else encoding.token_to_chars(start - 1)[1]
    finish = len(text) if end >= n else encoding.token_to_chars(end - 1)[1]
    return text[begin : max(begin, finish)]


def _window_rows(
    spec: WindowSpec, doc_hash: str, doc_id: str, text: str, encoding: Encoding, stats: WindowStats
) -> Iterator[tuple[str, str, int, int, np.ndarray, str]]:
    ids = np.asarray(encoding.ids, dtype=np.int32)
    starts = window_starts(len(ids), spec.window_size)
    stats.documents += 1
    stats.document_tokens += len(ids)
    stats.longest_document = max(stats.longest_document, len(ids))
    if not starts:
        stats.too_short += 1
    for index, start in enumerate(starts):
        data_id = window_id(spec.category, doc_hash, spec.window_size, start)
        if spec.sample_fraction < 1.0 and unit_interval(data_id) >= spec.sample_fraction:
            stats.sampled_out += 1
            continue
        end = start + spec.window_size
        yield data_id, doc_id, index, start, ids[start:end], window_text(text, encoding, start, end)


def window_batch(
    docs: pa.Table, tokenizer: ModelTokenizer, spec: WindowSpec, stats: WindowStats
) -> pa.Table:
    """Windows of a batch of raw_corpus rows (columns doc_hash, doc_id, text)."""
    texts = docs.column("text").to_pylist()
    encodings = tokenizer.encode_with_offsets(texts)
    rows = []
    for doc_hash, doc_id, text, encoding in zip(
        docs.column("doc_hash").to_pylist(), docs.column("doc_id").to_pylist(), texts, encodings
    ):
        rows.extend(_window_rows(spec, doc_hash, doc_id, text, encoding, stats))
    if not rows:
        return WINDOWED_CHUNKS_SCHEMA.empty_table()
    tokens = [r[4] for r in rows]
    contents = [r[5] for r in rows]
    offsets = np.zeros(len(tokens) + 1, dtype=np.int32)
    np.cumsum([len(t) for t in tokens], out=offsets[1:])
    token_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(tokens)))
    stats.windows += len(rows)
    stats.window_tokens += int(offsets[-1])
    n = len(rows)
    return pa.table(
        [
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([spec.category] * n, pa.string()),
            pa.array([spec.shard] * n, pa.string()),
            pa.array([r[2] for r in rows], pa.int32()),
            pa.array([r[3] for r in rows], pa.int64()),
            pa.array([len(t) for t in tokens], pa.int32()),
            token_ids.cast(pa.list_(pa.int32())),
            pa.array([tokens_hash(t) for t in tokens], pa.string()),
            pa.array(contents, pa.string()),
            pa.array([tokenizer.fingerprint] * n, pa.string()),
        ],
        schema=WINDOWED_CHUNKS_SCHEMA,
    )


def window_documents(
    batches: Iterator[pa.Table] | list[pa.Table],
    tokenizer: ModelTokenizer,
    spec: WindowSpec,
    progress: Callable[[WindowStats], None] | None = None,
) -> Iterator[tuple[pa.Table, WindowStats]]:
    """Yield the windows of each batch of documents with the running statistics."""
    stats = WindowStats()
    started = time.perf_counter()
    for docs in batches:
        table = window_batch(docs, tokenizer, spec, stats)
        stats.seconds = time.perf_counter() - started
        if progress:
            progress(stats)
        yield table, stats
