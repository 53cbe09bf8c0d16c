"""Ingest one category's input folder into raw_corpus shards plus a rejects file.

The input location is a local folder or a URL (:mod:`.sources`); workers open and stream
their files themselves, local or remote alike.

Files are read, validated and hashed by worker processes (each file, or each range of a
large plain JSON-lines file, by one worker, the largest first), under one memory budget (:mod:`.budget`); then the shards are sorted and
written by the same number of workers (:mod:`.sharding`). The files written depend only on
the input files and the shard count: not on the workers, the budget or the timing.

While a file is read its bytes are hashed (sha256, :class:`.input_file.ContentDigest`; a
file cut into ranges is hashed while the ranges are planned, which reads it anyway), and
the hashes go into the category's commit record with each file's version, so a later
check sees an edit whatever happened to the file's mtime. The shards and the rejects file
are written under temporary names and become current together in one commit
(:class:`~longattn_assets.storage.PartitionCommit`), which also deletes the shard files of
an earlier shard count.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..consistency import (
    RAW_CORPUS,
    input_record,
    inputs_fingerprint,
    obsolete_shard_files,
    raw_manifest,
    raw_provenance,
    raw_recipe,
)
from ..provenance import METADATA_KEY, Provenance
from ..storage import DataLayout, PartitionCommit, shard_key, work_dir
from .budget import DEFAULT_BUDGET, MemoryPlan, parse_size
from .input_file import DEFAULT_TEXT_FIELDS, ContentDigest, InputFile, files_fingerprint
from .memory import release_memory, use_system_allocator
from .pool import WorkerPool
from .progress import READING, WRITING, IngestProgress
from .ranges import RANGE_BYTES, LineRange, can_split, line_ranges
from .records import file_problem, read_file
from .rejects import merge_reject_runs
from .sharding import IngestStats, RouterResult, ShardResult, ShardRouter, write_shard
from .sources import InputLocation

REJECTS = "rejects"
REJECTS_FILE = "raw_corpus.jsonl"
DEFAULT_PLAN = MemoryPlan.for_budget(parse_size(DEFAULT_BUDGET), 1)


class MissingInputError(FileNotFoundError):
    """A category with no input folder or no files in it."""


def input_files(input_dir: str | Path, category: str) -> list[InputFile]:
    """The files of ``category`` under ``input_dir`` (a local folder or a URL); raises
    MissingInputError when there are none."""
    where = InputLocation(input_dir)
    files = where.files(category)
    if not files:
        folders = where.folders()
        if category in folders:
            raise MissingInputError(f"input folder {where.category_location(category)} holds no files")
        raise MissingInputError(
            f"no input folder for category {category!r}: expected {where.category_location(category)} "
            f"(folders found under {where.shown}: {folders or 'none'})"
        )
    return files


def unconfigured_folders(input_dir: str | Path, categories: list[str]) -> list[str]:
    """Sub-folders of the input dir that no configured category reads: said, never silently skipped."""
    return [name for name in InputLocation(input_dir).folders() if name not in categories]


def input_fingerprint(
    input_dir: str | Path, category: str, fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS
) -> str:
    """Cheap fingerprint of the files an ingest of ``category`` reads now (names, sizes,
    versions): it changes whenever a file may have; their contents decide (consistency.py)."""
    return files_fingerprint(input_files(input_dir, category), fields)


@dataclass(frozen=True)
class _ReadTask:
    """A file to read, or one range of lines of it; ``index``: the file's."""

    index: int
    file: InputFile
    span: LineRange | None = None

    @property
    def size(self) -> int:
        return self.file.size if self.span is None else self.span.end - self.span.start


@dataclass(frozen=True)
class _ReadConfig:
    num_shards: int
    scratch: Path
    spill_bytes: int
    fields: tuple[str, ...]  # where a row's text is


class _ReadWorker:
    """Reads whole files (or ranges) into its shard router; reports each task when done, with
    the content hash of a file it read whole."""

    def __init__(self, config: _ReadConfig):
        use_system_allocator()
        self.router = ShardRouter(config.num_shards, config.scratch, f"r{os.getpid()}", config.spill_bytes)
        self.fields = config.fields

    def handle(self, task: _ReadTask) -> tuple[_ReadTask, str | None]:
        digest = ContentDigest() if task.span is None and task.file.is_local else None
        for item in read_file(task.file, fields=self.fields, span=task.span, digest=digest):
            self.router.add(item)
        return task, digest.hexdigest(task.file) if digest else None

    def finish(self) -> RouterResult:
        return self.router.finish()


