"""One sensor per category: input files changed in content request a raw_corpus run.

The cursor is ingest's cheap fingerprint of the category's files (names, sizes, and each
local file's mtime, ctime and inode, or an object's version id or ETag), so an evaluation
that sees the same files does nothing. When it changes, the files are compared by content
with those the category's raw_corpus was made from (consistency.py: only files whose
version changed are hashed again): an added, removed or edited file requests exactly one
ingest, with run key ``category@hash``; a file copied, touched or ``chmod``-ed with the same
bytes requests none. The shards then follow from the category's schedule. The sensor does
not request shard runs itself because they can only start once raw_corpus has finished.
"""

from __future__ import annotations

import dagster as dg

from .assets.current import category_inputs
from .consistency import RAW_CORPUS, Expected, raw_problem
from .corpus.ingest import MissingInputError, input_fingerprint
from .jobs import ingest_job
from .partitions import category_partitions, shard_partitions
from .resources import CorpusInput, DataRoot

MIN_INTERVAL_S = 60


def input_sensor(category: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{category}_new_inputs",
        job=ingest_job,
        minimum_interval_seconds=MIN_INTERVAL_S,
        description=f"Ingest {category!r} again when its input files change.",
    )
    def _sensor(context: dg.SensorEvaluationContext, corpus_input: CorpusInput, data_root: DataRoot):
        try:
            fingerprint = input_fingerprint(corpus_input.location, category, corpus_input.fields)
        except MissingInputError as exc:
            return dg.SkipReason(f"no input files: {exc}")
        if fingerprint == context.cursor:
            return dg.SkipReason(f"input files of {category!r} unchanged")
        inputs = category_inputs(data_root, corpus_input, category)
        expected = Expected(num_shards=len(shard_partitions.get_partition_keys()), inputs=inputs)
        problem, _ = raw_problem(data_root.layout, category, expected)
        if problem is None:
            return dg.SensorResult(
                skip_reason=f"input files of {category!r} have the content {RAW_CORPUS} was made from",
                cursor=fingerprint,
            )
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{category}@{fingerprint}", partition_key=category)],
            cursor=fingerprint,
        )

    return _sensor


sensors = [input_sensor(c) for c in category_partitions.get_partition_keys()]
