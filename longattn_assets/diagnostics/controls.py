"""Negative-control windows built from a category's own windows, on token ids.

A scorer that measures long-range dependency should rank natural windows above windows
that look like text but whose far tokens have nothing to do with the near ones:

- ``concatenated``: pieces of windows of different documents, end to end;
- ``repeated``: one passage of a window, repeated to the window length;
- ``shuffled``: a natural window with its lines (or sentences) in a random order.

Every control has exactly the window length and is made of token ids the windows already
hold, so the scorer reads ids and nothing is re-tokenized. Each control is a function of
its kind, its index and the ids of the windows it may draw from: its random choices are
seeded by a hash of those, so the same windows always give the same controls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tokenizers import Tokenizer

from ..windows.ids import unit_interval

CONCATENATED, REPEATED, SHUFFLED = "concatenated", "repeated", "shuffled"
CONTROL_KINDS = (CONCATENATED, REPEATED, SHUFFLED)
ID_PREFIX = "control:"  # real data_ids start with a category key, which never holds ':'
MIN_SEGMENTS = 4  # fewer lines than this: shuffle sentences, then fixed spans

CONTROLS_SCHEMA = pa.schema(
    [
        ("data_id", pa.string()),
        ("kind", pa.string()),
        ("doc_id", pa.string()),  # the document of the first source: the bootstrap's group
        ("sources", pa.list_(pa.string())),  # data_ids of the windows it was cut from
        ("n_tokens", pa.int32()),
        ("token_ids", pa.list_(pa.int32())),
        ("tokenizer", pa.string()),
    ]
)


@dataclass(frozen=True)
class SourceWindow:
    data_id: str
    doc_id: str
    token_ids: np.ndarray  # int32


@dataclass(frozen=True)
class ControlSpec:
    per_kind: int = 100
    pieces: int = 8  # concatenated: documents per window
    passage_fraction: float = 0.125  # repeated: passage length / window length

    def __post_init__(self) -> None:
        if self.per_kind < 1 or self.pieces < 2 or not 0 < self.passage_fraction <= 0.5:
            raise ValueError(
                f"controls need per_kind >= 1, pieces >= 2 and 0 < passage_fraction <= 0.5, got {self}"
            )


@dataclass(frozen=True)
class Boundaries:
    """Token ids whose text ends a line, and those that end a sentence."""

    line_ends: frozenset[int]
    sentence_ends: frozenset[int]


def boundaries_of(vocabulary: Sequence[str]) -> Boundaries:
    """From each token id's decoded text: a newline ends a line; ``.``, ``!``, ``?`` a sentence."""
    lines = {i for i, text in enumerate(vocabulary) if "\n" in text}
    sentences = {i for i, text in enumerate(vocabulary) if text.rstrip().endswith((".", "!", "?"))}
    return Boundaries(frozenset(lines), frozenset(sentences))


def _rng(*key: str) -> np.random.Generator:
    digest = hashlib.blake2b(
        "\x1f".join(key).encode(), digest_size=16, person=b"longattn-ctrl"
    ).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def _ordered(sources: Sequence[SourceWindow], kind: str) -> list[SourceWindow]:
    """The windows in an order fixed by their ids alone (independent of the input order)."""
    return sorted(sources, key=lambda s: (unit_interval(f"{kind}:{s.data_id}"), s.data_id))


def segments(ids: np.ndarray, boundaries: Boundaries, span: int) -> list[np.ndarray]:
    """The window cut after every line end; after sentence ends too when lines are few;
    into fixed spans of ``span`` tokens when even that gives fewer than MIN_SEGMENTS."""
    for ends in (boundaries.line_ends, boundaries.line_ends | boundaries.sentence_ends):
        cuts = np.flatnonzero(np.isin(ids[:-1], np.fromiter(ends, np.int64, len(ends)))) + 1
        if len(cuts) + 1 >= MIN_SEGMENTS:
            return np.split(ids, cuts)
    return np.split(ids, np.arange(span, len(ids), span))


