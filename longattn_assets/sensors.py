"""One sensor per category: new or changed input files request a raw_corpus run.

The cursor is a hash of the category folder's sorted file list with sizes and mtimes;
the run key is ``category@hash``, so an evaluation that sees the same files requests
nothing (Dagster drops repeated run keys of a sensor), and any added, removed or
rewritten file requests exactly one ingest. The shards then follow from the category's
schedule: its next tick sees raw_corpus shards newer than their windows. The sensor does
not request shard runs itself because they can only start once raw_corpus has finished.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

from .corpus.records import category_files
from .jobs import ingest_job
from .partitions import category_partitions
from .resources import CorpusInput

MIN_INTERVAL_S = 60


def input_fingerprint(folder: Path) -> str | None:
    """Hash of (relative path, size, mtime) of the files raw_corpus reads; None if there are none.

    The file list is ingest's own (``category_files``), so the sensor wakes for exactly the
    files an ingest would read, hidden folders excluded.
    """
    if not folder.is_dir():
        return None
    entries = []
    for path in category_files(folder):
        stat = path.stat() if path.exists() else path.lstat()  # a dangling symlink is a reject
        entries.append(f"{path.relative_to(folder).as_posix()}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16] if entries else None


def input_sensor(category: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{category}_new_inputs",
        job=ingest_job,
        minimum_interval_seconds=MIN_INTERVAL_S,
        description=f"Ingest {category!r} again when its input folder changes.",
    )
    def _sensor(context: dg.SensorEvaluationContext, corpus_input: CorpusInput):
        fingerprint = input_fingerprint(corpus_input.path / category)
        if fingerprint is None:
            return dg.SkipReason(f"no input files under {corpus_input.path / category}")
        if fingerprint == context.cursor:
            return dg.SkipReason(f"input files of {category!r} unchanged")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{category}@{fingerprint}", partition_key=category)],
            cursor=fingerprint,
        )

    return _sensor


sensors = [input_sensor(c) for c in category_partitions.get_partition_keys()]
