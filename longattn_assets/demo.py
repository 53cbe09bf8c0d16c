"""Run the whole pipeline through Dagster on the bundled sample corpus and the embedded model.

Every partition runs in order (a category's ingest, each shard's windows and scores, the
category's selection and report) against a persistent Dagster instance. ``longattn demo``
passes the instance ``$DAGSTER_HOME`` names (the checkout's ``.env`` sets it to the checkout,
the one ``dagster dev`` opens there), so the UI shows the demo's runs; without it the
instance is kept under the data root. A rerun materializes exactly the partitions whose
files are missing or stale under the run's settings and inputs, so its result equals a
fresh run's.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from . import settings
from .assets.corpus import raw_corpus
from .assets.current import expected_now
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
from .consistency import (
    RAW_CORPUS,
    SCORED_CHUNKS,
    WINDOWED_CHUNKS,
    CategoryFiles,
    category_files,
    shard_states,
)
from .corpus.ingest import input_files
from .definitions import assets
from .diagnostics.files import DIAGNOSTICS_FILE, SCORER_DIAGNOSTICS, current_diagnostics
from .partitions import category_partitions, shard_partitions
from .resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from .selection.exports import SUMMARY_FILE
from .selection.rules import SelectionSettings
from .storage import DataLayout
from .validation import InvalidSetting

DAGSTER_DIR = ".dagster"
# Runs the demo launches carry this tag; a file in the instance folder is its lock.
DEMO_TAG = "longattn/demo"
DEMO_LOCK_FILE = "longattn-demo.lock"
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# Written only into an instance folder that has no dagster.yaml yet.
INSTANCE_CONFIG = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Control windows per kind and category: a fraction of the demo's scoring time (the
# asset's default, 100, is for corpora far larger than the bundled sample).
DEMO_CONTROLS_PER_KIND = 32
RESOURCE_KEYS = ("data_root", "corpus_input", "windowing", "attention_scorer")
SUMMARY_KEYS = {
    "raw_corpus": ("documents", "rejects"),
    "windowed_chunks": ("windows",),
    "scored_chunks": ("tokens_per_s",),
    "scorer_diagnostics": ("control_windows",),
    "longabc_dataset": ("kept", "tokens_kept"),
}


@contextmanager
def _demo_lock(instance: dg.DagsterInstance, say: Callable[[str], None]) -> Iterator[None]:
    """Hold the instance's demo lock; then end the runs a killed demo left unfinished.

    A demo's runs execute in its own process. SIGKILLed, it leaves its run STARTED with its
    scoring step's slot of the "gpu" pool claimed, and without a daemon nothing ends that
    run: the next demo's scoring step would wait for the slot forever. The lock (an flock,
    which the system releases when its holder dies) tells a live demo from a dead one: once
    it is held, every unfinished run tagged as a demo's belongs to a dead process, so it is
    marked failed and its slots are freed.
    """
    path = Path(instance.root_directory) / DEMO_LOCK_FILE
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another longattn demo is running with the Dagster instance {instance.root_directory}: waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        dead = instance.get_runs(dg.RunsFilter(tags={DEMO_TAG: "true"}, statuses=UNFINISHED))
        for run in dead:
            instance.report_run_failed(run, "the longattn demo running it ended without finishing (killed)")
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        if dead:
            say(f"ended {len(dead)} run(s) of a demo that was killed, and freed their pool slots")
        yield


def _instance(root: Path, dagster_home: Path | None) -> dg.DagsterInstance:
    home = dagster_home or root / DAGSTER_DIR
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
    return dg.DagsterInstance.from_config(str(home))


def _selection_is_current(layout: DataLayout, category: str, files: CategoryFiles) -> bool:
    """The dataset and report exist and the dataset was selected, with the default rule, from ``files``."""
    summary = layout.category_dir(LONGABC_DATASET, category) / SUMMARY_FILE
    report = layout.category_file(LONGABC_REPORT, category, REPORT_FILE)
    if not (summary.is_file() and report.is_file()):
        return False
    recorded = json.loads(summary.read_text())
    settings = json.loads(json.dumps(SelectionSettings().as_dict()))
    inputs = CategoryFiles.identity(recorded.get("inputs", {}))
    return recorded.get("settings") == settings and inputs == CategoryFiles.identity(files.as_record())


def run_demo(
    data_root: Path,
    *,
    window_size: int = settings.DEMO_WINDOW_SIZE,
    input_dir: str | Path = settings.SAMPLE_CORPUS_DIR,
    device: str = "auto",
    categories: list[str] | None = None,
    say: Callable[[str], None] = print,
    dagster_home: Path | None = None,
    controls_per_kind: int = DEMO_CONTROLS_PER_KIND,
) -> dict[str, Path]:
    """Materialize every partition that is missing or stale; return each category's report path.

    Runs are recorded in the instance at ``dagster_home`` (default: ``<data root>/.dagster``).
    """
    configured = category_partitions.get_partition_keys()
    categories = categories or configured
    unknown = [c for c in categories if c not in configured]
    if unknown:
        raise InvalidSetting("--categories", ",".join(unknown), "configured categories: " + ", ".join(configured))
    for category in categories:
        input_files(input_dir, category)  # a missing input folder is said before any run starts
    root = data_root.expanduser().absolute()
    layout = DataLayout(root)
    resources = {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(input_dir)),
        "windowing": Windowing(window_size=window_size),
        "attention_scorer": AttentionScorer(device=device),
    }
    instance = _instance(root, dagster_home)
    by_name = {WINDOWED_CHUNKS: windowed_chunks, SCORED_CHUNKS: scored_chunks}

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
            tags={DEMO_TAG: "true"},
        )
        counts: dict[str, str] = {}
        for event in result.get_asset_materialization_events():
            meta = event.materialization.metadata
            for key in SUMMARY_KEYS.get(event.asset_key.to_user_string(), ()):
                if key in meta:
                    counts[key] = f"{meta[key].value:,.0f}"
        summary = " ".join(f"{k}={v}" for k, v in counts.items())
        say(f"  {label}: {time.perf_counter() - started:.1f}s  {summary}")

    with _demo_lock(instance, say):  # one demo at a time per instance; a killed one's runs ended
        reports: dict[str, Path] = {}
        shards = shard_partitions.get_partition_keys()
        for category in categories:
            # Everything below is decided from the files' provenance (consistency.py), so a
            # rerun after any change of settings or inputs redoes exactly what is stale.
            say(f"[{category}]")
            # what the assets check, from the same resources (assets/current.py)
            expected = expected_now(category, *(resources[k] for k in RESOURCE_KEYS), scores=True)
            states = shard_states(layout, category, shards, expected)
            if any(RAW_CORPUS in state.stale for state in states):
                step([raw_corpus], category, "raw_corpus")
                states = shard_states(layout, category, shards, expected)
            else:
                say("  raw_corpus: up to date")
            for state in states:
                if state.stale:
                    key = dg.MultiPartitionKey({"category": category, "shard": state.shard})
                    label = "windows+scores" if WINDOWED_CHUNKS in state.stale else "scores"
                    step([by_name[name] for name in state.stale], key, f"{category}|{state.shard} {label}")
                else:
                    say(f"  {category}|{state.shard} windows+scores: up to date")
            files = category_files(layout, category, shards, expected)
            diagnostics = layout.category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE)
            if current_diagnostics(layout, category, files.scores) is None:
                config = {"controls_per_kind": controls_per_kind}
                step([scorer_diagnostics], category, "scorer diagnostics", {SCORER_DIAGNOSTICS: {"config": config}})
            else:
                say("  scorer diagnostics: up to date")
            say(f"  {json.loads(diagnostics.read_text())['advice']}")
            if not _selection_is_current(layout, category, files):
                step([longabc_dataset, longabc_report], category, "selection+report")
            else:
                say("  selection+report: up to date")
            dataset = layout.category_dir(LONGABC_DATASET, category)
            report = layout.category_file(LONGABC_REPORT, category, REPORT_FILE)
            say(f"  dataset: {dataset}\n  report:  {report}")
            reports[category] = report
        return reports
