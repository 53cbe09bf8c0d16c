"""scorer_diagnostics: does the score separate natural windows from negative controls?

Beside longabc_dataset: it reads the category's windows and scores, splits its documents
(diagnostics/split.py), builds control windows from them (diagnostics/controls.py), scores
those with the same scorer resource, calibrates heads and alpha on the tuning part and
judges both settings on the evaluation part (diagnostics/summary.py). longabc_dataset and
longabc_report show the result when it was made from the scores they use; longabc_dataset
selects with the calibrated settings when its config says ``calibrated: true``.
"""

import json
import time

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import model_validator

from ..diagnostics.controls import CONCATENATED, ControlSpec, build_controls
from ..diagnostics.files import (
    CONTROL_SCORES_FILE,
    CONTROLS_FILE,
    DIAGNOSTICS_FILE,
    SCORER_DIAGNOSTICS,
    control_groups,
    natural_sample,
    scores_fingerprint,
)
from ..diagnostics.settings import NATURAL_WINDOWS, REPLICATES, DiagnosticsSettings
from ..diagnostics.split import split_documents
from ..diagnostics.summary import CALIBRATED, SCORES, diagnose, markdown_table
from ..diagnostics.units import tokenizer_vocabulary
from ..partitions import category_partitions
from ..progress import TerminalProgress, Throttle, WindowCount
from ..provenance import digest
from ..report.diagnostics import diagnostics_plots, separation_markdown
from ..resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from ..selection import checks, duck
from ..selection.rules import SelectionSettings
from ..selection.select import SelectionSummary, rank_windows
from ..storage import check_key, write_parquet, write_text
from .selection import CATEGORY_SHARD_FILES, SelectionSettingsConfig, current_files, markdown_images

SEPARATION_CHECK = "lds_separates_concatenated"
CONTROL_COLUMNS = ("kind", "part", "half", "draw", "doc_ids")


class DiagnosticsConfig(SelectionSettingsConfig):
    """The selection settings to judge (as longabc_dataset's; the paper's by default), the
    controls, the sample and the seed of the document split, the draws and the bootstrap."""

    controls_per_kind: int = ControlSpec.per_kind
    concatenated_pieces: int = ControlSpec.pieces
    repeated_passage_fraction: float = ControlSpec.passage_fraction
    natural_windows: int = NATURAL_WINDOWS
    bootstrap_replicates: int = REPLICATES
    seed: int = 0

    @model_validator(mode="after")
    def _check_diagnostics(self) -> "DiagnosticsConfig":
        self.diagnostics_settings()  # a bad value fails the run's config before the step starts
        return self

    def diagnostics_settings(self) -> DiagnosticsSettings:
        return DiagnosticsSettings(
            selection=self.settings(),
            controls=ControlSpec(self.controls_per_kind, self.concatenated_pieces, self.repeated_passage_fraction),
            natural_windows=self.natural_windows,
            replicates=self.bootstrap_replicates,
            seed=self.seed,
        )


def _metadata(record: dict, path: str) -> dict[str, object]:
    numbers: dict[str, object] = {}
    for kind, found in record["separation"].items():
        for score in (*SCORES, CALIBRATED):
            if score in found:
                numbers[f"{score.replace('-', 'neg_')}_auc_{kind}"] = round(found[score]["auc"], 4)
        numbers[f"share_kept_{kind}"] = round(record["kept_share"][kind], 4)
    spread = record["separation"].get(CONCATENATED, {}).get("lds", {}).get("spread")
    calibrated = record["calibrated"]
    return {
        **numbers,
        **({"lds_draw_spread_concatenated": round(spread, 4)} if spread is not None else {}),
        "ds_du_spearman": round(record["ds_du_spearman"]["natural"], 4),
        "separation": dg.MetadataValue.md(markdown_table(record)),
        # in place in the UI (held-out AUC per control; 0.5 dashed) ...
        "separation_plot": dg.MetadataValue.md(separation_markdown(record)),
        # ... and every plot at full size, behind "Show Markdown" (the report shows them too)
        "plots": dg.MetadataValue.md(markdown_images(diagnostics_plots(record))),
        **(
            {
                "calibrated_settings": dg.MetadataValue.json(calibrated["settings"]),
                "alpha_sweep": dg.MetadataValue.json(calibrated["tuning"]["alpha_sweep"]),
            }
            if calibrated
            else {"calibrated_settings": f"none: {record['split']['refused']}"}
        ),
        "documents": dg.MetadataValue.json(record["documents"]),
        "advice": record["advice"],
        "control_windows": sum(n for part in record["controls"].values() for n in part.values()),
        "natural_windows": sum(record["natural_windows"].values()),
        "path": dg.MetadataValue.path(path),
    }


def _check_metadata(record: dict) -> dict[str, object]:
    found = record["separation"].get(CONCATENATED, {})
    facts: dict[str, object] = {"advice": record["advice"]}
    for score, prefix in (("lds", "lds_auc"), (CALIBRATED, "lds_calibrated_auc")):
        if score in found:
            facts |= {prefix: found[score]["auc"], f"{prefix}_low": found[score]["low"],
                      f"{prefix}_high": found[score]["high"]}  # fmt: skip
    return facts


