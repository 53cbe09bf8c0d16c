"""The data root: Hive-style paths, key validation and atomic writes.

Layout: ``<root>/<asset>/category=<C>/shard=<S>.parquet`` (sharded assets) or
``<root>/<asset>/category=<C>/<name>`` (per-category files), so DuckDB and Polars read a
whole category with one glob. Every file is written under a temporary name in the same
folder and renamed into place, so a reader never sees a partial file; the files of a
partition that spans several become current together (:class:`PartitionCommit`), under a
record named ``_manifest.json`` that no ``*.parquet`` glob matches.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TMP_PREFIX = ".tmp-"
MANIFEST_FILE = "_manifest.json"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class UnsafeKeyError(ValueError):
    """A category, shard or asset name that could escape the data root."""


def check_key(kind: str, key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key:
        raise UnsafeKeyError(
            f"{kind} key {key!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, and no '..'"
        )
    return key


def shard_key(index: int) -> str:
    return f"{index:05d}"


class DataLayout:
    """Where each asset's files live under one data root."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().absolute()

    def category_dir(self, asset: str, category: str) -> Path:
        return self.root / check_key("asset", asset) / f"category={check_key('category', category)}"

    def shard_path(self, asset: str, category: str, shard: str) -> Path:
        return self.category_dir(asset, category) / f"shard={check_key('shard', shard)}.parquet"

    def category_file(self, asset: str, category: str, name: str) -> Path:
        return self.category_dir(asset, category) / check_key("file", name)

    def manifest_path(self, asset: str, category: str) -> Path:
        """The commit record of a partition of ``asset`` that spans several files."""
        return self.category_dir(asset, category) / MANIFEST_FILE

    def shard_glob(self, asset: str, category: str) -> str:
        return str(self.category_dir(asset, category) / "shard=*.parquet")

    def shard_paths(self, asset: str, category: str) -> list[Path]:
        folder = self.category_dir(asset, category)
        return sorted(folder.glob("shard=*.parquet")) if folder.is_dir() else []


# Temporary names carry the writer's host and pid, so a later writer can tell the leftovers
# of a killed one (SIGKILL and the OOM killer skip every cleanup) from a live writer's file.
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=3).hexdigest()


def owner_tag() -> str:
    """``<host hash>-<pid>`` of this process, as written into temporary names."""
    return f"{_HOST}-{os.getpid()}"


