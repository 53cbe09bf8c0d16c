"""The document split: seeded, balanced, disjoint; no tuning part when documents are too few."""

from __future__ import annotations

from longattn_assets.diagnostics.split import (
    EVALUATION,
    MIN_DOCUMENTS_TO_CALIBRATE,
    TUNING,
    split_documents,
)

DOCS = [f"code/module-{i:02d}" for i in range(19)]


def test_parts_and_halves_are_disjoint_balanced_and_cover_every_document():
    split = split_documents(DOCS, seed=0)
    assert split.calibrates
    groups = [split.documents(part, half) for part in (TUNING, EVALUATION) for half in (0, 1)]
    assert sorted(d for g in groups for d in g) == sorted(DOCS)
    assert sorted(len(g) for g in groups) == [4, 5, 5, 5]
    assert not set(split.documents(TUNING)) & set(split.documents(EVALUATION))


def test_the_split_depends_on_the_seed_and_the_ids_only():
    first = split_documents(DOCS, seed=0)
    assert split_documents(reversed(DOCS), seed=0) == first
    assert split_documents(DOCS + DOCS[:3], seed=0) == first
    other = split_documents(DOCS, seed=1)
    assert other.documents(TUNING) != first.documents(TUNING)
    record = first.as_record()
    assert record["seed"] == 0 and record["refused"] is None
    assert record[TUNING] == [first.documents(TUNING, 0), first.documents(TUNING, 1)]


def test_too_few_documents_give_no_tuning_part_and_say_why():
    split = split_documents(DOCS[:5], seed=0)
    assert not split.calibrates
    assert split.documents(TUNING) == []
    assert sorted(split.documents(EVALUATION)) == sorted(DOCS[:5])
    assert sorted(len(split.documents(EVALUATION, h)) for h in (0, 1)) == [2, 3]
    assert (
        f"at least {MIN_DOCUMENTS_TO_CALIBRATE}" in split.refused and "5 documents" in split.refused
    )
    assert split_documents(DOCS[:MIN_DOCUMENTS_TO_CALIBRATE], seed=0).calibrates
