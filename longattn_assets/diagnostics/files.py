"""What the diagnostics read from a category's windows and scores, and what they write.

Everything is chosen by hashes of data_ids, so the same windows and scores always give
the same sample and controls, whatever the shard count or read order. Only the sampled
windows' token ids are read.

Files, under ``<root>/scorer_diagnostics/category=C/``: ``controls.parquet`` (the control
windows' token ids and sources), ``control_scores.parquet`` (their scores, as
scored_chunks) and ``diagnostics.json`` (the record of summary.py plus what made it).
None of them matches the ``shard=*.parquet`` globs that selection reads, and control ids
start with ``control:``, which no window id does: controls never enter the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..scoring.resume import file_sha256
from ..selection import duck
from ..storage import DataLayout
from ..windows.ids import unit_interval
from .controls import CONCATENATED, CONTROL_KINDS, ControlGroup, SourceWindow
from .settings import DIAGNOSTICS_REVISION, DiagnosticsSettings
from .split import EVALUATION, TUNING, DocumentSplit

SCORER_DIAGNOSTICS = "scorer_diagnostics"  # the asset, and its folder under the data root
CONTROLS_FILE = "controls.parquet"
CONTROL_SCORES_FILE = "control_scores.parquet"
DIAGNOSTICS_FILE = "diagnostics.json"
NATURAL_COLUMNS = ("data_id", "doc_id", "ds", "du", "ds_heads", "du_heads")
# The tuning part only chooses heads and alpha against concatenations (the method's claim);
# the evaluation part judges against every kind.
KINDS_BY_PART = {TUNING: (CONCATENATED,), EVALUATION: CONTROL_KINDS}


def sample_ids(data_ids: Sequence[str], limit: int) -> list[str]:
    """The ``limit`` data_ids first in hash order: a uniform sample that depends on ids only."""
    return sorted(data_ids, key=lambda d: (unit_interval(f"diagnostics:{d}"), d))[:limit]


def natural_sample(windows_glob: duck.Source, scores_glob: duck.Source, limit: int) -> pa.Table:
    """NATURAL_COLUMNS of up to ``limit`` scored windows, in hash order."""
    with duck.connect() as con:
        ids = [
            row[0]
            for row in con.execute(f"SELECT data_id FROM {duck.parquet(scores_glob)}").fetchall()
        ]
        chosen = sample_ids(ids, limit)
        con.register("wanted", pa.table({"data_id": chosen, "position": np.arange(len(chosen))}))
        return con.sql(
            f"""
            SELECT s.data_id, w.doc_id, s.ds, s.du, s.ds_heads, s.du_heads
            FROM {duck.parquet(scores_glob)} s
            JOIN wanted USING (data_id)
            JOIN (SELECT data_id, doc_id FROM {duck.parquet(windows_glob)}) w USING (data_id)
            ORDER BY wanted.position
            """
        ).to_arrow_table()


def source_windows(
    windows_glob: duck.Source, data_ids: Sequence[str]
) -> tuple[list[SourceWindow], str]:
    """The token ids of ``data_ids`` (in that order) and their tokenizer fingerprint."""
    if not data_ids:
        return [], ""
    with duck.connect() as con:
        con.register(
            "wanted", pa.table({"data_id": list(data_ids), "position": np.arange(len(data_ids))})
        )
        table = con.sql(
            f"""
            SELECT w.data_id, w.doc_id, w.token_ids, w.tokenizer
            FROM {duck.parquet(windows_glob)} w JOIN wanted USING (data_id)
            ORDER BY wanted.position
            """
        ).to_arrow_table()
    tokenizers = set(table.column("tokenizer").to_pylist())
    if len(tokenizers) > 1:
        raise ValueError(
            f"the category's windows were cut with several tokenizers: {sorted(tokenizers)}"
        )
    ids = table.column("token_ids").combine_chunks()
    offsets = ids.offsets.to_numpy()
    values = ids.values.to_numpy(zero_copy_only=False).astype(np.int32)
    sources = [
        SourceWindow(data_id, doc_id, values[offsets[i] : offsets[i + 1]])
        for i, (data_id, doc_id) in enumerate(
            zip(table.column("data_id").to_pylist(), table.column("doc_id").to_pylist())
        )
    ]
    return sources, next(iter(tokenizers), "")


def scores_fingerprint(paths: Sequence[str | os.PathLike[str]]) -> str:
    """One hash over the category's score files (their names and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return "scores-" + digest.hexdigest()[:16]


def control_groups(
    windows_glob: duck.Source, natural: pa.Table, split: DocumentSplit, limit: int
) -> tuple[list[ControlGroup], str]:
    """The windows each half of each part cuts its controls from (the first ``limit``
    windows of the half's documents in the natural sample, in hash order), and their
    tokenizer's fingerprint."""
    ids = natural.column("data_id").to_pylist()
    docs = natural.column("doc_id").to_pylist()
    parts = (TUNING, EVALUATION) if split.calibrates else (EVALUATION,)
    wanted = {
        (part, half): [
            i for i, d in zip(ids, docs) if split.part[d] == part and split.half[d] == half
        ][:limit]
        for part in parts
        for half in (0, 1)
    }
    sources, tokenizer = source_windows(
        windows_glob, [i for chosen in wanted.values() for i in chosen]
    )
    by_id = {s.data_id: s for s in sources}
    groups = [
        ControlGroup(part, half, KINDS_BY_PART[part], tuple(by_id[i] for i in chosen))
        for (part, half), chosen in wanted.items()
    ]
    return groups, tokenizer


def diagnostics_for_scores(
    layout: DataLayout, category: str, score_files: Sequence[Path]
) -> dict | None:
    """The category's diagnostics if this code made them from exactly these score files
    (with any settings: the card and the report say which)."""
    path = layout.category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE)
    return read_diagnostics(path, score_files) if path.is_file() else None


def read_diagnostics(path: Path, score_files: Sequence[str | os.PathLike[str]]) -> dict | None:
    """The record at ``path`` if this code made it from exactly these score files."""
    record = json.loads(path.read_text())
    if record.get("recipe", {}).get("code") != DIAGNOSTICS_REVISION:
        return None
    return record if record.get("scores_fingerprint") == scores_fingerprint(score_files) else None


def current_diagnostics(
    layout: DataLayout, category: str, score_files: Sequence[Path], settings: DiagnosticsSettings
) -> dict | None:
    """The category's diagnostics if made from these score files with exactly ``settings``:
    what a fresh run with them would write."""
    record = diagnostics_for_scores(layout, category, score_files)
    expected = json.loads(json.dumps(settings.recipe()))
    return record if record is not None and record["recipe"] == expected else None
