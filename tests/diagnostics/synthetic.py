"""Synthetic natural and control scores whose separation is known, with their split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from longattn_assets.diagnostics.files import KINDS_BY_PART
from longattn_assets.diagnostics.scores import WindowScores
from longattn_assets.diagnostics.settings import DiagnosticsSettings
from longattn_assets.diagnostics.split import EVALUATION, TUNING, split_documents
from longattn_assets.diagnostics.summary import diagnose
from longattn_assets.selection.normalize import ScoreStats
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import SelectionSummary

HEADS = 4
PER_DOC = 12
CONTROLS = 48  # per part and kind
SETTINGS = DiagnosticsSettings(replicates=300)


def columns(ds_heads: np.ndarray, du_heads: np.ndarray) -> dict:
    return {
        "ds": ds_heads.astype(np.float32).astype(float).mean(axis=1),
        "du": du_heads.astype(np.float32).astype(float).mean(axis=1),
        "ds_heads": pa.array(list(ds_heads.astype(np.float32)), pa.list_(pa.float32())),
        "du_heads": pa.array(list(du_heads.astype(np.float32)), pa.list_(pa.float32())),
    }


def case(
    seed: int,
    *,
    natural_ds: float = 0.0,
    head_shift: bool = False,
    shift_in: str | None = None,
    docs: int = 16,
):
    """Natural windows of ``docs`` documents, ds per head around ``natural_ds``; with
    ``head_shift`` head 2 is 3 higher and head 0 3 lower (the head mean does not move), in
    the documents of part ``shift_in`` only (every document when None). Controls of each
    part and kind around 0, each of two documents of its half; du is noise."""
    rng = np.random.default_rng(seed)
    doc_ids = [f"doc{d:02d}" for d in range(docs)]
    split = split_documents(doc_ids, seed=0)
    ds = rng.normal(natural_ds, 1.0, (docs * PER_DOC, HEADS))
    window_docs = [d for d in doc_ids for _ in range(PER_DOC)]
    if head_shift:
        shifted = np.array([shift_in is None or split.part[d] == shift_in for d in window_docs])
        ds[shifted, 2] += 3.0
        ds[shifted, 0] -= 3.0
    natural = pa.table(
        {
            "data_id": [f"{d}-{i:03d}" for d in doc_ids for i in range(PER_DOC)],
            "doc_id": window_docs,
        }
        | columns(ds, rng.normal(0.0, 1.0, ds.shape))
    )
    rows = []
    for part in (TUNING, EVALUATION) if split.calibrates else (EVALUATION,):
        for kind in KINDS_BY_PART[part]:
            for i in range(CONTROLS):
                half, draw = (i // 2) % 2, i % 2
                pool = split.documents(part, half)
                rows.append(
                    (kind, part, half, draw, [pool[j] for j in rng.permutation(len(pool))[:2]])
                )
    controls = pa.table(
        {
            "kind": [r[0] for r in rows],
            "part": [r[1] for r in rows],
            "half": pa.array([r[2] for r in rows], pa.int8()),
            "draw": pa.array([r[3] for r in rows], pa.int8()),
            "doc_ids": [r[4] for r in rows],
        }  # fmt: skip
        | columns(
            rng.normal(0.0, 1.0, (len(rows), HEADS)), rng.normal(0.0, 1.0, (len(rows), HEADS))
        )
    )
    return natural, controls, split


def summarizer(natural: pa.Table, cut: float | None = 0.0):
    """The selection summary of the natural windows under given settings (half kept)."""
    scores = WindowScores.of(natural)

    def summarize(settings: SelectionSettings) -> SelectionSummary:
        ds, du = scores.stats(settings.heads)
        stats = ScoreStats(natural.num_rows, natural.num_rows * 64, ds, du)
        return SelectionSummary(settings, stats, natural.num_rows // 2, 0, 0, cut)

    return summarize


def diagnosed(
    natural, controls, split, settings=SETTINGS, cut: float | None = 0.0, seed_key="t"
) -> dict:
    return diagnose(natural, controls, split, settings, summarizer(natural, cut), seed_key=seed_key)
