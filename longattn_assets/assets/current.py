"""The assets' side of consistency.py: what the current settings expect, and refusals as Dagster failures.

:func:`expected_now` is the one place where the resources' settings become a
:class:`~longattn_assets.consistency.Expected`: the shard count, the category's input files
as they are now, the windows recipe and, for steps that read scores, the scorer recipe
with the model fingerprint. Every asset, the schedules and the demo call it, so whatever
makes a file stale for one of them makes it stale for all.
"""

import dagster as dg

from ..consistency import (
    CategoryInputs,
    Expected,
    InconsistentDataError,
    require_current_input,
    windows_recipe,
)
from ..corpus.ingest import MissingInputError, input_files
from ..partitions import shard_partitions
from ..provenance import Provenance
from ..resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from ..storage import DataLayout, check_key

# Where currency checks keep the content hashes they computed, one file per category.
INPUT_HASHES_DIR = ".work/input-hashes"


def category_inputs(data_root: DataRoot, corpus_input: CorpusInput, category: str) -> CategoryInputs:
    """The files an ingest of ``category`` would read now (none when its folder is gone)."""
    try:
        files = tuple(input_files(corpus_input.location, category))
    except MissingInputError:
        files = ()
    hashes = data_root.layout.root / INPUT_HASHES_DIR / f"{check_key('category', category)}.json"
    return CategoryInputs(files, corpus_input.fields, hashes)


def expected_now(
    category: str,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing | None = None,
    attention_scorer: AttentionScorer | None = None,
    *,
    scores: bool = False,
) -> Expected:
    """What a fresh run with these resources would write for ``category``; ``scores``: also
    the scorer recipe (it reads layer 0's weights for the model fingerprint)."""
    windows = None
    if windowing is not None and attention_scorer is not None:
        tokenizer = attention_scorer.tokenizer().fingerprint
        windows = windows_recipe(windowing.window_size, windowing.sample_fraction, tokenizer)
    return Expected(
        num_shards=len(shard_partitions.get_partition_keys()),
        inputs=category_inputs(data_root, corpus_input, category),
        windows=windows,
        scores=attention_scorer.expected_scores() if scores and attention_scorer is not None else None,
    )


def current_input(layout: DataLayout, category: str, shard: str, asset: str, expected: Expected) -> Provenance:
    """The record of the shard file ``asset`` reads, or a Failure saying what to run first."""
    try:
        return require_current_input(layout, category, shard, expected, asset)
    except InconsistentDataError as exc:
        raise dg.Failure(str(exc)) from exc