def shuffled(source: SourceWindow, boundaries: Boundaries, span: int) -> np.ndarray:
    parts = segments(source.token_ids, boundaries, span)
    order = _rng(SHUFFLED, source.data_id).permutation(len(parts))
    if len(parts) > 1 and np.array_equal(order, np.arange(len(parts))):
        order = np.roll(order, 1)  # a shuffle that changes nothing is no control
    return np.concatenate([parts[i] for i in order])


def repeated(source: SourceWindow, window_size: int, passage: int) -> np.ndarray:
    start = int(_rng(REPEATED, source.data_id).integers(0, len(source.token_ids) - passage + 1))
    piece = source.token_ids[start : start + passage]
    return np.resize(piece, window_size)  # np.resize repeats the passage to fill the window


def concatenated(
    by_doc: dict[str, list[SourceWindow]], index: int, window_size: int, pieces: int
) -> tuple[np.ndarray, list[SourceWindow]]:
    """Pieces of ``pieces`` different documents (all of them when there are fewer)."""
    rng = _rng(CONCATENATED, str(index), *sorted(by_doc))
    docs = sorted(by_doc)
    chosen = [docs[i] for i in rng.choice(len(docs), size=min(pieces, len(docs)), replace=False)]
    lengths = np.full(len(chosen), window_size // len(chosen))
    lengths[: window_size % len(chosen)] += 1
    parts, used = [], []
    for doc, length in zip(chosen, lengths):
        windows = by_doc[doc]
        source = windows[int(rng.integers(0, len(windows)))]
        start = int(rng.integers(0, len(source.token_ids) - length + 1))
        parts.append(source.token_ids[start : start + length])
        used.append(source)
    return np.concatenate(parts), used


def build_controls(
    sources: Sequence[SourceWindow],
    *,
    window_size: int,
    spec: ControlSpec,
    boundaries: Boundaries,
    tokenizer: str,
) -> pa.Table:
    """``spec.per_kind`` controls of each kind (CONTROLS_SCHEMA); none are concatenated when
    the windows come from fewer than two documents."""
    sources = [s for s in sources if len(s.token_ids) == window_size]
    rows: list[tuple[str, str, list[SourceWindow], np.ndarray]] = []
    if sources:
        passage = max(1, int(window_size * spec.passage_fraction))
        span = max(1, window_size // 16)
        for kind in (REPEATED, SHUFFLED):
            order = _ordered(sources, kind)
            for i in range(spec.per_kind):
                source = order[i % len(order)]
                ids = (
                    repeated(source, window_size, passage)
                    if kind == REPEATED
                    else shuffled(source, boundaries, span)
                )
                rows.append((kind, f"{i:05d}", [source], ids))
        by_doc: dict[str, list[SourceWindow]] = {}
        for source in sorted(sources, key=lambda s: s.data_id):
            by_doc.setdefault(source.doc_id, []).append(source)
        if len(by_doc) >= 2:
            for i in range(spec.per_kind):
                ids, used = concatenated(by_doc, i, window_size, spec.pieces)
                rows.append((CONCATENATED, f"{i:05d}", used, ids))
    rows.sort(key=lambda r: (CONTROL_KINDS.index(r[0]), r[1]))
    return _table(rows, tokenizer)


def _table(rows: list[tuple[str, str, list[SourceWindow], np.ndarray]], tokenizer: str) -> pa.Table:
    if not rows:
        return CONTROLS_SCHEMA.empty_table()
    tokens = [r[3].astype(np.int32) for r in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(t) for t in tokens], out=offsets[1:])
    return pa.table(
        [
            pa.array([f"{ID_PREFIX}{kind}:{index}" for kind, index, _, _ in rows], pa.string()),
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[2][0].doc_id for r in rows], pa.string()),
            pa.array([[s.data_id for s in r[2]] for r in rows], pa.list_(pa.string())),
            pa.array([len(t) for t in tokens], pa.int32()),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(tokens))),
            pa.array([tokenizer] * len(rows), pa.string()),
        ],
        schema=CONTROLS_SCHEMA,
    )


def tokenizer_boundaries(tokenizer: Tokenizer) -> Boundaries:
    """Line and sentence ends of a tokenizer's whole vocabulary (each id decoded alone)."""
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    return boundaries_of(
        tokenizer.decode_batch([[i] for i in range(size)], skip_special_tokens=False)
    )
