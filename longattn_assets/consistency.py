"""Whether a data root's files are current, and which of them a step may read.

One mechanism, used by every asset, the demo and the ``longattn`` commands alike: each
raw, windowed and scored shard carries its :class:`~longattn_assets.provenance.Provenance`
and records the fingerprint of the file it was made from. A shard's file is *current*
when it exists, its recipe is the one the current settings would use, and its input is
still the file it was made from. Readers take exactly the files of the current partition
set (never a glob over whatever is on disk) and refuse, with one message naming each
shard and what to run, any set that is incomplete, stale, or mixes settings.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .provenance import CODE_REVISIONS, Provenance, read_provenance, recipe_differences
from .storage import DataLayout

RAW_CORPUS = "raw_corpus"
WINDOWED_CHUNKS = "windowed_chunks"
SCORED_CHUNKS = "scored_chunks"
SHARDED_ASSETS = (RAW_CORPUS, WINDOWED_CHUNKS, SCORED_CHUNKS)
# What a shard's files were made from, carried down for people reading a file's record.
_CARRIED_NOTES = ("input_files", "num_shards")


class InconsistentDataError(ValueError):
    """Files that are missing, stale, or made under settings that differ from their peers'."""


def raw_recipe(num_shards: int) -> dict[str, Any]:
    return {"code": CODE_REVISIONS[RAW_CORPUS], "num_shards": num_shards}


def windows_recipe(window_size: int, sample_fraction: float, tokenizer: str) -> dict[str, Any]:
    return {
        "code": CODE_REVISIONS[WINDOWED_CHUNKS],
        "window_size": int(window_size),
        "sample_fraction": float(sample_fraction),
        "tokenizer": tokenizer,
    }


def raw_provenance(
    category: str, shard: str, num_shards: int, documents: str, input_files: str
) -> Provenance:
    return Provenance(
        RAW_CORPUS, category, shard, raw_recipe(num_shards), {"documents": documents},
        {"input_files": input_files, "num_shards": num_shards},
    )  # fmt: skip


def derived_provenance(asset: str, recipe: Mapping[str, Any], upstream: Provenance) -> Provenance:
    """The record of a file ``asset`` makes from the file ``upstream`` describes."""
    notes = {key: upstream.notes[key] for key in _CARRIED_NOTES if key in upstream.notes}
    return Provenance(
        asset, upstream.category, upstream.shard, dict(recipe), {upstream.asset: upstream.fingerprint}, notes
    )


@dataclass(frozen=True)
class Expected:
    """What the current settings would write; ``None`` leaves that part unchecked."""

    num_shards: int
    input_files: str | None = None
    windows: Mapping[str, Any] | None = None
    scores: Mapping[str, Any] | None = None


def _run(asset: str, category: str, shard: str | None = None) -> str:
    key = category if shard is None else f"{category}|{shard}"
    return f"materialize {asset} {key}"


@dataclass(frozen=True)
class ShardState:
    """The files of one shard of the current partition set and what, if anything, must be redone."""

    category: str
    shard: str
    raw: Provenance | None
    windows: Provenance | None
    scores: Provenance | None
    problem: str | None = None  # the first problem, upstream first
    stale: tuple[str, ...] = ()  # the assets to materialize again, in order
    windows_path: Path | None = None
    scores_path: Path | None = None

    @property
    def current(self) -> bool:
        return self.problem is None

    @property
    def todo(self) -> str:
        """What to run, e.g. ``materialize scored_chunks book|00003``."""
        if not self.stale:
            return ""
        if self.stale[0] == RAW_CORPUS:
            return _run(RAW_CORPUS, self.category)
        return _run(",".join(self.stale), self.category, self.shard)


def _record_problem(asset: str, path: Path, record: Provenance | None, key: tuple[str, str]) -> str | None:
    if not path.is_file():
        return f"{asset} is missing"
    if record is None:
        return f"{path.name} of {asset} records no provenance (written by an older version or by hand)"
    if (record.asset, record.category, record.shard) != (asset, *key):
        return f"{path} holds {record.asset} of {record.category}|{record.shard}"
    return None


