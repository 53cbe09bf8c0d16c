"""longabc_training and longabc_mixture: the kept windows' exact token ids, ready for trainers.

Thin assets over training/: each selection is read only when it was made from the
category's current shard files and with the scoring model's tokenizer (training/inputs.py),
then exported (training/export.py). A run whose export is already current writes nothing.
"""

import dagster as dg
from pydantic import model_validator

from ..consistency import InconsistentDataError
from ..model.source import ModelFileError, ModelNotFoundError
from ..model.tokenizer import load_tokenizer
from ..partitions import category_partitions, category_to_shards
from ..resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from ..storage import check_key
from ..training.export import (
    DEFAULT_MEMORY_BUDGET,
    LONGABC_MIXTURE,
    LONGABC_TRAINING,
    TRAINING_REVISION,
    ExportResult,
    ExportSettings,
    export_category,
    export_mixture,
)
from ..training.inputs import (
    OtherTokenizerError,
    Selection,
    read_selection,
    require_tokenizer,
    vocabulary_size,
)
from ..training.mds import MissingLibraryError
from ..training.plan import MixtureError, MixtureSettings
from ..validation import EXPORT_FORMATS, check
from .selection import LONGABC_DATASET, current_files, longabc_dataset
from .windows import windowed_chunks


class TrainingConfig(dg.Config):
    """What to write; see README "Train on it"."""

    # input_ids start with the scorer's BOS, as the scorer read them (nothing when it added none)
    include_bos: bool = True
    formats: list[str] = list(EXPORT_FORMATS)
    # bounds the export's memory (its order buckets); never changes a byte
    memory_budget: str = DEFAULT_MEMORY_BUDGET
    # a model whose tokenizer to write with: refused unless it is the scoring model's
    tokenizer: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "TrainingConfig":
        self.settings()  # a bad value fails the run's config before the step starts
        check("model", self.tokenizer, "tokenizer")
        return self

    def settings(self) -> ExportSettings:
        return ExportSettings.from_options(
            include_bos=self.include_bos, formats=self.formats, memory_budget=self.memory_budget
        )


class MixtureConfig(TrainingConfig):
    """Token budgets per category, or weights (and a total); without either, equal weights
    and the largest mixture the selections allow. ``seed`` orders the shuffle."""

    token_budgets: dict[str, int] | None = None
    weights: dict[str, float] | None = None
    total_tokens: int | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _check_mixture(self) -> "MixtureConfig":
        self.mixture()
        return self

    def mixture(self) -> MixtureSettings:
        return MixtureSettings.from_options(
            token_budgets=self.token_budgets, weights=self.weights, total_tokens=self.total_tokens, seed=self.seed
        )


def current_selection(
    asset: str,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    category: str,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
    config: TrainingConfig,
) -> Selection:
    """The category's selection, or a Failure saying what to run (or why not this tokenizer)."""
    layout = data_root.layout
    # every shard current: from today's input files, settings and model
    current_files(category, data_root, corpus_input, windowing, attention_scorer, asset=asset)
    try:
        # refused unless the files it was selected from are unchanged: with the check above,
        # the selection was made from the current shards
        selection = read_selection(layout.category_dir(LONGABC_DATASET, category), layout.root)
        asked = load_tokenizer(config.tokenizer) if config.tokenizer else attention_scorer.tokenizer()
        require_tokenizer([selection], asked.fingerprint, config.tokenizer)
    except (InconsistentDataError, OtherTokenizerError, ModelNotFoundError, ModelFileError) as exc:
        raise dg.Failure(f"{asset} {category}: {exc}") from exc
    return selection


def _result(result: ExportResult, path: str) -> dg.MaterializeResult:
    record = result.record
    return dg.MaterializeResult(
        data_version=dg.DataVersion(record["provenance"]["fingerprint"]),
        metadata={
            "windows": record["windows"],
            "tokens": record["tokens"],
            "categories": dg.MetadataValue.json(record["categories"]),
            "vocab_size": record["vocab_size"],
            "dtypes": dg.MetadataValue.json(record["dtypes"]),
            "include_bos": record["include_bos"],
            "files": dg.MetadataValue.json(record["files"]),
            "seconds": round(result.seconds, 3),
            "tokens_per_s": round(result.tokens_per_s, 1),
            "reused": result.reused,
            "path": dg.MetadataValue.path(path),
        },
    )


def _run(export, context: dg.AssetExecutionContext, asset: str, *args, **kwargs) -> ExportResult:
    try:
        return export(*args, say=context.log.info, **kwargs)
    except (InconsistentDataError, MixtureError, MissingLibraryError) as exc:
        raise dg.Failure(f"{asset}: {exc}") from exc


@dg.asset(
    partitions_def=category_partitions,
    deps=[longabc_dataset, dg.AssetDep(windowed_chunks, partition_mapping=category_to_shards)],
    group_name="training",
    kinds={"parquet"},
    code_version=f"r{TRAINING_REVISION}",
    description=(
        "The category's kept windows, best LDS first, as the token ids they were scored as: "
        "MDS shards (mds/), a Megatron indexed dataset (megatron/longabc.bin/.idx) and the "
        "Hugging Face layout with input_ids (hf/), plus documents.parquet and export.json."
    ),
)
def longabc_training(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
) -> dg.MaterializeResult:
    category = check_key("category", context.partition_key)
    layout = data_root.layout
    selection = current_selection(LONGABC_TRAINING, data_root, corpus_input, category, windowing, attention_scorer, config)
    out = layout.category_dir(LONGABC_TRAINING, category)
    result = _run(
        export_category, context, f"{LONGABC_TRAINING} {category}", selection, out, config.settings(),
        vocab_size=vocabulary_size(attention_scorer.tokenizer()),
    )  # fmt: skip
    return _result(result, str(out))


@dg.asset(
    deps=[longabc_dataset, windowed_chunks],
    group_name="training",
    kinds={"parquet"},
    code_version=f"r{TRAINING_REVISION}",
    description=(
        "A mixture of the categories' kept windows: per-category token budgets or weights, drawn "
        "by LDS rank, shuffled with a seed; the same formats as longabc_training."
    ),
)
def longabc_mixture(
    context: dg.AssetExecutionContext,
    config: MixtureConfig,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
) -> dg.MaterializeResult:
    layout = data_root.layout
    try:
        categories = config.mixture().categories(category_partitions.get_partition_keys())
    except MixtureError as exc:
        raise dg.Failure(f"{LONGABC_MIXTURE}: {exc}") from exc
    selections = [
        current_selection(LONGABC_MIXTURE, data_root, corpus_input, c, windowing, attention_scorer, config) for c in categories
    ]
    out = layout.root / check_key("asset", LONGABC_MIXTURE)
    result = _run(
        export_mixture, context, LONGABC_MIXTURE, selections, out, config.settings(), config.mixture(),
        vocab_size=vocabulary_size(attention_scorer.tokenizer()),
    )  # fmt: skip
    return _result(result, str(out))
