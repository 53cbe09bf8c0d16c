"""Control windows: whole units joined at boundaries, from one half's documents, deterministic."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from longattn_assets.diagnostics.controls import (
    CONCATENATED,
    CONTROL_KINDS,
    ID_PREFIX,
    REPEATED,
    SHUFFLED,
    ControlGroup,
    ControlSpec,
    SourceWindow,
    build_controls,
)
from longattn_assets.diagnostics.units import (
    MIN_SEGMENTS,
    Vocabulary,
    pieces,
    segments,
    tokenizer_vocabulary,
    unit_starts,
)

W = 64
BLANK, NEWLINE, PERIOD = 0, 1, 2
# Token 0 ends a paragraph ("\n\n"), 1 a line, 2 a sentence; every other id is a word.
VOCABULARY = Vocabulary(["\n\n", "\n", ".", *(f"w{i}" for i in range(3, 100_000))])
UNIT = 8  # the windows below have a blank line every 8 tokens


def _window(doc: int, index: int) -> SourceWindow:
    """Distinct token values per window (a piece's origin is unambiguous), a paragraph every 8 tokens."""
    ids = np.arange(W, dtype=np.int32) + 1000 * (doc * 10 + index) + 100
    ids[UNIT - 1 :: UNIT] = BLANK
    return SourceWindow(f"code-doc{doc:02d}-w{W}-{index * W:09d}", f"doc{doc:02d}", ids)


def _group(
    part: str, half: int, docs: range, per_doc: int = 3, kinds=CONTROL_KINDS
) -> ControlGroup:
    return ControlGroup(
        part, half, tuple(kinds), tuple(_window(d, i) for d in docs for i in range(per_doc))
    )


GROUPS = (_group("evaluation", 0, range(0, 4)), _group("evaluation", 1, range(4, 8)))
SPEC = ControlSpec(per_kind=8, pieces=4)


def _build(groups=GROUPS, spec=SPEC, seed=0) -> pa.Table:
    return build_controls(
        groups, window_size=W, spec=spec, vocabulary=VOCABULARY, tokenizer="tok", seed=seed
    )


def _kind(table: pa.Table, kind: str) -> list[dict]:
    return table.filter(pa.compute.equal(table.column("kind"), kind)).to_pylist()


def _sources() -> dict[str, SourceWindow]:
    return {s.data_id: s for g in GROUPS for s in g.sources}


def test_a_unit_starts_at_the_token_after_a_blank_line_whatever_its_indentation(tokenizer):
    text = "First line\nsecond line\n\nA paragraph.\n\n\n    indented block\nmore\n"
    ids = np.asarray(tokenizer.encode_batch([text])[0])
    vocabulary = tokenizer_vocabulary(tokenizer.tokenizer)
    starts = unit_starts(ids, vocabulary)
    assert [tokenizer.decode(ids[s:].tolist()).strip().split("\n")[0] for s in starts] == [
        "A paragraph.",
        "indented block",
    ]
    # everything before a unit start ends with the blank line (and the indentation, here merged into it)
    assert all(tokenizer.decode(ids[:s].tolist()).rstrip(" ").endswith("\n\n") for s in starts)


def test_pieces_are_runs_of_whole_units_of_at_least_the_target_and_at_most_twice_it():
    starts = unit_starts(_window(0, 0).token_ids, VOCABULARY)
    assert starts.tolist() == list(range(UNIT, W, UNIT))
    found = pieces(starts, 12)
    assert found.tolist() == [[b, b + 16] for b in range(UNIT, W - 16, UNIT)]
    assert pieces(starts, 40).tolist() == [[8, 48], [16, 56]]  # 40 tokens: five units
    assert len(pieces(starts[:1], 4)) == 0


def test_controls_are_the_same_whatever_the_order_of_the_windows():
    first = _build()
    shuffled_groups = tuple(
        ControlGroup(g.part, g.half, g.kinds, g.sources[::-1]) for g in GROUPS[::-1]
    )
    assert first.equals(_build(shuffled_groups))
    assert first.column("kind").to_pylist() == [
        k for k in CONTROL_KINDS for _ in range(SPEC.per_kind)
    ]
    assert not first.equals(_build(seed=1))


def test_every_control_has_the_window_length_an_id_no_window_can_have_and_one_of_two_draws():
    table = _build()
    assert set(table.column("n_tokens").to_pylist()) == {W}
    assert all(len(ids) == W for ids in table.column("token_ids").to_pylist())
    ids = table.column("data_id").to_pylist()
    assert len(set(ids)) == len(ids) and all(
        i.startswith(ID_PREFIX) and i not in _sources() for i in ids
    )
    for kind in CONTROL_KINDS:
        rows = _kind(table, kind)
        # per kind: two draws in each of two halves, as many of each
        assert sorted((r["draw"], r["half"]) for r in rows) == sorted(
            [(d, h) for d in (0, 1) for h in (0, 1)] * 2
        )


def _is_unit_run(source: np.ndarray, piece: np.ndarray, last: bool) -> bool:
    """``piece`` occurs in ``source`` beginning at a unit start, and ends at one unless it is the cut last piece."""
    starts = set(unit_starts(source, VOCABULARY).tolist())
    for begin in starts:
        if np.array_equal(source[begin : begin + len(piece)], piece):
            return last or begin + len(piece) in starts
    return False


def test_concatenated_controls_join_whole_units_of_different_documents_of_their_half():
    sources = _sources()
    for row in _kind(_build(), CONCATENATED):
        used = [sources[i] for i in row["sources"]]
        halves = {s.data_id for s in GROUPS[row["half"]].sources}
        assert set(row["sources"]) <= halves  # only the documents of its own half
        assert all(
            a.doc_id != b.doc_id for a, b in zip(used, used[1:])
        )  # each piece another document
        assert row["doc_ids"] == list(dict.fromkeys(s.doc_id for s in used))
        ids, at = np.asarray(row["token_ids"]), 0
        for k, source in enumerate(used):
            # pieces of 4 docs: a quarter of the window (16 tokens, two units) each
            length = min(2 * UNIT, W - at)
            assert _is_unit_run(source.token_ids, ids[at : at + length], last=k == len(used) - 1)
            at += length
        assert at == W


def test_repeated_controls_repeat_whole_units_of_one_window():
    sources = _sources()
    passage = int(W * SPEC.passage_fraction)  # 8 tokens: one unit
    for row in _kind(_build(), REPEATED):
        ids = np.asarray(row["token_ids"])
        assert np.array_equal(ids[passage:], ids[:-passage])
        assert _is_unit_run(sources[row["sources"][0]].token_ids, ids[:passage], last=False)


def test_shuffled_controls_are_their_window_units_in_another_order():
    sources = _sources()
    for row in _kind(_build(), SHUFFLED):
        source = sources[row["sources"][0]].token_ids
        ids = np.asarray(row["token_ids"])
        parts = sorted(tuple(p) for p in segments(source, VOCABULARY, 16))
        assert len(parts) == W // UNIT
        assert sorted(map(tuple, _split_like(ids, parts))) == parts
        assert not np.array_equal(ids, source)


def _split_like(ids: np.ndarray, parts: list[tuple]) -> list[np.ndarray]:
    """Cut ``ids`` into the given parts, whichever order they came in (each part starts with a distinct token)."""
    by_first = {p[0]: len(p) for p in parts}
    found, at = [], 0
    while at < len(ids):
        found.append(ids[at : at + by_first[ids[at]]])
        at += by_first[ids[at]]
    return found


def test_segments_fall_back_to_lines_then_sentences_then_fixed_spans():
    prose = np.full(W, 500, dtype=np.int32)
    prose[[9, 19, 29, 39]] = NEWLINE  # no blank line, four line ends
    assert [len(s) for s in segments(prose, VOCABULARY, 16)] == [10, 10, 10, 10, 24]
    prose[[19, 29, 39]] = PERIOD  # one line end, three sentence ends
    assert [len(s) for s in segments(prose, VOCABULARY, 16)] == [10, 10, 10, 10, 24]
    prose[[19, 29, 39]] = 500  # too few of either: fixed spans
    assert [len(s) for s in segments(prose, VOCABULARY, 16)] == [16, 16, 16, 16]
    assert len(segments(np.arange(W, dtype=np.int32) + 500, VOCABULARY, 16)) == MIN_SEGMENTS


def test_a_half_of_one_document_gives_no_concatenated_controls_and_the_tuning_part_only_concatenated():
    groups = (
        _group("tuning", 0, range(0, 1), kinds=(CONCATENATED,)),
        _group("tuning", 1, range(1, 3), kinds=(CONCATENATED,)),
        _group("evaluation", 0, range(3, 4)),
        _group("evaluation", 1, range(4, 6)),
    )
    table = _build(groups)
    tuning = table.filter(pa.compute.equal(table.column("part"), "tuning"))
    assert set(tuning.column("kind").to_pylist()) == {CONCATENATED}
    assert set(tuning.column("half").to_pylist()) == {1}
    evaluation = table.filter(pa.compute.equal(table.column("part"), "evaluation"))
    assert {(r["kind"], r["half"]) for r in evaluation.to_pylist()} == {
        (CONCATENATED, 1), (REPEATED, 0), (REPEATED, 1), (SHUFFLED, 0), (SHUFFLED, 1),
    }  # fmt: skip


def test_windows_of_another_length_are_never_used():
    short = SourceWindow("x", "docx", np.arange(W - 1, dtype=np.int32))
    assert _build((ControlGroup("evaluation", 0, CONTROL_KINDS, (short,)),)).num_rows == 0


def test_spec_refuses_controls_that_cannot_be_built():
    for bad in ({"pieces": 1}, {"passage_fraction": 0.0}, {"per_kind": 3}):
        with pytest.raises(ValueError):
            ControlSpec(**bad)


def test_the_model_vocabulary_gives_line_and_sentence_ends(tokenizer):
    found = tokenizer_vocabulary(tokenizer.tokenizer)
    newline = tokenizer.encode_batch(["\n"])[0]
    period = tokenizer.encode_batch(["."])[0]
    assert len(newline) == 1 and newline[0] in found.line_ends
    assert len(period) == 1 and period[0] in found.sentence_ends
    word = tokenizer.encode_batch(["hello"])[0][0]
    assert word not in found.line_ends and word not in found.sentence_ends