@dg.asset(
    partitions_def=category_partitions,
    deps=CATEGORY_SHARD_FILES,
    group_name="selection",
    kinds={"pytorch", "parquet"},
    pool="gpu",
    check_specs=[
        dg.AssetCheckSpec(
            SEPARATION_CHECK,
            asset=SCORER_DIAGNOSTICS,
            description=(
                "LDS with the given (the paper's) or the calibrated settings ranks natural windows "
                "above concatenations of other documents' paragraphs, judged on held-out documents "
                "(AUC interval above 0.5)"
            ),
        )
    ],
    description=(
        "Negative controls cut from whole paragraphs and code blocks of the category's own windows "
        "(joined across documents, one passage repeated, units shuffled), scored by the same scorer. "
        "Documents are split into a tuning part, where heads and alpha are calibrated, and an "
        "evaluation part, where every AUC is measured (LDS with the paper's and the calibrated "
        "settings, DS, -DU, per head) with bootstrap intervals over documents and the spread "
        "between two independent draws of controls. Controls never enter the dataset."
    ),
)
def scorer_diagnostics(
    context: dg.AssetExecutionContext,
    config: DiagnosticsConfig,
    data_root: DataRoot,
    corpus_input: CorpusInput,
    windowing: Windowing,
    attention_scorer: AttentionScorer,
):
    started = time.perf_counter()
    category = check_key("category", context.partition_key)
    layout = data_root.layout
    # exactly the current shards, all made under one set of settings (consistency.py)
    files = current_files(category, data_root, corpus_input, windowing, attention_scorer, SCORER_DIAGNOSTICS)
    windows_glob, scores_glob = files.windows, files.scores
    settings = config.diagnostics_settings()
    models = sorted(checks.one_model(scores_glob)[1]["models"])

    def summarize(chosen: SelectionSettings) -> SelectionSummary:
        with duck.connect() as con:
            return rank_windows(con, windows_glob, scores_glob, chosen)

    natural = natural_sample(windows_glob, scores_glob, settings.natural_windows)
    split = split_documents(natural.column("doc_id").to_pylist(), settings.seed)
    # a half's controls take about per_kind / 2 windows of each kind: twice that is the pool
    groups, tokenizer_id = control_groups(windows_glob, natural, split, 2 * settings.controls.per_kind)
    tokenizer = attention_scorer.tokenizer()
    controls = build_controls(
        groups, window_size=windowing.window_size, spec=settings.controls,
        vocabulary=tokenizer_vocabulary(tokenizer.tokenizer), tokenizer=tokenizer_id, seed=settings.seed,
    )  # fmt: skip
    if controls.num_rows == 0:
        raise dg.Failure(
            f"no control windows: none of the sampled windows has {windowing.window_size} tokens; "
            "re-window the category with the configured window size"
        )
    from ..scoring.windows_file import score_windows_table

    with attention_scorer.scoring_session() as scorer:
        if models and models != [scorer.fingerprint]:
            raise dg.Failure(
                f"the category's scores come from {', '.join(models)} but the scorer resource "
                f"is {scorer.fingerprint}: controls must be scored by the model that scored the windows"
            )
        scoring_started = time.perf_counter()
        tokens = int(pc.sum(controls.column("n_tokens")).as_py() or 0)
        count = WindowCount(f"{category} controls", "scored", controls.num_rows, tokens)
        log = Throttle(context.log.info)

        def progress(done: int, total: int) -> None:
            count.update(done)
            log(count.line(), force=done == total)

        with TerminalProgress(count.line):
            scored = score_windows_table(controls, scorer, tokenizer.fingerprint, progress=progress)
        scoring_seconds = time.perf_counter() - scoring_started
    control_scores = pa.Table.from_arrays(
        [*scored.columns, *(controls.column(c) for c in CONTROL_COLUMNS)],
        names=[*scored.column_names, *CONTROL_COLUMNS],
    )
    record = diagnose(natural, control_scores, split, settings, summarize, seed_key=category)
    folder = layout.category_dir(SCORER_DIAGNOSTICS, category)
    write_parquet(controls, folder / CONTROLS_FILE)
    write_parquet(control_scores, folder / CONTROL_SCORES_FILE)
    made = {
        "recipe": settings.recipe(),
        "scores_fingerprint": scores_fingerprint(scores_glob),
        "model": scorer.fingerprint,
        "window_size": windowing.window_size,
    }
    record = {"category": category, **record, **made, "fingerprint": f"dia-{digest(made)}"}
    write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", folder / DIAGNOSTICS_FILE)
    context.log.info(f"{category}: {record['advice']}")
    timings = {
        "control_scoring_seconds": round(scoring_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    yield dg.MaterializeResult(metadata=_metadata(record, str(folder)) | timings)
    yield dg.AssetCheckResult(
        check_name=SEPARATION_CHECK,
        passed=bool(record["lds_separates_concatenated"]),
        severity=dg.AssetCheckSeverity.WARN,
        description=record["advice"],
        metadata=_check_metadata(record),
    )
