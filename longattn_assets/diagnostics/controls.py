"""Negative-control windows, made of whole units (units.py) of a category's own windows.

A scorer that measures long-range dependency should rank natural windows above windows
that read like the same kind of text but whose far tokens have nothing to do with the near
ones:

- ``concatenated``: pieces (runs of whole paragraphs or code blocks) of different
  documents, joined where a unit begins, the last one cut at the window length as a
  natural window's end is;
- ``repeated``: one piece repeated to the window length;
- ``shuffled``: a window's units in a random order.

Controls are made per *group*: the windows of the documents of one half of one part of
the category (split.py); a control holds text of that group's documents only, and is
compared only with natural windows of the other half. The category is the genre: its
documents are meant to be one kind of text (the selection normalizes and keeps per
category for the same reason), so a control joins texts of one genre; a category that
mixes prose and code is better split into two categories.

Each control is drawn in one of two independent *draws* (seeded apart), so the
diagnostics can show how much a conclusion depends on which controls were drawn. Its
random choices are seeded by its kind, part, half, draw, index, the seed and the ids of
the windows it may draw from: the same windows always give the same controls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..windows.ids import unit_interval
from .units import Vocabulary, pieces, segments, unit_starts

CONCATENATED, REPEATED, SHUFFLED = "concatenated", "repeated", "shuffled"
CONTROL_KINDS = (CONCATENATED, REPEATED, SHUFFLED)
DRAWS = 2
ID_PREFIX = "control:"  # real data_ids start with a category key, which never holds ':'

CONTROLS_SCHEMA = pa.schema(
    [
        ("data_id", pa.string()),
        ("kind", pa.string()),
        ("part", pa.string()),  # split.TUNING or split.EVALUATION
        ("half", pa.int8()),  # the half of the part its documents are in
        ("draw", pa.int8()),  # 0 or 1: the independent draw it belongs to
        ("doc_ids", pa.list_(pa.string())),  # its documents, in order of use: its bootstrap groups
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
    per_kind: int = 64  # controls of each kind per part, over both draws and halves
    pieces: int = 8  # concatenated: documents per window (fewer when a half has fewer)
    passage_fraction: float = 0.125  # repeated: passage length / window length

    def __post_init__(self) -> None:
        if self.per_kind < 2 * DRAWS or self.pieces < 2 or not 0 < self.passage_fraction <= 0.5:
            raise ValueError(
                f"controls need per_kind >= {2 * DRAWS} (two draws in each of two halves), "
                f"pieces >= 2 and 0 < passage_fraction <= 0.5, got {self}"
            )


@dataclass(frozen=True)
class ControlGroup:
    """The windows controls of ``kinds`` are cut from: those of one half of one part."""

    part: str
    half: int
    kinds: tuple[str, ...]
    sources: tuple[SourceWindow, ...]


def _rng(*key: str) -> np.random.Generator:
    digest = hashlib.blake2b(
        "\x1f".join(key).encode(), digest_size=16, person=b"longattn-ctrl"
    ).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def _ordered(sources: Sequence, key: str) -> list:
    """Items (windows, or (window, ...) tuples) in an order fixed by their ids and ``key``."""

    def data_id(item) -> str:
        return item.data_id if isinstance(item, SourceWindow) else item[0].data_id

    return sorted(sources, key=lambda s: (unit_interval(f"{key}:{data_id(s)}"), data_id(s)))


class _Group:
    """One group's windows with their unit starts, and the pieces each length allows."""

    def __init__(self, group: ControlGroup, window_size: int, vocabulary: Vocabulary, seed: int):
        self.group, self.window_size, self.seed = group, window_size, seed
        self.sources = sorted(
            (s for s in group.sources if len(s.token_ids) == window_size), key=lambda s: s.data_id
        )
        self.starts = {s.data_id: unit_starts(s.token_ids, vocabulary) for s in self.sources}
        self.pool = hashlib.sha256("\n".join(s.data_id for s in self.sources).encode()).hexdigest()[
            :16
        ]

    def rng(self, kind: str, draw: int, index: int) -> np.random.Generator:
        g = self.group
        return _rng(kind, g.part, str(g.half), str(draw), str(index), str(self.seed), self.pool)

    def with_pieces(self, target: int) -> list[tuple[SourceWindow, np.ndarray]]:
        found = [(s, pieces(self.starts[s.data_id], target)) for s in self.sources]
        return [(s, ranges) for s, ranges in found if len(ranges)]

    def order(self, items: Sequence, kind: str, draw: int) -> list:
        g = self.group
        return _ordered(items, f"{kind}:{g.part}:{g.half}:{draw}:{self.seed}")


