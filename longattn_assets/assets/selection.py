"""longabc_dataset and longabc_report: the per-category selection and what a person reads."""

import base64
import json

import dagster as dg
from pydantic import model_validator

from .. import code_versions
from ..consistency import (
    CategoryFiles,
    InconsistentDataError,
    category_files,
    recorded_files,
)
from ..diagnostics.calibration import CalibrationUnavailable, calibrated_settings
from ..diagnostics.files import diagnostics_for_scores
from ..diagnostics.summary import card_section
from ..partitions import category_partitions, category_to_shards, shard_partitions
from ..provenance import digest
from ..report.diagnostics import diagnostics_section
from ..report.html import render_report, write_report
from ..report.inline_plots import inline_histograms
from ..resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from ..selection import checks
from ..selection.exports import SELECTED_FILE, SUMMARY_FILE, export_category
from ..selection.rules import SelectionSettings
from ..selection.select import select_category
from ..storage import check_key
from ..validation import Normalize
from .current import expected_now
from .scoring import scored_chunks
from .windows import windowed_chunks

LONGABC_DATASET = "longabc_dataset"
LONGABC_REPORT = "longabc_report"
REPORT_FILE = "report.html"

CHECKS = {
    "windows_have_configured_length": "every window has the configured number of tokens",
    "data_ids_unique": "data_ids are unique within the category",
    "scores_finite": "no NaN or infinite ds/du",
    "scores_from_one_model": "every score comes from the same model weights and rope settings",
    "ds_within_unit_interval": "ds lies in [0, 1]",
    "selection_follows_rule": "the kept windows are the top of the LDS ranking, sized by the rule",
}


class SelectionSettingsConfig(dg.Config):
    """DESIGN 1.3. Give at most one of keep_fraction, token_budget, threshold (default: keep half)."""

    normalize: Normalize = "zscore"
    alpha: float = 0.5
    keep_fraction: float | None = None
    token_budget: int | None = None
    threshold: float | None = None
    heads: list[int] | None = None  # query heads averaged into ds and du (default: all)

    @model_validator(mode="after")
    def _check(self) -> "SelectionSettingsConfig":
        self.settings()  # a bad value fails the run's config before the step starts
        return self

    def settings(self) -> SelectionSettings:
        return SelectionSettings.from_fields(self)


class SelectionConfig(SelectionSettingsConfig):
    """The selection settings, or with ``calibrated: true`` the heads and alpha that
    scorer_diagnostics chose on its tuning part for the category's current scores (then
    give neither heads nor alpha)."""

    calibrated: bool = False


def current_files(
    category: str,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
    asset: str = LONGABC_DATASET,
) -> CategoryFiles:
    """The windows and scores of every shard of the current partition set, all current (from
    today's input files, settings and model) and made under one set of settings; otherwise a
    Failure naming each shard and what to run."""
    expected = expected_now(category, data_root, corpus_input, windowing, attention_scorer, scores=True)
    try:
        return category_files(data_root.layout, category, shard_partitions.get_partition_keys(), expected)
    except InconsistentDataError as exc:
        raise dg.Failure(f"{asset} {category}: {exc}") from exc


def markdown_images(plots: dict[str, bytes]) -> str:
    """PNGs as one markdown value the UI shows inline."""
    return "\n\n".join(
        f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in plots.items()
    )


