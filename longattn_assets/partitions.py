"""The two partition dimensions, defined once: category (static) x shard (static).

Dagster orders multi-partition dimensions by name, so keys read ``book|00003``.
"""

from __future__ import annotations

import warnings

import dagster as dg

from . import settings
from .storage import check_key, shard_key

CATEGORY = "category"
SHARD = "shard"

category_partitions = dg.StaticPartitionsDefinition(
    [check_key("category", c) for c in settings.categories()]
)
shard_partitions = dg.StaticPartitionsDefinition(
    [shard_key(i) for i in range(settings.num_shards())]
)
category_shard_partitions = dg.MultiPartitionsDefinition(
    {CATEGORY: category_partitions, SHARD: shard_partitions}
)

# A sharded asset reads the whole-category asset upstream of it (raw_corpus is written
# per category), and a per-category asset reads every shard of its category.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    category_to_shards = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=CATEGORY)


def category_and_shard(context: dg.AssetExecutionContext) -> tuple[str, str]:
    # A run launched with a partition tag (`dagster job execute --tags`) carries the key as
    # a plain "category|shard" string rather than a MultiPartitionKey.
    key = category_shard_partitions.get_partition_key_from_str(str(context.partition_key))
    keys = key.keys_by_dimension
    return check_key("category", keys[CATEGORY]), check_key("shard", keys[SHARD])
