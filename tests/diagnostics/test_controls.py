"""Control windows: deterministic, the window length, made of the sources' own token ids."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from longattn_assets.diagnostics.controls import (
    CONCATENATED,
    ID_PREFIX,
    MIN_SEGMENTS,
    REPEATED,
    SHUFFLED,
    Boundaries,
    ControlSpec,
    SourceWindow,
    build_controls,
    segments,
    tokenizer_boundaries,
)

W = 64
NEWLINE, PERIOD = 1, 2
BOUNDARIES = Boundaries(frozenset({NEWLINE}), frozenset({PERIOD}))


def _window(doc: int, index: int) -> SourceWindow:
    """Distinct token values per window (so a piece's origin is unambiguous), a line every 8 tokens."""
    ids = np.arange(W, dtype=np.int32) + 1000 * (doc * 10 + index) + 100
    ids[7::8] = NEWLINE
    return SourceWindow(f"code-doc{doc:02d}-w{W}-{index * W:09d}", f"doc{doc:02d}", ids)


def _sources(docs: int = 5, per_doc: int = 3) -> list[SourceWindow]:
    return [_window(d, i) for d in range(docs) for i in range(per_doc)]


SPEC = ControlSpec(per_kind=6, pieces=4)


def _build(sources) -> pa.Table:
    return build_controls(sources, window_size=W, spec=SPEC, boundaries=BOUNDARIES, tokenizer="tok")


def _contains(haystack: np.ndarray, needle: np.ndarray) -> bool:
    windows = np.lib.stride_tricks.sliding_window_view(haystack, len(needle))
    return bool((windows == needle).all(axis=1).any())


def test_controls_are_the_same_whatever_the_order_of_the_windows():
    sources = _sources()
    first = _build(sources)
    again = _build(list(reversed(sources)))
    assert first.equals(again)
    assert first.column("kind").to_pylist() == [CONCATENATED] * 6 + [REPEATED] * 6 + [SHUFFLED] * 6


def test_every_control_has_the_window_length_and_an_id_no_window_can_have():
    table = _build(_sources())
    assert set(table.column("n_tokens").to_pylist()) == {W}
    assert all(len(ids) == W for ids in table.column("token_ids").to_pylist())
    natural = {s.data_id for s in _sources()}
    ids = table.column("data_id").to_pylist()
    assert len(set(ids)) == len(ids) and all(
        i.startswith(ID_PREFIX) and i not in natural for i in ids
    )


def test_concatenated_controls_are_pieces_of_different_documents():
    sources = {s.data_id: s for s in _sources()}
    table = _build(list(sources.values()))
    for row in table.filter(pa.compute.equal(table.column("kind"), CONCATENATED)).to_pylist():
        used = [sources[i] for i in row["sources"]]
        assert len({s.doc_id for s in used}) == len(used) == 4
        ids = np.asarray(row["token_ids"])
        for piece, source in zip(np.split(ids, 4), used):
            assert _contains(source.token_ids, piece)
        assert row["doc_id"] == used[0].doc_id


def test_repeated_controls_repeat_one_passage_of_their_window():
    sources = {s.data_id: s for s in _sources()}
    table = _build(list(sources.values()))
    passage = W // 8
    for row in table.filter(pa.compute.equal(table.column("kind"), REPEATED)).to_pylist():
        ids = np.asarray(row["token_ids"])
        assert np.array_equal(ids[passage:], ids[:-passage])
        assert _contains(sources[row["sources"][0]].token_ids, ids[:passage])


def test_shuffled_controls_are_their_window_lines_in_another_order():
    sources = {s.data_id: s for s in _sources()}
    table = _build(list(sources.values()))
    for row in table.filter(pa.compute.equal(table.column("kind"), SHUFFLED)).to_pylist():
        source = sources[row["sources"][0]].token_ids
        ids = np.asarray(row["token_ids"])
        lines = sorted(tuple(line) for line in segments(source, BOUNDARIES, 16))
        assert sorted(tuple(line) for line in segments(ids, BOUNDARIES, 16)) == lines
        assert not np.array_equal(ids, source)


def test_segments_fall_back_to_sentences_then_to_fixed_spans():
    prose = np.full(W, 500, dtype=np.int32)
    prose[[9, 19, 29, 39]] = PERIOD  # no line end, four sentence ends
    assert [len(s) for s in segments(prose, BOUNDARIES, 16)] == [10, 10, 10, 10, 24]
    prose[[19, 29, 39]] = 500  # two sentences are too few to shuffle: fixed spans
    assert [len(s) for s in segments(prose, BOUNDARIES, 16)] == [16, 16, 16, 16]
    assert len(segments(np.arange(W, dtype=np.int32) + 500, BOUNDARIES, 16)) == MIN_SEGMENTS


def test_one_document_gives_no_concatenated_controls():
    table = _build(_sources(docs=1, per_doc=4))
    assert CONCATENATED not in table.column("kind").to_pylist()
    assert table.num_rows == 12


def test_windows_of_another_length_are_never_used():
    short = SourceWindow("x", "docx", np.arange(W - 1, dtype=np.int32))
    assert _build([short]).num_rows == 0


def test_spec_refuses_controls_that_cannot_be_built():
    with pytest.raises(ValueError):
        ControlSpec(pieces=1)
    with pytest.raises(ValueError):
        ControlSpec(passage_fraction=0.0)


def test_the_model_vocabulary_gives_line_and_sentence_ends(tokenizer):
    found = tokenizer_boundaries(tokenizer.tokenizer)
    newline = tokenizer.encode_batch(["\n"])[0]
    period = tokenizer.encode_batch(["."])[0]
    assert len(newline) == 1 and newline[0] in found.line_ends
    assert len(period) == 1 and period[0] in found.sentence_ends
    word = tokenizer.encode_batch(["hello"])[0][0]
    assert word not in found.line_ends and word not in found.sentence_ends
