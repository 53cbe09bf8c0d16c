"""The assets' side of consistency.py: its refusals as Dagster failures."""

import dagster as dg

from ..consistency import Expected, InconsistentDataError, require_current_input
from ..partitions import shard_partitions
from ..provenance import Provenance
from ..storage import DataLayout


def current_input(
    layout: DataLayout, category: str, shard: str, asset: str, expected: Expected | None = None
) -> Provenance:
    """The record of the shard file ``asset`` reads, or a Failure saying what to run first."""
    expected = expected or Expected(num_shards=len(shard_partitions.get_partition_keys()))
    try:
        return require_current_input(layout, category, shard, expected, asset)
    except InconsistentDataError as exc:
        raise dg.Failure(str(exc)) from exc
