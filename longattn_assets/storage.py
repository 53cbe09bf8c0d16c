"""The data root: Hive-style paths, key validation and atomic writes.

Layout: ``<root>/<asset>/category=<C>/shard=<S>.parquet`` (sharded assets) or
``<root>/<asset>/category=<C>/<name>`` (per-category files), so DuckDB and Polars read a
whole category with one glob. Every file is written under a temporary name in the same
folder and renamed into place, so a reader never sees a partial file.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TMP_PREFIX = ".tmp-"


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

    def shard_glob(self, asset: str, category: str) -> str:
        return str(self.category_dir(asset, category) / "shard=*.parquet")

    def shard_paths(self, asset: str, category: str) -> list[Path]:
        folder = self.category_dir(asset, category)
        return sorted(folder.glob("shard=*.parquet")) if folder.is_dir() else []


def temporary_sibling(path: Path) -> Path:
    return path.parent / f"{TMP_PREFIX}{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


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
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: str | os.PathLike[str], **kwargs) -> Path:
    """Write ``table`` atomically; deterministic bytes for the same table."""
    options = {"compression": "zstd", "write_statistics": True} | kwargs
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **options)
    return Path(path)


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(data: bytes, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