def _check_result(name: str, category: str, outcome: checks.CheckResult) -> dg.AssetCheckResult:
    """The check's facts as metadata; numbers are keyed ``<category>/<fact>``.

    A check of a partitioned asset has one history for all partitions, and the UI plots each
    numeric metadata key of that history as one series: one key per category keeps the
    categories' numbers in separate plots instead of one series zig-zagging between them.
    """
    passed, facts = outcome
    metadata: dict[str, object] = {"category": category}
    for key, value in facts.items():
        if value is None:
            continue
        if isinstance(value, (list, dict)):
            metadata[key] = dg.MetadataValue.json(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            metadata[f"{category}/{key}"] = value
        else:
            metadata[key] = value
    return dg.AssetCheckResult(check_name=name, passed=bool(passed), metadata=metadata)


# What a per-category step reads: every shard's windows and scores.
CATEGORY_SHARD_FILES = [
    dg.AssetDep(scored_chunks, partition_mapping=category_to_shards),
    dg.AssetDep(windowed_chunks, partition_mapping=category_to_shards),
]


@dg.asset(
    partitions_def=category_partitions,
    deps=CATEGORY_SHARD_FILES,
    group_name="selection",
    kinds={"duckdb", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(name, asset=LONGABC_DATASET, description=text, blocking=True)
        for name, text in CHECKS.items()
    ],
    code_version=code_versions.longabc_dataset(),
    description=(
        "The LongABC selection of one category: LDS = N(ds) - alpha * N(du) normalized over "
        "all shards, top windows kept by fraction, token budget or threshold. Writes "
        "selected.parquet, longabc.jsonl (LongAttn export), hf/ (datasets layout) and selection.json."
    ),
)
def longabc_dataset(
    context: dg.AssetExecutionContext,
    config: SelectionConfig,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
):
    category = check_key("category", context.partition_key)
    layout = data_root.layout
    files = current_files(category, data_root, corpus_input, windowing, attention_scorer)
    windows_files, scores_files = files.windows, files.scores
    out_dir = layout.category_dir(LONGABC_DATASET, category)
    settings = config.settings()
    models = checks.one_model(scores_files)
    diagnostics = diagnostics_for_scores(layout, category, scores_files)
    calibration = None
    if config.calibrated:
        try:
            settings, calibration = calibrated_settings(diagnostics, settings, category)
        except CalibrationUnavailable as exc:
            raise dg.Failure(f"longabc_dataset {category}: {exc}") from exc
    summary = export_category(
        windows_files,
        scores_files,
        out_dir,
        category=category,
        settings=settings,
        extra_settings={
            "window_size": windowing.window_size,
            "model": ", ".join(models[1]["models"]),
            "layer": files.scores_recipe.get("layer", 0),
        },
        inputs=files.as_record(layout.root),
        calibration=calibration,
        card_sections=[card_section(diagnostics, settings)],
    )
    context.log.info(
        f"{category}: kept {summary.kept:,} of {summary.n:,} windows "
        f"({summary.tokens_kept:,} tokens) by {settings.rule}={settings.value}"
    )
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(
            digest([settings.as_dict(), CategoryFiles.identity(files.as_record()), calibration])
        ),
        metadata={
            "shards": dg.MetadataValue.json(files.shards),
            "windows": summary.n,
            "kept": summary.kept,
            "dropped": summary.n - summary.kept,
            "tokens_kept": summary.tokens_kept,
            "tokens_dropped": summary.tokens_dropped,
            "cut_lds": summary.cut_lds,
            "settings": dg.MetadataValue.json(settings.as_dict()),
            "calibrated": calibration is not None,
            "path": dg.MetadataValue.path(str(out_dir)),
        },
    )
    yield _check_result(
        "windows_have_configured_length",
        category,
        checks.windows_have_length(windows_files, windowing.window_size),
    )
    yield _check_result("data_ids_unique", category, checks.data_ids_unique(windows_files))
    yield _check_result("scores_finite", category, checks.scores_finite(scores_files))
    yield _check_result("scores_from_one_model", category, models)
    yield _check_result("ds_within_unit_interval", category, checks.ds_in_unit_interval(scores_files))
    yield _check_result(
        "selection_follows_rule",
        category,
        checks.selection_follows_rule(out_dir / SELECTED_FILE, scores_files, settings),
    )


@dg.asset(
    partitions_def=category_partitions,
    deps=[longabc_dataset],
    group_name="selection",
    kinds={"html"},
    description="A self-contained HTML report of the category's scores and selection, with plots.",
)
def longabc_report(context: dg.AssetExecutionContext, data_root: DataRoot) -> dg.MaterializeResult:
    category = check_key("category", context.partition_key)
    dataset_dir = data_root.layout.category_dir(LONGABC_DATASET, category)
    if not (dataset_dir / SUMMARY_FILE).is_file():
        raise dg.Failure(
            f"longabc_report {category}: longabc_dataset {category} has no {SUMMARY_FILE} (never made, or its "
            f"run did not finish): materialize longabc_dataset {category} first"
        )
    recorded = json.loads((dataset_dir / SUMMARY_FILE).read_text())
    try:
        files = recorded_files(recorded["inputs"], data_root.layout.root)
    except InconsistentDataError as exc:
        raise dg.Failure(f"longabc_report {category}: {exc}") from exc
    windows_files, scores_files = files.windows, files.scores
    settings = SelectionSettings(**recorded["settings"])
    result = select_category(windows_files, scores_files, **settings.options())
    diagnostics = diagnostics_for_scores(data_root.layout, category, scores_files)
    html_text = render_report(
        category, result, windows_files, recorded.get("settings_extra"),
        sections=[diagnostics_section(diagnostics)],
    )  # fmt: skip
    path = data_root.layout.category_file(LONGABC_REPORT, category, REPORT_FILE)
    write_report(html_text, path)
    plots = inline_histograms(result.table, result.summary.cut_lds)
    context.log.info(f"{category}: report written to {path}")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(path)),
            **{f"{name}_histogram": dg.MetadataValue.md(md) for name, md in plots.items()},
            "windows": result.summary.n,
            "kept": result.summary.kept,
        }
    )
