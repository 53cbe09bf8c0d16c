"""Run the whole pipeline through Dagster on the bundled sample corpus and the embedded model.

Every partition runs in order (a category's ingest, each shard's windows and scores, the
category's selection and report) against a persistent Dagster instance. ``longattn demo``
passes the instance ``$DAGSTER_HOME`` names (the checkout's ``.env`` sets it to the checkout,
the one ``dagster dev`` opens there), so the UI shows the demo's runs; without it the
instance is kept under the data root. One instance describes one data root: an instance
outside the data root (``$DAGSTER_HOME``) records which (``longattn-data-root`` in its
folder) and the demo refuses to record runs of another one there. A rerun materializes
exactly the partitions whose files are missing or stale under the run's settings and
inputs, so its result equals a fresh run's.

Long steps print their progress (windows done, tokens/s, time left) every 20 s, and
runs whose process is gone are ended first, so a killed run never holds the "gpu" pool's
slot the demo's scoring steps wait for (live_runs.py).
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import dagster as dg
import pyarrow.parquet as pq

from . import settings
from .assets.corpus import raw_corpus
from .assets.current import expected_now
from .assets.diagnostics import DiagnosticsConfig, scorer_diagnostics
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
from .diagnostics.controls import ControlSpec
from .diagnostics.files import DIAGNOSTICS_FILE, SCORER_DIAGNOSTICS, current_diagnostics
from .live_runs import DEMO_LOCK_FILE, DEMO_TAG, end_demo_runs, ending_dead_runs
from .partitions import category_partitions, shard_partitions
from .progress import PrintedProgress
from .resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from .selection.exports import SUMMARY_FILE
from .selection.rules import SelectionSettings
from .storage import DataLayout
from .validation import InvalidSetting, UsageError, check_window_fits, check_windows_made
from .windows.chunking import WindowStats

DAGSTER_DIR = ".dagster"
# The data root whose runs an instance records, in the instance's folder.
DATA_ROOT_FILE = "longattn-data-root"
# A lock held for a moment by another process's dead-run check is not a running demo.
LOCK_PATIENCE_S = 2.0
# Written only into an instance folder that has no dagster.yaml yet.
INSTANCE_CONFIG = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Control windows per kind and part of a category: 4 x 16 = 64 windows a category (48 when
# it is too small to calibrate; 176 against the sample's 581 natural windows), against the
# asset's default of 64 per kind (256 windows), to keep the demo's diagnostics under a third
# of its scoring; its intervals and draw spreads are wider.
DEMO_CONTROLS_PER_KIND = 16
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
        if not _lock_within(handle, LOCK_PATIENCE_S):
            say(f"another longattn demo is running with the Dagster instance {instance.root_directory}: waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        dead = end_demo_runs(instance)
        if dead:
            say(f"ended {len(dead)} run(s) of a demo that was killed, and freed their pool slots")
        yield


def _lock_within(handle: IO[str], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


def _instance(root: Path, dagster_home: Path | None) -> dg.DagsterInstance:
    home = dagster_home or root / DAGSTER_DIR
    home.mkdir(parents=True, exist_ok=True)
    if dagster_home is not None:  # one inside the data root moves and is copied with it
        _claim(home, root)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_CONFIG)
    return dg.DagsterInstance.from_config(str(home))


def _claim(home: Path, root: Path) -> None:
    """Record ``root`` as the data root of the instance at ``home``, or refuse another one.

    The UI shows an instance's latest materializations as the files of its data root; runs
    of two data roots in one instance would show files that are not there.
    """
    marker = home / DATA_ROOT_FILE
    recorded = marker.read_text().strip() if marker.is_file() else None
    if recorded is None:
        marker.write_text(f"{root}\n")
    elif Path(recorded) != root:
        raise UsageError(
            f"the Dagster instance {home} holds the runs of the data root {recorded}, not {root}: "
            f"run the demo with the data root {recorded}, or with DAGSTER_HOME set to another folder"
        )


def _selection_is_current(layout: DataLayout, category: str, files: CategoryFiles) -> bool:
    """The dataset and report exist and the dataset was selected, with the default rule, from ``files``."""
    summary = layout.category_dir(LONGABC_DATASET, category) / SUMMARY_FILE
    report = layout.category_file(LONGABC_REPORT, category, REPORT_FILE)
    if not (summary.is_file() and report.is_file()):
        return False
    recorded = json.loads(summary.read_text())
    settings = json.loads(json.dumps(SelectionSettings().as_dict()))
    inputs = CategoryFiles.identity(recorded.get("inputs", {}))
    return (
        recorded.get("settings") == settings
        and "calibration" in recorded  # older datasets record no calibration: made again
        and recorded["calibration"] is None
        and inputs == CategoryFiles.identity(files.as_record())
    )


def _check_windows(
    instance: dg.DagsterInstance, layout: DataLayout, category: str, shards: list[str], window_size: int, label: str
) -> None:
    """A category without any window says why (from its shards' windowing metadata), before
    the diagnostics and the selection would fail on nothing."""
    if any(pq.read_metadata(layout.shard_path(WINDOWED_CHUNKS, category, s)).num_rows for s in shards):
        return
    stats = WindowStats()
    for shard in shards:
        key = str(dg.MultiPartitionKey({"category": category, "shard": shard}))
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(dg.AssetKey(WINDOWED_CHUNKS), asset_partitions=[key]), limit=1
        ).records
        meta = records[0].asset_materialization.metadata if records else {}
        found = {name: int(value.value) for name, value in meta.items() if isinstance(value.value, (int, float))}
        stats.documents += found.get("documents", 0)
        stats.too_short += found.get("documents_too_short", 0)
        stats.sampled_out += found.get("windows_sampled_out", 0)
        stats.longest_document = max(stats.longest_document, found.get("longest_document_tokens", 0))
    check_windows_made(stats, window_size, label, "windowing.sample_fraction", f" in {category}")


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
    window_label: str = "--window-size",
) -> dict[str, Path]:
    """Materialize every partition that is missing or stale; return each category's report path.

    Runs are recorded in the instance at ``dagster_home`` (default: ``<data root>/.dagster``).
    A window size the model was not trained for, or one that gives no window, is refused
    naming ``window_label``.
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
    scorer: AttentionScorer = resources["attention_scorer"]
    bos = scorer.add_bos and scorer.tokenizer().bos_token_id is not None
    check_window_fits(window_size, scorer.source(), bos, window_label)  # before any work
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

    # one demo at a time per instance; runs of killed processes ended; progress printed
    with _demo_lock(instance, say), ending_dead_runs(instance), PrintedProgress(say):
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
            _check_windows(instance, layout, category, shards, window_size, window_label)
            files = category_files(layout, category, shards, expected)
            diagnostics = layout.category_file(SCORER_DIAGNOSTICS, category, DIAGNOSTICS_FILE)
            # current only when made from these scores with exactly the demo's settings
            config = {"controls_per_kind": controls_per_kind}
            wanted = DiagnosticsConfig(**config).diagnostics_settings()
            if current_diagnostics(layout, category, files.scores, wanted) is None:
                label = f"scorer diagnostics ({controls_per_kind} controls per kind, the asset's default is {ControlSpec.per_kind})"
                step([scorer_diagnostics], category, label, {SCORER_DIAGNOSTICS: {"config": config}})
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
