"""Run the whole pipeline through Dagster on the bundled sample corpus and the embedded model.

Every partition runs in order (a category's ingest, each shard's windows and scores, the
category's selection and report) against a persistent Dagster instance kept under the
data root, so a second run skips what is already materialized and `dagster dev` with
``DAGSTER_HOME=<data root>/.dagster`` shows the history.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from . import settings
from .assets.corpus import raw_corpus
from .assets.diagnostics import scorer_diagnostics
from .assets.scoring import scored_chunks
from .assets.selection import (
    LONGABC_DATASET,
    LONGABC_REPORT,
    REPORT_FILE,
    longabc_dataset,
    longabc_report,
)
from .assets.windows import windowed_chunks
from .definitions import assets
from .diagnostics.files import DIAGNOSTICS_FILE, SCORER_DIAGNOSTICS
from .partitions import category_partitions, shard_partitions
from .resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from .storage import DataLayout

DAGSTER_DIR = ".dagster"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Control windows per kind and category: a fraction of the demo's scoring time (the
# asset's default, 100, is for corpora far larger than the bundled sample).
DEMO_CONTROLS_PER_KIND = 32
SUMMARY_KEYS = {
    "raw_corpus": ("documents", "rejects"),
    "windowed_chunks": ("windows",),
    "scored_chunks": ("tokens_per_s",),
    "scorer_diagnostics": ("control_windows",),
    "longabc_dataset": ("kept", "tokens_kept"),
}


def _instance(root: Path) -> dg.DagsterInstance:
    home = root / DAGSTER_DIR
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


def _done(
    instance: dg.DagsterInstance, asset: dg.AssetsDefinition, partition: str, files: list[Path]
) -> bool:
    materialized = instance.get_materialized_partitions(asset.key)
    return partition in materialized and all(f.is_file() for f in files)


def run_demo(
    data_root: Path,
    *,
    window_size: int = settings.DEMO_WINDOW_SIZE,
    input_dir: Path = settings.SAMPLE_CORPUS_DIR,
    device: str = "auto",
    categories: list[str] | None = None,
    say: Callable[[str], None] = print,
    controls_per_kind: int = DEMO_CONTROLS_PER_KIND,
) -> dict[str, Path]:
    """Materialize every partition that is not done yet; return each category's report path."""
    root = data_root.expanduser().absolute()
    layout = DataLayout(root)
    resources = {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(input_dir)),
        "windowing": Windowing(window_size=window_size),
        "attention_scorer": AttentionScorer(device=device),
    }
    instance = _instance(root)

    def step(
        selection: list, partition: str | dg.MultiPartitionKey, label: str, ops: dict | None = None
    ) -> None:
        started = time.perf_counter()
        result = dg.materialize(
            assets,
            selection=selection,
            partition_key=partition,
            resources=resources,
            instance=instance,
            run_config=QUIET | ({"ops": ops} if ops else {}),
        )
        counts: dict[str, str] = {}
        for event in result.get_asset_materialization_events():
            meta = event.materialization.metadata
            for key in SUMMARY_KEYS.get(event.asset_key.to_user_string(), ()):
                if key in meta:
                    counts[key] = f"{meta[key].value:,.0f}"
        summary = " ".join(f"{k}={v}" for k, v in counts.items())
        say(f"  {label}: {time.perf_counter() - started:.1f}s  {summary}")

    reports: dict[str, Path] = {}
    shards = shard_partitions.get_partition_keys()
    for category in categories or category_partitions.get_partition_keys():
        say(f"[{category}]")
        raw_files = [layout.shard_path("raw_corpus", category, s) for s in shards]
        if _done(instance, raw_corpus, category, raw_files):
            say("  raw_corpus: already materialized")
        else:
            step([raw_corpus], category, "raw_corpus")
        for shard in shards:
            key = dg.MultiPartitionKey({"category": category, "shard": shard})
            label = f"{category}|{shard} windows+scores"
            files = [
                layout.shard_path("windowed_chunks", category, shard),
                layout.shard_path("scored_chunks", category, shard),
            ]
            if _done(instance, windowed_chunks, key, files[:1]) and _done(
                instance, scored_chunks, key, files[1:]
            ):
                say(f"  {label}: already materialized")
            else:
                step([windowed_chunks, scored_chunks], key, label)
        diagnostics = layout.category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE)
        if _done(instance, scorer_diagnostics, category, [diagnostics]):
            say("  scorer diagnostics: already materialized")
        else:
            config = {"controls_per_kind": controls_per_kind}
            step([scorer_diagnostics], category, "scorer diagnostics", {SCORER_DIAGNOSTICS: {"config": config}})
        say(f"  {json.loads(diagnostics.read_text())['advice']}")
        report = layout.category_file(LONGABC_REPORT, category, REPORT_FILE)
        dataset = layout.category_dir(LONGABC_DATASET, category)
        if _done(instance, longabc_dataset, category, [dataset / "selected.parquet"]) and _done(
            instance, longabc_report, category, [report]
        ):
            say("  selection+report: already materialized")
        else:
            step([longabc_dataset, longabc_report], category, "selection+report")
        say(f"  dataset: {dataset}\n  report:  {report}")
        reports[category] = report
    return reports
