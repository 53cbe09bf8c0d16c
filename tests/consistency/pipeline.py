"""The pipeline under a chosen shard count, in this process, and what a finished run leaves.

The shard count is read once, when the partitions are defined at import (as in a real
deployment, where changing ``LONGATTN_NUM_SHARDS`` means reloading the code location).
:class:`ShardCounts` imports the package once per count and swaps the whole set of its
modules in ``sys.modules`` when the count changes, so at any moment exactly one
generation of the package is importable and lazy imports inside it stay consistent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import dagster as dg
import pyarrow.parquet as pq

PACKAGE = "longattn_assets"
WINDOW = 128


def _ours() -> dict[str, ModuleType]:
    return {k: m for k, m in sys.modules.items() if k == PACKAGE or k.startswith(PACKAGE + ".")}


class ShardCounts:
    def __init__(self) -> None:
        self.generations: dict[tuple, dict[str, ModuleType]] = {}
        self.active: tuple | None = None

    def use(self, num_shards: int, **environment: str) -> ModuleType:
        """The package's ``demo`` module with ``num_shards`` shards per category, loaded with
        ``environment`` (e.g. ``LONGATTN_WINDOW_SIZE``) set as a deployment would set it."""
        key = (num_shards, *sorted(environment.items()))
        if self.active == key:
            return sys.modules[f"{PACKAGE}.demo"]
        self._stash()
        if key in self.generations:
            sys.modules.update(self.generations[key])
        else:
            settings = {"LONGATTN_NUM_SHARDS": str(num_shards), **environment}
            before = {name: os.environ.get(name) for name in settings}
            os.environ.update(settings)
            try:
                __import__(f"{PACKAGE}.demo")
                __import__(f"{PACKAGE}.definitions")
            finally:
                for name, value in before.items():
                    if value is None:
                        os.environ.pop(name)
                    else:
                        os.environ[name] = value
        self.active = key
        return sys.modules[f"{PACKAGE}.demo"]

    def _stash(self) -> None:
        """Take the active generation out of ``sys.modules`` (kept for the next use)."""
        if self.active is not None:
            self.generations[self.active] = _ours()
        for name in _ours():
            del sys.modules[name]
        self.active = None


_COUNTS = ShardCounts()  # generations are imported once per session


@contextmanager
def shard_counts() -> Iterator[ShardCounts]:
    """Swap in generations of the package by shard count; put the original back afterwards."""
    original = _ours()
    try:
        yield _COUNTS
    finally:
        _COUNTS._stash()
        sys.modules.update(original)


def dataset(root: Path, category: str = "code") -> dict[str, object]:
    """What a user takes away: the selected rows and the LongAttn export, byte for byte."""
    folder = root / "longabc_dataset" / f"category={category}"
    return {
        "selected": pq.read_table(folder / "selected.parquet").to_pylist(),
        "jsonl": (folder / "longabc.jsonl").read_bytes(),
        "hf": sorted(p.read_bytes() for p in (folder / "hf" / "data").glob("*.parquet")),
    }


def shard_files(root: Path, category: str = "code") -> dict[str, list[str]]:
    return {
        asset: sorted(p.name for p in (root / asset / f"category={category}").glob("shard=*.parquet"))
        for asset in ("raw_corpus", "windowed_chunks", "scored_chunks")
    }


def run_demo(counts: ShardCounts, num_shards: int, root: Path, input_dir: Path, window: int = WINDOW) -> list[str]:
    """``longattn demo`` on category code with ``num_shards`` shards; returns what it said."""
    said: list[str] = []
    counts.use(num_shards).run_demo(
        root, window_size=window, input_dir=input_dir, device="cpu", categories=["code"], say=said.append
    )
    return said


_FRESH: dict[tuple, Path] = {}


def fresh_root(counts: ShardCounts, num_shards: int, input_dir: Path, scratch: Path, window: int = WINDOW) -> Path:
    """The data root of a fresh run with these settings and this input, made once per session."""
    files = sorted(input_dir.rglob("*.jsonl"))
    content = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
    key = (num_shards, window, str(input_dir), content, tuple(p.stat().st_mtime_ns for p in files))
    if key not in _FRESH:
        root = scratch / f"fresh-{num_shards}-{window}-{content[:8]}-{len(_FRESH)}"
        run_demo(counts, num_shards, root, input_dir, window)
        _FRESH[key] = root
    return _FRESH[key]


_DATASETS: dict[tuple, dict] = {}


def fresh(counts: ShardCounts, num_shards: int, input_dir: Path, scratch: Path, window: int = WINDOW) -> dict:
    """The dataset of a fresh run (new data root) with these settings and input contents."""
    content = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(input_dir.rglob("*.jsonl")))).hexdigest()
    key = (num_shards, window, content)
    if key not in _DATASETS:
        _DATASETS[key] = dataset(fresh_root(counts, num_shards, input_dir, scratch, window))
    return _DATASETS[key]


def started(counts: ShardCounts, num_shards: int, input_dir: Path, scratch: Path, root: Path) -> Path:
    """``root`` as a finished run with these settings left it (a copy of the session's fresh run)."""
    shutil.copytree(fresh_root(counts, num_shards, input_dir, scratch), root)
    return root


def materialize(counts: ShardCounts, num_shards: int, names: list[str], partition, root: Path,
                input_dir: Path, window: int = WINDOW, **scorer) -> dg.ExecuteInProcessResult:
    module = counts.use(num_shards)
    definitions = __import__("longattn_assets.definitions", fromlist=["assets"])
    by_name = {a.key.to_user_string(): a for a in definitions.assets}
    resources = {
        "data_root": module.DataRoot(root=str(root)),
        "corpus_input": module.CorpusInput(input_dir=str(input_dir)),
        "windowing": module.Windowing(window_size=window),
        "attention_scorer": module.AttentionScorer(device="cpu", **scorer),
    }
    return dg.materialize(
        definitions.assets, selection=[by_name[n] for n in names], partition_key=partition,
        resources=resources, raise_on_error=False,
    )  # fmt: skip


def shard_key(shard: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"category": "code", "shard": shard})


def failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    return " ".join(
        e.step_failure_data.error.message for e in result.all_events if e.is_step_failure and e.step_failure_data.error
    )
