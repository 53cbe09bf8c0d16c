"""Jobs: a category's ingest, a shard's windows and scores, a category's selection and its
training export, and the mixture of all categories.

From the CLI a partition is given as a tag, e.g.
``dagster job execute -m longattn_assets.definitions -j shard_job --tags '{"dagster/partition": "book|00003"}'``.
"""

import dagster as dg

from .assets.corpus import raw_corpus
from .assets.scoring import scored_chunks
from .assets.selection import longabc_dataset, longabc_report
from .assets.training import longabc_mixture, longabc_training
from .assets.windows import windowed_chunks

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=[raw_corpus],
    description="Read a category's input files into raw_corpus shards.",
)
shard_job = dg.define_asset_job(
    "shard_job",
    selection=[windowed_chunks, scored_chunks],
    description="Window and score one shard of a category.",
)
selection_job = dg.define_asset_job(
    "selection_job",
    selection=[longabc_dataset, longabc_report],
    description="Select a category's LongABC windows and write its report.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=[longabc_training],
    description="Export a category's kept windows as token shards for trainers (MDS, Megatron, HF).",
)
mixture_job = dg.define_asset_job(
    "mixture_job",
    selection=[longabc_mixture],
    description="Mix the categories' kept windows by token budgets or weights, shuffled with a seed.",
)

jobs = [ingest_job, shard_job, selection_job, training_job, mixture_job]
