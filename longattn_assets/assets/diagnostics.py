"""scorer_diagnostics: does the score separate natural windows from negative controls?

Beside longabc_dataset: it reads the category's windows and scores, builds control windows
from them (diagnostics/controls.py), scores those with the same scorer resource and
compares (diagnostics/summary.py). longabc_dataset and longabc_report show the result when
it was made from the scores they use.
"""

import json
import time

import dagster as dg
import pyarrow as pa

from ..diagnostics.controls import CONCATENATED, ControlSpec, build_controls, tokenizer_boundaries
from ..diagnostics.files import (
    CONTROL_SCORES_FILE,
    CONTROLS_FILE,
    DIAGNOSTICS_FILE,
    SCORER_DIAGNOSTICS,
    natural_sample,
    scores_fingerprint,
    source_windows,
)
from ..diagnostics.summary import REPLICATES, SCORES, diagnose, markdown_table
from ..model.tokenizer import ModelTokenizer
from ..partitions import category_partitions
from ..report.diagnostics import diagnostics_plots, separation_markdown
from ..resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from ..selection import checks, duck
from ..selection.select import rank_windows
from ..storage import check_key, write_parquet, write_text
from .selection import CATEGORY_SHARD_FILES, SelectionConfig, current_files, markdown_images

SEPARATION_CHECK = "lds_separates_concatenated"


class DiagnosticsConfig(SelectionConfig):
    """The selection settings to diagnose (as longabc_dataset's) and the size of the controls."""

    controls_per_kind: int = 100
    concatenated_pieces: int = 8
    repeated_passage_fraction: float = 0.125
    natural_windows: int = 2000
    bootstrap_replicates: int = REPLICATES

    def control_spec(self) -> ControlSpec:
        return ControlSpec(
            self.controls_per_kind, self.concatenated_pieces, self.repeated_passage_fraction
        )


def _metadata(record: dict, path: str) -> dict[str, object]:
    numbers: dict[str, object] = {}
    for kind, found in record["separation"].items():
        for score in SCORES:
            numbers[f"{score.replace('-', 'neg_')}_auc_{kind}"] = round(found[score]["auc"], 4)
        numbers[f"share_kept_{kind}"] = round(record["kept_share"][kind], 4)
    return {
        **numbers,
        "ds_du_spearman": round(record["ds_du_spearman"]["natural"], 4),
        "separation": dg.MetadataValue.md(markdown_table(record)),
        # in place in the UI (AUC per control: lds green, ds blue, -du red; 0.5 dashed) ...
        "separation_plot": dg.MetadataValue.md(separation_markdown(record)),
        # ... and every plot at full size, behind "Show Markdown" (the report shows them too)
        "plots": dg.MetadataValue.md(markdown_images(diagnostics_plots(record))),
        "best_heads": dg.MetadataValue.json(record["best_heads"]),
        "advice": record["advice"],
        "control_windows": sum(record["controls"].values()),
        "natural_windows": record["natural_sample"],
        "path": dg.MetadataValue.path(path),
    }


def _controls(
    natural: pa.Table,
    windows_glob: str,
    tokenizer: ModelTokenizer,
    spec: ControlSpec,
    window_size: int,
) -> pa.Table:
    """Controls cut from the first windows of the natural sample (three per control of a kind)."""
    pool = natural.column("data_id").to_pylist()[: 3 * spec.per_kind]
    sources, tokenizer_id = source_windows(windows_glob, pool)
    controls = build_controls(
        sources, window_size=window_size, spec=spec,
        boundaries=tokenizer_boundaries(tokenizer.tokenizer), tokenizer=tokenizer_id,
    )  # fmt: skip
    if controls.num_rows == 0:
        raise dg.Failure(
            f"no control windows: none of the sampled windows has {window_size} tokens; "
            "re-window the category with the configured window size"
        )
    return controls


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
            description="LDS ranks natural windows above concatenations of unrelated documents (AUC interval above 0.5)",
        )
    ],
    description=(
        "Negative controls made from the category's own windows (pieces of different documents, "
        "one passage repeated, lines shuffled), scored by the same scorer: AUC of LDS, DS and -DU "
        "for natural vs each control with bootstrap intervals over documents, per head too, the "
        "ds-du correlation and the share of each control the selection would keep. Controls never "
        "enter the dataset."
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
    score_files = files.scores
    fingerprint = scores_fingerprint(score_files)
    windows_glob, scores_glob = files.windows, files.scores
    settings = config.settings()
    spec = config.control_spec()
    models = sorted(checks.one_model(scores_glob)[1]["models"])
    with duck.connect() as con:
        selection = rank_windows(con, windows_glob, scores_glob, settings)
    natural = natural_sample(windows_glob, scores_glob, config.natural_windows)
    tokenizer = attention_scorer.tokenizer()
    controls = _controls(natural, windows_glob, tokenizer, spec, windowing.window_size)
    from ..scoring.windows_file import score_windows_table

    with attention_scorer.scoring_session() as scorer:
        if models and models != [scorer.fingerprint]:
            raise dg.Failure(
                f"the category's scores come from {', '.join(models)} but the scorer resource "
                f"is {scorer.fingerprint}: controls must be scored by the model that scored the windows"
            )
        scoring_started = time.perf_counter()
        scored = score_windows_table(controls, scorer, tokenizer.fingerprint)
        scoring_seconds = time.perf_counter() - scoring_started
    control_scores = scored.append_column("kind", controls.column("kind")).append_column(
        "doc_id", controls.column("doc_id")
    )
    record = diagnose(
        natural, control_scores, settings, selection,
        seed_key=category, replicates=config.bootstrap_replicates,
    )  # fmt: skip
    folder = layout.category_dir(SCORER_DIAGNOSTICS, category)
    write_parquet(controls, folder / CONTROLS_FILE)
    write_parquet(control_scores, folder / CONTROL_SCORES_FILE)
    record = {
        "category": category,
        **record,
        "scores_fingerprint": fingerprint,
        "model": scorer.fingerprint,
        "window_size": windowing.window_size,
        "control_spec": {
            "per_kind": spec.per_kind,
            "pieces": spec.pieces,
            "passage_fraction": spec.passage_fraction,
        },
    }
    write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", folder / DIAGNOSTICS_FILE)
    context.log.info(f"{category}: {record['advice']}")
    timings = {
        "control_scoring_seconds": round(scoring_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
    }
    yield dg.MaterializeResult(metadata=_metadata(record, str(folder)) | timings)
    found = record["separation"].get(CONCATENATED, {}).get("lds")
    yield dg.AssetCheckResult(
        check_name=SEPARATION_CHECK,
        passed=bool(record["lds_separates_concatenated"]),
        severity=dg.AssetCheckSeverity.WARN,
        description=record["advice"],
        metadata={
            "advice": record["advice"],
            **(
                {
                    "lds_auc": found["auc"],
                    "lds_auc_low": found["low"],
                    "lds_auc_high": found["high"],
                }
                if found
                else {}
            ),
        },
    )
