"""longabc_dataset and longabc_report: the per-category selection and what a person reads."""

import base64
import json

import dagster as dg

from ..diagnostics.files import current_diagnostics
from ..diagnostics.summary import card_section
from ..partitions import category_partitions, category_to_shards
from ..report.diagnostics import diagnostics_section
from ..report.html import render_report, write_report
from ..report.plots import score_histograms
from ..resources import DataRoot, Windowing
from ..selection import checks
from ..selection.exports import SELECTED_FILE, SUMMARY_FILE, export_category
from ..selection.rules import SelectionSettings
from ..selection.select import select_category
from ..storage import check_key
from .scoring import SCORED_CHUNKS, scored_chunks
from .windows import WINDOWED_CHUNKS, windowed_chunks

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


class SelectionConfig(dg.Config):
    """DESIGN 1.3. Give at most one of keep_fraction, token_budget, threshold (default: keep half)."""

    normalize: str = "zscore"
    alpha: float = 0.5
    keep_fraction: float | None = None
    token_budget: int | None = None
    threshold: float | None = None
    heads: list[int] | None = None  # query heads averaged into ds and du (default: all)

    def settings(self) -> SelectionSettings:
        return SelectionSettings.from_options(
            normalize=self.normalize,
            alpha=self.alpha,
            keep_fraction=self.keep_fraction,
            token_budget=self.token_budget,
            threshold=self.threshold,
            heads=self.heads,
        )


def _globs(data_root: DataRoot, category: str) -> tuple[str, str]:
    layout = data_root.layout
    return layout.shard_glob(WINDOWED_CHUNKS, category), layout.shard_glob(SCORED_CHUNKS, category)


def markdown_images(plots: dict[str, bytes]) -> str:
    """PNGs as one markdown value the UI shows inline."""
    return "\n\n".join(
        f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in plots.items()
    )


def _check_result(name: str, outcome: checks.CheckResult) -> dg.AssetCheckResult:
    passed, facts = outcome
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        metadata={
            key: dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
            for key, value in facts.items()
            if value is not None
        },
    )


@dg.asset(
    partitions_def=category_partitions,
    deps=[
        dg.AssetDep(scored_chunks, partition_mapping=category_to_shards),
        dg.AssetDep(windowed_chunks, partition_mapping=category_to_shards),
    ],
    group_name="selection",
    kinds={"duckdb", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(name, asset=LONGABC_DATASET, description=text)
        for name, text in CHECKS.items()
    ],
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
    windowing: Windowing,
):
    category = check_key("category", context.partition_key)
    windows_glob, scores_glob = _globs(data_root, category)
    layout = data_root.layout
    if not layout.shard_paths(SCORED_CHUNKS, category):
        raise dg.Failure(f"no scored_chunks for category {category!r}: score its shards first")
    out_dir = layout.category_dir(LONGABC_DATASET, category)
    settings = config.settings()
    models = checks.one_model(scores_glob)
    diagnostics = current_diagnostics(layout, category, layout.shard_paths(SCORED_CHUNKS, category))
    summary = export_category(
        windows_glob,
        scores_glob,
        out_dir,
        category=category,
        settings=settings,
        extra_settings={
            "window_size": windowing.window_size,
            "model": ", ".join(models[1]["models"]),
        },
        card_sections=[card_section(diagnostics, settings)],
    )
    context.log.info(
        f"{category}: kept {summary.kept:,} of {summary.n:,} windows "
        f"({summary.tokens_kept:,} tokens) by {settings.rule}={settings.value}"
    )
    yield dg.MaterializeResult(
        metadata={
            "windows": summary.n,
            "kept": summary.kept,
            "dropped": summary.n - summary.kept,
            "tokens_kept": summary.tokens_kept,
            "tokens_dropped": summary.tokens_dropped,
            "cut_lds": summary.cut_lds,
            "settings": dg.MetadataValue.json(settings.as_dict()),
            "path": dg.MetadataValue.path(str(out_dir)),
        }
    )
    yield _check_result(
        "windows_have_configured_length",
        checks.windows_have_length(windows_glob, windowing.window_size),
    )
    yield _check_result("data_ids_unique", checks.data_ids_unique(windows_glob))
    yield _check_result("scores_finite", checks.scores_finite(scores_glob))
    yield _check_result("scores_from_one_model", models)
    yield _check_result("ds_within_unit_interval", checks.ds_in_unit_interval(scores_glob))
    yield _check_result(
        "selection_follows_rule",
        checks.selection_follows_rule(out_dir / SELECTED_FILE, scores_glob, settings),
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
    windows_glob, scores_glob = _globs(data_root, category)
    dataset_dir = data_root.layout.category_dir(LONGABC_DATASET, category)
    recorded = json.loads((dataset_dir / SUMMARY_FILE).read_text())
    settings = SelectionSettings(**recorded["settings"])
    result = select_category(windows_glob, scores_glob, **settings.options())
    diagnostics = current_diagnostics(
        data_root.layout, category, data_root.layout.shard_paths(SCORED_CHUNKS, category)
    )
    html_text = render_report(
        category, result, windows_glob, recorded.get("settings_extra"),
        sections=[diagnostics_section(diagnostics)],
    )  # fmt: skip
    path = data_root.layout.category_file(LONGABC_REPORT, category, REPORT_FILE)
    write_report(html_text, path)
    images = markdown_images(score_histograms(result.table, result.summary.cut_lds))
    context.log.info(f"{category}: report written to {path}")
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.path(str(path)),
            "histograms": dg.MetadataValue.md(images),
            "windows": result.summary.n,
            "kept": result.summary.kept,
        }
    )