@dataclass(frozen=True)
class RawStamp:
    """The provenance footer of one raw shard, given the fingerprint of its documents."""

    category: str
    shard: str
    num_shards: int
    fields: tuple[str, ...]
    input_files: str

    def record(self, documents: str) -> Provenance:
        return raw_provenance(self.category, self.shard, self.num_shards, self.fields, documents, self.input_files)

    def __call__(self, documents: str) -> dict[bytes, bytes]:
        return {METADATA_KEY: self.record(documents).to_json().encode()}


@dataclass(frozen=True)
class _WriteTask:
    shard: int
    runs: list[tuple[Path, int]]
    path: Path
    stamp: RawStamp
    copy_runs: list[Path]


class _WriteWorker:
    """Merges one shard's runs into its file per task."""

    def __init__(self, scratch: Path, bucket_bytes: int):
        use_system_allocator()
        release_memory()  # what reading freed
        self.scratch, self.bucket_bytes = scratch, bucket_bytes

    def handle(self, task: _WriteTask) -> tuple[int, ShardResult]:
        name = f"w{task.shard:05d}"
        result = write_shard(task.runs, task.path, self.bucket_bytes, self.scratch, name, task.stamp, task.copy_runs)
        return task.shard, result

    def finish(self) -> None:
        return None


class _Tracker:
    """Counts what is done and hands progress snapshots to the caller."""

    def __init__(self, category: str, tasks: list[_ReadTask], num_shards: int, report: Callable[[IngestProgress], None] | None):
        self.category, self.report = category, report
        self.hashes: dict[int, str | None] = {}  # a file's content hash, by index
        self.ranges_left = Counter(t.index for t in tasks)  # a file is read once all its ranges are
        self.files_total, self.bytes_total = len(self.ranges_left), sum(t.size for t in tasks)
        self.files_done = self.bytes_done = self.shards_done = 0
        self.num_shards = num_shards
        self.started = self.step_started = time.perf_counter()
        self.step = READING
        self.shards: dict[int, ShardResult] = {}

    def file_read(self, done: tuple[_ReadTask, str | None]) -> None:
        task, sha256 = done
        if task.span is None:
            self.hashes[task.index] = sha256
        self.ranges_left[task.index] -= 1
        self.files_done += self.ranges_left[task.index] == 0
        self.bytes_done += task.size
        self._report()

    def start_writing(self) -> None:
        self.step, self.step_started = WRITING, time.perf_counter()
        self._report()

    def shard_written(self, result: tuple[int, ShardResult]) -> None:
        self.shards[result[0]] = result[1]
        self.shards_done += 1
        self._report()

    def snapshot(self) -> IngestProgress:
        now = time.perf_counter()
        return IngestProgress(
            self.category, self.step, self.files_done, self.files_total, self.bytes_done, self.bytes_total,
            self.shards_done, self.num_shards, now - self.started, now - self.step_started,
        )  # fmt: skip

    def _report(self) -> None:
        if self.report:
            self.report(self.snapshot())


def _read_tasks(files: list[InputFile], range_bytes: int | None) -> tuple[list[_ReadTask], dict[int, str | None]]:
    """One task per file; with ``range_bytes``, one per range of a large plain JSON-lines file.
    Also the content hashes of the files cut into ranges (by index), computed while cutting."""
    tasks, hashes = [], {}
    for index, file in enumerate(files):
        spans = None
        if range_bytes is not None and can_split(file):  # a local plain JSON-lines file
            if file_problem(Path(file.url), Path(file.boundary) if file.boundary else None) is None:
                digest = ContentDigest()
                digest.readable = True
                spans = line_ranges(file, range_bytes, digest)
                if spans is not None:
                    hashes[index] = digest.hexdigest(file)
        tasks += [_ReadTask(index, file)] if spans is None else [_ReadTask(index, file, span) for span in spans]
    return tasks, hashes


