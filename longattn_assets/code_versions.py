"""Dagster code versions: each asset's code revision plus the deployment settings it depends on.

Settings read from the environment at load time (input folder, shard count, window size,
model) act on an asset's output exactly as its code does, so they are part of its code
version: after a change, the UI marks every materialized partition of the asset stale
("has a new code version") and the partitions below it follow through their data
versions. Settings given per run in the launchpad are checked by the provenance of the
files instead (consistency.py), which refuses to mix them.
"""

from __future__ import annotations

from . import settings
from .consistency import RAW_CORPUS, SCORED_CHUNKS, WINDOWED_CHUNKS
from .corpus.input_file import redact
from .provenance import CODE_REVISIONS

SELECTION_REVISION = "2"  # 2: selection.json and the card record the calibration


def raw_corpus() -> str:
    text = f" text={settings.text_column()}" if settings.text_column() else ""
    return f"r{CODE_REVISIONS[RAW_CORPUS]} shards={settings.num_shards()} input={redact(settings.input_dir())}{text}"


def windowed_chunks() -> str:
    return f"r{CODE_REVISIONS[WINDOWED_CHUNKS]} window_size={settings.window_size()} model={settings.model_spec()}"


def scored_chunks() -> str:
    return f"r{CODE_REVISIONS[SCORED_CHUNKS]} model={settings.model_spec()}"


def longabc_dataset() -> str:
    return f"r{SELECTION_REVISION}"
