"""The one Definitions object: assets, checks, resources, jobs, schedules and sensors."""

from __future__ import annotations

import dagster as dg

from .assets.corpus import raw_corpus
from .assets.windows import windowed_chunks
from .resources import AttentionScorer, CorpusInput, DataRoot, Windowing

defs = dg.Definitions(
    assets=[raw_corpus, windowed_chunks],
    resources={
        "data_root": DataRoot(),
        "corpus_input": CorpusInput(),
        "windowing": Windowing(),
        "attention_scorer": AttentionScorer(),
    },
)