def shard_state(layout: DataLayout, category: str, shard: str, expected: Expected) -> ShardState:
    """Check a shard's raw, windowed and scored files against each other and ``expected``."""
    paths = {asset: layout.shard_path(asset, category, shard) for asset in SHARDED_ASSETS}
    raw, windows, scores = (read_provenance(paths[a]) for a in SHARDED_ASSETS)
    state = {"category": category, "shard": shard, "raw": raw, "windows": windows, "scores": scores,
             "windows_path": paths[WINDOWED_CHUNKS], "scores_path": paths[SCORED_CHUNKS]}  # fmt: skip

    def stale(first: str, problem: str) -> ShardState:
        assets = SHARDED_ASSETS[SHARDED_ASSETS.index(first) :]
        return ShardState(**state, problem=f"{category}|{shard}: {problem}", stale=assets)

    key = (category, shard)
    problem = _record_problem(RAW_CORPUS, paths[RAW_CORPUS], raw, key)
    if problem is None:
        problem = _mismatch(raw, raw_recipe(expected.num_shards), None, None)
    if problem is None and expected.input_files not in (None, raw.notes.get("input_files")):
        problem = "raw_corpus was read from other input files (they changed since)"
    if problem:
        return stale(RAW_CORPUS, problem)
    problem = _record_problem(WINDOWED_CHUNKS, paths[WINDOWED_CHUNKS], windows, key)
    problem = problem or _mismatch(windows, expected.windows, RAW_CORPUS, raw)
    if problem:
        return stale(WINDOWED_CHUNKS, problem)
    problem = _record_problem(SCORED_CHUNKS, paths[SCORED_CHUNKS], scores, key)
    problem = problem or _mismatch(scores, expected.scores, WINDOWED_CHUNKS, windows)
    if problem:
        return stale(SCORED_CHUNKS, problem)
    return ShardState(**state)


def _mismatch(
    record: Provenance,
    recipe: Mapping[str, Any] | None,
    upstream_asset: str | None,
    upstream: Provenance | None,
) -> str | None:
    if recipe is not None and dict(record.recipe) != dict(recipe):
        return f"{record.asset} was made with " + "; ".join(recipe_differences(record.recipe, recipe))
    if upstream_asset is not None and record.inputs.get(upstream_asset) != upstream.fingerprint:
        return f"{record.asset} was made from another {upstream_asset} file (older or made under other settings)"
    return None


def require_current_input(
    layout: DataLayout, category: str, shard: str, expected: Expected, asset: str
) -> Provenance:
    """The record of the file ``asset`` reads for ``category|shard``, refused unless current."""
    state = shard_state(layout, category, shard, expected)
    upstream = SHARDED_ASSETS[SHARDED_ASSETS.index(asset) - 1]
    if state.stale and SHARDED_ASSETS.index(state.stale[0]) < SHARDED_ASSETS.index(asset):
        raise InconsistentDataError(f"{state.problem}: run {state.todo} first")
    return state.raw if upstream == RAW_CORPUS else state.windows


@dataclass(frozen=True)
class CategoryFiles:
    """The windows and scores files a selection reads, with what made them (for its records)."""

    windows: list[str]
    scores: list[str]
    shards: list[dict[str, Any]] = field(default_factory=list)
    windows_recipe: Mapping[str, Any] = field(default_factory=dict)
    scores_recipe: Mapping[str, Any] = field(default_factory=dict)

    def as_record(self, root: Path | None = None) -> dict[str, Any]:
        """For selection.json and the card; file paths relative to ``root`` (the data root)
        when under it, so the record is the same bytes wherever the data root lies."""
        shards = [
            {**shard, **{key: _relative(shard[key], root) for key in ("windows_file", "scores_file")}}
            for shard in self.shards
        ]
        return {"shards": shards, "windows_recipe": dict(self.windows_recipe),
                "scores_recipe": dict(self.scores_recipe)}  # fmt: skip

    @staticmethod
    def identity(record: Mapping[str, Any]) -> list[list[str]]:
        """What a selection made from ``record`` depends on: each shard's file fingerprints
        (which cover the recipes), not where the files are."""
        return [[s["shard"], s["windows"], s["scores"]] for s in record.get("shards", [])]


def category_files(
    layout: DataLayout, category: str, shards: Sequence[str], expected: Expected
) -> CategoryFiles:
    """The current files of every shard in ``shards``; raises naming each shard that is not ready."""
    states = [shard_state(layout, category, shard, expected) for shard in shards]
    bad = [s for s in states if not s.current]
    if bad:
        raise InconsistentDataError(
            f"{len(bad)} of {len(states)} shards of {category!r} are not ready: "
            + "; ".join(f"{s.problem} (run: {s.todo})" for s in bad)
        )
    return _agreeing(
        [(s.shard, s.windows_path, s.windows, s.scores_path, s.scores) for s in states]
    )


def _agreeing(pairs: list[tuple[str, Path, Provenance, Path, Provenance]]) -> CategoryFiles:
    """Pairs of windows and scores files whose recipes agree across every shard, else an error."""
    if not pairs:
        raise InconsistentDataError("no windows and scores files to select from")
    for kind, index in (("windowed", 2), ("scored", 4)):
        recipes: dict[str, list[str]] = {}
        for pair in pairs:
            recipes.setdefault(_recipe_text(pair[index].recipe), []).append(pair[0])
        if len(recipes) > 1:
            raise InconsistentDataError(
                f"shards were {kind} under different settings, never mixed in one selection: "
                + "; ".join(f"{', '.join(names)}: {text}" for text, names in recipes.items())
            )
    shards = [
        {"shard": name, "windows": w.fingerprint, "scores": s.fingerprint, "windows_file": str(wp),
         "scores_file": str(sp), "rows": pq.read_metadata(sp).num_rows}
        for name, wp, w, sp, s in pairs
    ]  # fmt: skip
    return CategoryFiles(
        windows=[str(p[1]) for p in pairs], scores=[str(p[3]) for p in pairs], shards=shards,
        windows_recipe=pairs[0][2].recipe, scores_recipe=pairs[0][4].recipe,
    )  # fmt: skip