def ingest_category(
    input_dir: str | Path,
    category: str,
    layout: DataLayout,
    num_shards: int,
    progress: Callable[[IngestProgress], None] | None = None,
    plan: MemoryPlan = DEFAULT_PLAN,
    fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS,
    range_bytes: int = RANGE_BYTES,
) -> IngestStats:
    """Read every file of ``input_dir/category`` (a local folder or a URL) and write its
    documents into shards; a row's text is the first of ``fields`` it has.

    ``plan.workers`` processes read the files and then write the shards, within ``plan``'s
    memory budget all together. With several workers, a large plain JSON-lines file is
    read as ranges of about ``range_bytes`` (:mod:`.ranges`), so a few huge files still
    keep every worker busy; what is written is the same either way.

    The shards and the rejects file become current in one commit at the end (the record
    ``raw_corpus/category=C/_manifest.json``, naming the input files read with their
    content hashes); a run killed before it leaves the category uncommitted.
    """
    files = input_files(input_dir, category)
    tasks, hashes = _read_tasks(files, range_bytes if plan.workers > 1 else None)
    tracker = _Tracker(category, tasks, num_shards, progress)
    tracker.hashes.update(hashes)
    processes = max(1, min(plan.workers, max(len(tasks), num_shards)))
    keys = [shard_key(shard) for shard in range(num_shards)]
    rejects_path = layout.category_file(REJECTS, category, REJECTS_FILE)
    with (
        work_dir(layout.root / ".work", "ingest") as tmp,
        WorkerPool(processes) as pool,
        PartitionCommit(layout.manifest_path(RAW_CORPUS, category)) as commit,
    ):
        scratch = Path(tmp)
        routed: list[RouterResult] = pool.run(
            partial(_ReadWorker, _ReadConfig(num_shards, scratch, plan.spill_bytes, fields)),
            sorted(tasks, key=lambda t: (-t.size, t.index, t.span.start if t.span else 0)),
            tracker.file_read,
        )
        inputs = [input_record(file, tracker.hashes.get(index)) for index, file in enumerate(files)]
        stamps = [RawStamp(category, key, num_shards, fields, inputs_fingerprint(inputs, fields)) for key in keys]
        staged = [commit.stage(layout.shard_path(RAW_CORPUS, category, key)) for key in keys]
        runs = {shard: sorted(run for r in routed for run in r.runs.get(shard, [])) for shard in range(num_shards)}
        writes = [
            _WriteTask(
                shard,
                runs[shard],
                staged[shard],
                stamps[shard],
                sorted(path for r in routed for path in r.copy_runs.get(shard, [])),
            )
            for shard in sorted(runs, key=lambda s: (-sum(size for _, size in runs[s]), s))
        ]
        tracker.start_writing()
        pool.run(partial(_WriteWorker, scratch, plan.bucket_bytes), writes, tracker.shard_written)
        shards = [tracker.shards[shard] for shard in range(num_shards)]
        reject_runs = sorted([p for r in routed for p in r.reject_runs] + [p for s in shards for p in s.reject_runs])
        reasons = merge_reject_runs(reject_runs, commit.stage(rejects_path))
        obsolete = obsolete_shard_files(layout, category, keys)
        commit.remove(obsolete)
        fingerprints = {key: stamps[i].record(shards[i].fingerprint).fingerprint for i, key in enumerate(keys)}
        rejects = rejects_path.relative_to(layout.root).as_posix()
        commit.commit(raw_manifest(category, raw_recipe(num_shards, fields), fingerprints, rejects, inputs))
    return IngestStats(
        documents=sum(s.documents for s in shards),
        rejects=sum(reasons.values()),
        duplicates=sum(s.duplicates for s in shards) + sum(r.duplicates for r in routed),
        characters=sum(s.characters for s in shards),
        seconds=time.perf_counter() - tracker.started,
        files=len(files),
        input_bytes=tracker.bytes_total,
        workers=plan.workers,
        memory_budget=plan.budget,
        runs=sum(len(r) for r in runs.values()),
        spilled_bytes=sum(r.spilled_bytes for r in routed),
        reject_reasons=reasons,
        shard_documents={shard_key(i): s.documents for i, s in enumerate(shards)},
        obsolete_files=[str(path) for path in obsolete],
        input_files=inputs_fingerprint(inputs, fields),
    )
