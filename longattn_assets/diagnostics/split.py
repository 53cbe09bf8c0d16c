"""Which documents tune the settings, which judge them, and which feed which controls.

A category's documents are ordered by a seeded hash of their ids and dealt out in turn:
with at least MIN_DOCUMENTS_TO_CALIBRATE documents, to the evaluation and the tuning part
alternately, and within each part to two halves. Heads and alpha are chosen on the tuning
part only; every reported AUC comes from the evaluation part only, so no document helps
both to choose the settings and to judge them.

Within a part, the natural windows of one half are compared only with controls cut from
the documents of the other half: a control never holds text of a document whose windows
it is compared with, yet every natural window of the part is used.

With fewer documents there is no tuning part: every document is in the evaluation part,
the paper's settings are judged on all of them, and no calibrated settings are offered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..windows.ids import unit_interval

TUNING, EVALUATION = "tuning", "evaluation"
PARTS = (TUNING, EVALUATION)
# Two parts of two halves of two documents each: the fewest that give each half pieces of
# two different documents for its concatenated controls.
MIN_DOCUMENTS_TO_CALIBRATE = 8


@dataclass(frozen=True)
class DocumentSplit:
    seed: int
    part: Mapping[str, str]  # doc_id -> TUNING or EVALUATION
    half: Mapping[str, int]  # doc_id -> 0 or 1
    refused: str | None = None  # why there is no tuning part

    @property
    def calibrates(self) -> bool:
        return self.refused is None

    def documents(self, part: str, half: int | None = None) -> list[str]:
        return sorted(
            d for d, p in self.part.items() if p == part and (half is None or self.half[d] == half)
        )

    def as_record(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "refused": self.refused,
            **{part: [self.documents(part, h) for h in (0, 1)] for part in PARTS},
        }


def split_documents(doc_ids: Iterable[str], seed: int) -> DocumentSplit:
    ordered = sorted(set(doc_ids), key=lambda d: (unit_interval(f"split:{seed}:{d}"), d))
    if len(ordered) >= MIN_DOCUMENTS_TO_CALIBRATE:
        part = {d: (EVALUATION, TUNING)[i % 2] for i, d in enumerate(ordered)}
        half = {d: (i // 2) % 2 for i, d in enumerate(ordered)}
        return DocumentSplit(seed, part, half)
    refused = (
        f"{len(ordered)} documents with windows are too few to tune settings on some and judge "
        f"them on others (calibrating needs at least {MIN_DOCUMENTS_TO_CALIBRATE})"
    )
    return DocumentSplit(
        seed,
        {d: EVALUATION for d in ordered},
        {d: i % 2 for i, d in enumerate(ordered)},
        refused,
    )