def owner_is_gone(tag: str) -> bool:
    """True when ``tag`` names a process of this host that no longer runs."""
    host, _, pid = tag.partition("-")
    if host != _HOST or not pid.isdigit():
        return False  # another host's writer (shared storage) or not one of our names
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete temporaries of ``path`` left by dead writers of this host; return them."""
    removed = []
    for tmp in path.parent.glob(f"{TMP_PREFIX}{glob.escape(path.name)}.*"):
        parts = tmp.name[len(TMP_PREFIX) + len(path.name) + 1 :].split(".")
        if len(parts) == 2 and owner_is_gone(parts[0]):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def work_dir(parent: Path, prefix: str) -> tempfile.TemporaryDirectory:
    """A scratch folder ``<parent>/<prefix>-<owner>-*``; dead writers' ones are removed first."""
    parent.mkdir(parents=True, exist_ok=True)
    for folder in parent.glob(f"{glob.escape(prefix)}-*"):
        tag = "-".join(folder.name[len(prefix) + 1 :].split("-")[:2])
        if folder.is_dir() and owner_is_gone(tag):
            shutil.rmtree(folder, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{prefix}-{owner_tag()}-", dir=parent)


def temporary_sibling(path: Path) -> Path:
    remove_stale_temporaries(path)
    return path.parent / f"{TMP_PREFIX}{path.name}.{owner_tag()}.{uuid.uuid4().hex[:8]}"


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except OSError as exc:
        if exc.errno in _DISK_FULL:  # pyarrow's message names no file: say which one
            raise OSError(exc.errno, f"no space left to write {final} (nothing was put in its place): {exc}") from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(
    table: pa.Table,
    path: str | os.PathLike[str],
    footer: Mapping[bytes, bytes] | None = None,
    **kwargs,
) -> Path:
    """Write ``table`` atomically; deterministic bytes for the same table.

    ``footer``: key-value pairs for the file's footer only (as a streamed writer adds a
    provenance record just before it closes the file).
    """
    options = {"compression": "zstd", "write_statistics": True} | kwargs
    with atomic_path(path) as tmp:
        if footer is None:
            pq.write_table(table, tmp, **options)
        else:
            with pq.ParquetWriter(tmp, table.schema, **options) as writer:
                writer.write_table(table)
                writer.add_key_value_metadata(dict(footer))
    return Path(path)


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(data: bytes, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# Called with a description at every step of a partition's commit (each rename, removal and
# the record); the reliability tests inject a fault (an exception) at each of them.
COMMIT_STEPS: list[Callable[[str], None]] = []


def _step(description: str) -> None:
    for hook in COMMIT_STEPS:
        hook(description)


def _fsync_dir(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some filesystems cannot sync a folder; the renames are still atomic
    finally:
        os.close(handle)


class PartitionCommit:
    """The files of one partition, made current together by one atomic step.

    A partition that spans several files (raw_corpus: its shards and its rejects file) is
    written as follows: every file is first written in full under a temporary name
    (:meth:`stage`); then :meth:`commit` removes the partition's record (from here on
    readers and currency checks take the partition as not committed), renames each file
    into place, deletes the files the partition no longer has (:meth:`remove`), and writes
    the record atomically (the commit). A kill at any point leaves either the old record
    with the old files or no record, never a record with files it does not describe; a
    reader that trusts only committed partitions, and a rerun of what has no record, so
    always end at the state of an uninterrupted run, with no obsolete file for a glob to
    find. A failure before the commit removes what was staged.
    """

    def __init__(self, record: Path):
        self.record = record
        self._staged: list[tuple[Path, Path]] = []
        self._obsolete: list[Path] = []

    def __enter__(self) -> PartitionCommit:
        return self

    def __exit__(self, *_: object) -> None:
        for tmp, _final in self._staged:
            tmp.unlink(missing_ok=True)

    def stage(self, final: Path) -> Path:
        """A temporary path beside ``final`` to write it to; renamed into place by :meth:`commit`."""
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(final)
        self._staged.append((tmp, final))
        return tmp

    def remove(self, paths: Iterable[Path]) -> None:
        """Files (or folders) to delete before the commit: those the partition no longer has."""
        self._obsolete.extend(paths)

    def commit(self, record: str) -> None:
        for tmp, _final in self._staged:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        _step(f"remove the record {self.record.name}")
        self.record.unlink(missing_ok=True)
        _fsync_dir(self.record.parent)
        for tmp, final in self._staged:
            _step(f"rename {final.name} into place")
            os.replace(tmp, final)
        for path in self._obsolete:
            _step(f"remove {path.name}")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for folder in {final.parent for _tmp, final in self._staged} | {p.parent for p in self._obsolete}:
            _fsync_dir(folder)
        self._staged = []
        _step(f"write the record {self.record.name}")
        write_text(record, self.record)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty folder beside ``path``; if the block succeeds it replaces ``path`` whole.

    For outputs that are several files read together (MDS shards and their index, a
    Megatron .bin with its .idx): a reader finds the old folder, the new one, or (after a
    crash between the two renames) none, never a mix. The staging and the replaced
    folders carry the writer's owner tag, so a later writer removes those of dead ones.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{TMP_PREFIX}{final.name}."
    for leftover in final.parent.glob(f"{glob.escape(prefix)}*.dir"):
        if leftover.is_dir() and owner_is_gone(leftover.name[len(prefix) :].split(".")[0]):
            shutil.rmtree(leftover, ignore_errors=True)
    staging = final.parent / f"{prefix}{owner_tag()}.{uuid.uuid4().hex[:8]}.dir"
    replaced = final.parent / f"{prefix}{owner_tag()}.{uuid.uuid4().hex[:8]}.old.dir"
    staging.mkdir()
    try:
        yield staging
        for file in sorted(p for p in staging.rglob("*") if p.is_file()):
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():
            os.replace(final, replaced)
        os.replace(staging, final)
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise OSError(exc.errno, f"no space left to write {final} (nothing was put in its place): {exc}") from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(replaced, ignore_errors=True)