def concatenated(
    by_doc: dict[str, list[tuple[SourceWindow, np.ndarray]]],
    rng: np.random.Generator,
    window_size: int,
) -> tuple[np.ndarray, list[SourceWindow]]:
    """Pieces of the documents in a random order (each piece of another document than the
    one before), joined until the window is full; the last is cut at the window length."""
    docs = sorted(by_doc)
    order = [docs[i] for i in rng.permutation(len(docs))]
    parts, used, total = [], [], 0
    while total < window_size:
        options = by_doc[order[len(parts) % len(order)]]
        source, ranges = options[int(rng.integers(len(options)))]
        begin, end = ranges[int(rng.integers(len(ranges)))]
        parts.append(source.token_ids[begin:end])
        used.append(source)
        total += int(end - begin)
    return np.concatenate(parts)[:window_size], used


def repeated(
    source: SourceWindow, ranges: np.ndarray, rng: np.random.Generator, window_size: int
) -> np.ndarray:
    begin, end = ranges[int(rng.integers(len(ranges)))]
    return np.resize(source.token_ids[begin:end], window_size)  # repeats the passage to fill


def shuffled(source: SourceWindow, vocabulary: Vocabulary, rng: np.random.Generator) -> np.ndarray:
    parts = segments(source.token_ids, vocabulary, max(1, len(source.token_ids) // 16))
    order = rng.permutation(len(parts))
    if len(parts) > 1 and np.array_equal(order, np.arange(len(parts))):
        order = np.roll(order, 1)  # a shuffle that changes nothing is no control
    return np.concatenate([parts[i] for i in order])


Row = tuple[str, str, int, int, int, list[SourceWindow], np.ndarray]


def _group_rows(g: _Group, spec: ControlSpec, vocabulary: Vocabulary) -> list[Row]:
    group, size = g.group, g.window_size
    by_doc: dict[str, list[tuple[SourceWindow, np.ndarray]]] = {}
    docs = {s.doc_id for s in g.sources}
    if len(docs) >= 2:
        for source, ranges in g.with_pieces(size // min(spec.pieces, len(docs))):
            by_doc.setdefault(source.doc_id, []).append((source, ranges))
    passages = g.with_pieces(max(1, int(size * spec.passage_fraction)))
    rows: list[Row] = []
    for kind in group.kinds:
        made = [0] * DRAWS
        for index in range(spec.per_kind):
            draw, half = index % DRAWS, (index // DRAWS) % 2
            if half != group.half:
                continue
            rng = g.rng(kind, draw, index)
            if kind == CONCATENATED:
                if len(by_doc) < 2:
                    break
                ids, used = concatenated(by_doc, rng, size)
            elif kind == REPEATED:
                if not passages:
                    break
                source, ranges = g.order(passages, kind, draw)[made[draw] % len(passages)]
                ids, used = repeated(source, ranges, rng, size), [source]
            else:
                if not g.sources:
                    break
                source = g.order(g.sources, kind, draw)[made[draw] % len(g.sources)]
                ids, used = shuffled(source, vocabulary, rng), [source]
            made[draw] += 1
            rows.append((kind, group.part, group.half, draw, index, used, ids))
    return rows


def build_controls(
    groups: Sequence[ControlGroup],
    *,
    window_size: int,
    spec: ControlSpec,
    vocabulary: Vocabulary,
    tokenizer: str,
    seed: int = 0,
) -> pa.Table:
    """For each part and kind, ``spec.per_kind`` controls (CONTROLS_SCHEMA) spread over the
    two draws and the two halves; a half makes no concatenated controls when its windows
    come from fewer than two documents, and none at all when it has no window of the
    window size."""
    rows: list[Row] = []
    for group in groups:
        rows += _group_rows(_Group(group, window_size, vocabulary, seed), spec, vocabulary)
    rows.sort(key=lambda r: (r[1], CONTROL_KINDS.index(r[0]), r[4]))
    return _table(rows, tokenizer)


def _table(rows: list[Row], tokenizer: str) -> pa.Table:
    if not rows:
        return CONTROLS_SCHEMA.empty_table()
    tokens = [r[6].astype(np.int32) for r in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(t) for t in tokens], out=offsets[1:])
    return pa.table(
        [
            pa.array(
                [f"{ID_PREFIX}{part}:{kind}:{index:05d}" for kind, part, _, _, index, _, _ in rows]
            ),
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[1] for r in rows], pa.string()),
            pa.array([r[2] for r in rows], pa.int8()),
            pa.array([r[3] for r in rows], pa.int8()),
            pa.array(
                [list(dict.fromkeys(s.doc_id for s in r[5])) for r in rows], pa.list_(pa.string())
            ),
            pa.array([[s.data_id for s in r[5]] for r in rows], pa.list_(pa.string())),
            pa.array([len(t) for t in tokens], pa.int32()),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(tokens))),
            pa.array([tokenizer] * len(rows), pa.string()),
        ],
        schema=CONTROLS_SCHEMA,
    )