def _recipe_text(recipe: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={recipe[key]}" for key in sorted(recipe))


def _relative(path: str, root: Path | None) -> str:
    if root is None or not Path(path).is_relative_to(root):
        return path
    return Path(path).relative_to(root).as_posix()


def recorded_files(record: Mapping[str, Any], root: Path | None = None) -> CategoryFiles:
    """The files a selection recorded (``CategoryFiles.as_record``), refused if any changed since;
    relative paths are under ``root`` (the data root)."""
    if not record.get("shards"):
        raise InconsistentDataError("the selection records no input shards (made by an older version)")
    base = root or Path()
    record = {
        **record,
        "shards": [
            {**shard, **{key: str(base / shard[key]) for key in ("windows_file", "scores_file")}}
            for shard in record["shards"]
        ],
    }
    changed = []
    for shard in record["shards"]:
        for kind in ("windows", "scores"):
            found = read_provenance(shard[f"{kind}_file"])
            if found is None or found.fingerprint != shard[kind]:
                changed.append(f"{shard[f'{kind}_file']} changed since the selection")
    if changed:
        raise InconsistentDataError("; ".join(changed) + ": materialize longabc_dataset again")
    return CategoryFiles(
        windows=[s["windows_file"] for s in record["shards"]], scores=[s["scores_file"] for s in record["shards"]],
        shards=list(record["shards"]), windows_recipe=record["windows_recipe"], scores_recipe=record["scores_recipe"],
    )  # fmt: skip


def paired_files(windows_files: Iterable[str | Path], scores_files: Iterable[str | Path]) -> CategoryFiles:
    """Match each scores file to the windows file it was made from (the ``longattn select`` check).

    Every windows file needs exactly one scores file made from it and with as many rows, and
    no scores file may come from windows outside the given ones.
    """
    windows = {}
    for path in sorted(map(Path, windows_files)):
        record = _required(path)
        windows[record.fingerprint] = (path, record)
    scored: dict[str, tuple[Path, Provenance]] = {}
    for path in sorted(map(Path, scores_files)):
        record = _required(path)
        source = record.inputs.get(WINDOWED_CHUNKS)
        if source not in windows:
            raise InconsistentDataError(
                f"{path} was scored from windows ({source}) that are not among the given windows files: "
                "score those windows again, or give the windows it was made from"
            )
        if source in scored:
            raise InconsistentDataError(f"{scored[source][0]} and {path} are scores of the same windows file")
        scored[source] = (path, record)
    unscored = [str(path) for fp, (path, _) in windows.items() if fp not in scored]
    if unscored:
        raise InconsistentDataError(f"windows without scores: {', '.join(unscored)}: score them first")
    pairs = []
    for fp, (wpath, wrecord) in windows.items():
        spath, srecord = scored[fp]
        if pq.read_metadata(wpath).num_rows != pq.read_metadata(spath).num_rows:
            raise InconsistentDataError(f"{spath} does not hold one score per window of {wpath}")
        pairs.append((f"{wrecord.category}|{wrecord.shard}", wpath, wrecord, spath, srecord))
    return _agreeing(pairs)


def _required(path: Path) -> Provenance:
    record = read_provenance(path)
    if record is None:
        problem = "does not exist" if not path.is_file() else "records no provenance (written by an older version or by hand)"
        raise InconsistentDataError(f"{path} {problem}: make it again with longattn window / score")
    return record


def remove_obsolete_shards(layout: DataLayout, category: str, current: Iterable[str]) -> list[Path]:
    """Delete a category's shard files outside the current partition set; return them.

    Called once the current shards are written, so a crash at any point leaves every
    current file whole; an obsolete file left by a crash is never read (readers take the
    current set only) and goes at the next call.
    """
    keep = {f"shard={shard}.parquet" for shard in current}
    removed = []
    for asset in SHARDED_ASSETS:
        for path in layout.shard_paths(asset, category):
            if path.name not in keep:
                path.unlink(missing_ok=True)
                removed.append(path)
        folder = layout.category_dir(asset, category)
        for parts in folder.glob(".shard=*.parquet.parts") if folder.is_dir() else ():
            if parts.name[1 : -len(".parts")] not in keep:
                shutil.rmtree(parts, ignore_errors=True)
    return removed
