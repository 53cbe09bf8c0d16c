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
from .controls import SourceWindow

SCORER_DIAGNOSTICS = "scorer_diagnostics"  # the asset, and its folder under the data root
CONTROLS_FILE = "controls.parquet"
CONTROL_SCORES_FILE = "control_scores.parquet"
DIAGNOSTICS_FILE = "diagnostics.json"
NATURAL_COLUMNS = ("data_id", "doc_id", "ds", "du", "ds_heads", "du_heads")


def sample_ids(data_ids: Sequence[str], limit: int) -> list[str]:
    """The ``limit`` data_ids first in hash order: a uniform sample that depends on ids only."""
    return sorted(data_ids, key=lambda d: (unit_interval(f"diagnostics:{d}"), d))[:limit]


def natural_sample(windows_glob: str, scores_glob: str, limit: int) -> pa.Table:
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


def source_windows(windows_glob: str, data_ids: Sequence[str]) -> tuple[list[SourceWindow], str]:
    """The token ids of ``data_ids`` (in that order) and their tokenizer fingerprint."""
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


def current_diagnostics(
    layout: DataLayout, category: str, score_files: Sequence[Path]
) -> dict | None:
    """The category's diagnostics record if it was made from exactly these score files."""
    path = layout.category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    current = scores_fingerprint(score_files)
    return record if record.get("scores_fingerprint") == current else None
