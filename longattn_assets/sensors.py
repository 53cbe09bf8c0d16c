"""One sensor per category: new or changed input files request a raw_corpus run.

The cursor is ingest's own fingerprint of the category's files (names, sizes, and mtimes
for local files, version ids or ETags for objects in a bucket or on the Hub), so the sensor
wakes for exactly the files an ingest would read, local or remote; the run key is ``category@hash``, so an evaluation that sees the same files requests
nothing (Dagster drops repeated run keys of a sensor), and any added, removed or
rewritten file requests exactly one ingest. The shards then follow from the category's
schedule: its next tick sees raw_corpus shards newer than their windows. The sensor does
not request shard runs itself because they can only start once raw_corpus has finished.
"""

from __future__ import annotations

import dagster as dg

from .corpus.ingest import MissingInputError, input_fingerprint
from .jobs import ingest_job
from .partitions import category_partitions
from .resources import CorpusInput

MIN_INTERVAL_S = 60


def input_sensor(category: str) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{category}_new_inputs",
        job=ingest_job,
        minimum_interval_seconds=MIN_INTERVAL_S,
        description=f"Ingest {category!r} again when its input folder changes.",
    )
    def _sensor(context: dg.SensorEvaluationContext, corpus_input: CorpusInput):
        try:
            fingerprint = input_fingerprint(corpus_input.location, category, corpus_input.fields)
        except MissingInputError as exc:
            return dg.SkipReason(f"no input files: {exc}")
        if fingerprint == context.cursor:
            return dg.SkipReason(f"input files of {category!r} unchanged")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"{category}@{fingerprint}", partition_key=category)],
            cursor=fingerprint,
        )

    return _sensor


sensors = [input_sensor(c) for c in category_partitions.get_partition_keys()]
