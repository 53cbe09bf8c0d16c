"""Run the whole pipeline through Dagster on the bundled sample corpus and the embedded model.

Every partition runs in order (a category's ingest, each shard's windows and scores, the
category's selection and report) against a persistent Dagster instance, so a second run
skips what is already materialized. ``longattn demo`` passes the instance ``$DAGSTER_HOME``
names (the checkout's ``.env`` sets it to the checkout, the one ``dagster dev`` opens there),
so the UI shows the demo's runs; without it the instance is kept under the data root.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from . import settings
from .assets.corpus import raw_corpus
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
from .partitions import category_partitions, shard_partitions
from .resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from .storage import DataLayout

DAGSTER_DIR = ".dagster"
# Written only into an instance folder that has no dagster.yaml yet.
INSTANCE_CONFIG = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SUMMARY_KEYS = {
    "raw_corpus": ("documents", "rejects"),
    "windowed_chunks": ("windows",),
    "scored_chunks": ("tokens_per_s",),
    "longabc_dataset": ("kept", "tokens_kept"),
}


def _instance(root: Path, dagster_home: Path | None) -> dg.DagsterInstance:
    home = dagster_home or root / DAGSTER_DIR
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
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
    dagster_home: Path | None = None,
) -> dict[str, Path]:
    """Materialize every partition that is not done yet; return each category's report path.

    Runs are recorded in the instance at ``dagster_home`` (default: ``<data root>/.dagster``).
    """
    root = data_root.expanduser().absolute()
    layout = DataLayout(root)
    resources = {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(input_dir)),
        "windowing": Windowing(window_size=window_size),
        "attention_scorer": AttentionScorer(device=device),
    }
    instance = _instance(root, dagster_home)

    def step(selection: list, partition: str | dg.MultiPartitionKey, label: str) -> None:
        started = time.perf_counter()
        result = dg.materialize(
            assets,
            selection=selection,
            partition_key=partition,
            resources=resources,
            instance=instance,
            run_config=QUIET,
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
