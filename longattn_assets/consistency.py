"""Whether a data root's files are current, and which of them a step may read.

One mechanism, used by every asset, the schedules, the demo and the ``longattn`` commands
alike: each raw, windowed and scored shard carries its
:class:`~longattn_assets.provenance.Provenance` and records the fingerprint of the file it
was made from. A shard's file is *current* when it exists, its recipe is the one the
current settings would use (:class:`Expected`: shard count, text fields, window size,
tokenizer, model fingerprint and scorer settings), and its input is still the file it was
made from. A category's raw_corpus is current when its ingest committed (the record
``_manifest.json``, written last: :class:`~longattn_assets.storage.PartitionCommit`) and
the input files it records are still those the ingest would read, by content: each file's
cheap version (mtime, ctime, inode; an object's version id) is compared first, and only a
file whose version changed is hashed again (:func:`input_changes`). Readers take exactly
the files of the current partition set (never a glob over whatever is on disk), check
window by window that the scores are those of the windows and finite, and refuse, with one
message naming each shard and what to run, any set that is incomplete, stale, or mixes
settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .corpus.input_file import DEFAULT_TEXT_FIELDS, InputFile, content_sha256
from .provenance import CODE_REVISIONS, Provenance, digest, read_provenance, recipe_differences
from .storage import DataLayout, write_text

RAW_CORPUS = "raw_corpus"
WINDOWED_CHUNKS = "windowed_chunks"
SCORED_CHUNKS = "scored_chunks"
SHARDED_ASSETS = (RAW_CORPUS, WINDOWED_CHUNKS, SCORED_CHUNKS)
# What a shard's files were made from, carried down for people reading a file's record.
_CARRIED_NOTES = ("input_files", "num_shards")


class InconsistentDataError(ValueError):
    """Files that are missing, stale, or made under settings that differ from their peers'."""


class NonFiniteScoresError(InconsistentDataError):
    """Scores that are NaN or infinite: never written by the scorer, never selected."""


def non_finite_message(data_ids: Sequence[str], total: int, where: str) -> str:
    """One line naming the windows whose ds or du is not finite (the first few of them)."""
    shown = ", ".join(data_ids[:3]) + (f" and {len(data_ids) - 3} more" if len(data_ids) > 3 else "")
    return f"{len(data_ids)} of {total} windows {where} have a NaN or infinite ds/du ({shown})"


def raw_recipe(num_shards: int, fields: Sequence[str] | None = DEFAULT_TEXT_FIELDS) -> dict[str, Any]:
    """The settings that make raw shards; ``fields`` None leaves the text fields out (unchecked)."""
    recipe: dict[str, Any] = {"code": CODE_REVISIONS[RAW_CORPUS], "num_shards": num_shards}
    if fields is not None:
        recipe["text_fields"] = list(fields)
    return recipe


def windows_recipe(window_size: int, sample_fraction: float, tokenizer: str) -> dict[str, Any]:
    return {
        "code": CODE_REVISIONS[WINDOWED_CHUNKS],
        "window_size": int(window_size),
        "sample_fraction": float(sample_fraction),
        "tokenizer": tokenizer,
    }


def raw_provenance(
    category: str, shard: str, num_shards: int, fields: Sequence[str], documents: str, input_files: str
) -> Provenance:
    return Provenance(
        RAW_CORPUS, category, shard, raw_recipe(num_shards, fields), {"documents": documents},
        {"input_files": input_files, "num_shards": num_shards},
    )  # fmt: skip


def derived_provenance(asset: str, recipe: Mapping[str, Any], upstream: Provenance) -> Provenance:
    """The record of a file ``asset`` makes from the file ``upstream`` describes."""
    notes = {key: upstream.notes[key] for key in _CARRIED_NOTES if key in upstream.notes}
    return Provenance(
        asset, upstream.category, upstream.shard, dict(recipe), {upstream.asset: upstream.fingerprint}, notes
    )


def input_record(file: InputFile, sha256: str | None) -> dict[str, Any]:
    """What a raw_corpus commit records of one input file: its name, size, version (the cheap
    identity) and the sha256 of its bytes (None: a remote file, whose version stands for its
    content, or a file that could not be read)."""
    return {"name": file.name, "size": file.size, "version": file.version, "sha256": sha256}


def inputs_fingerprint(records: Sequence[Mapping[str, Any]], fields: Sequence[str] = DEFAULT_TEXT_FIELDS) -> str:
    """A content fingerprint of a category's input files: names and hashes (versions where
    there is no hash), and the text fields read from them."""
    entries = [[r["name"], r["sha256"] or r["version"]] for r in records]
    return digest([entries, list(fields)])


@dataclass(frozen=True)
class CategoryInputs:
    """The files a category's ingest would read now (listed, not read) and the fields it reads.

    ``hashes``: a file where checks keep the content hashes they had to compute (files whose
    version changed since the ingest), so the next check does not read them again.
    """

    files: tuple[InputFile, ...]
    fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS
    hashes: Path | None = None


def _load_hashes(path: Path | None) -> dict[str, list[str]]:
    try:
        return json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return {}


def input_changes(recorded: Sequence[Mapping[str, Any]], inputs: CategoryInputs, limit: int = 3) -> list[str]:
    """How ``inputs`` differ by content from the files a raw_corpus commit ``recorded``: one
    phrase per kind (added, removed, changed), naming at most ``limit`` files each.

    A file whose size and version are those recorded is taken as unchanged without reading
    it; another whose size is too is hashed and compared (a copy, ``chmod`` or ``touch``
    leaves the content as it was). Remote files and files without a recorded hash compare by
    version alone.
    """
    before = {r["name"]: r for r in recorded}
    now = {f.name: f for f in inputs.files}
    cache = _load_hashes(inputs.hashes)
    changed = []
    for name in sorted(before.keys() & now.keys()):
        old, file = before[name], now[name]
        if (file.size, file.version) == (old["size"], old["version"]):
            continue
        if old["sha256"] is None or file.size != old["size"] or not file.is_local:
            changed.append(name)
            continue
        known = cache.get(file.url)
        sha256 = known[1] if known and known[0] == file.version else content_sha256(file)
        if sha256 is not None:
            cache[file.url] = [file.version, sha256]
        if sha256 != old["sha256"]:
            changed.append(name)
    if inputs.hashes is not None and cache != _load_hashes(inputs.hashes):
        write_text(json.dumps(cache, sort_keys=True), inputs.hashes)

    def said(kind: str, names: list[str]) -> list[str]:
        more = f" and {len(names) - limit} more" if len(names) > limit else ""
        return [f"{kind} {', '.join(names[:limit])}{more}"] if names else []

    return (
        said("added", sorted(now.keys() - before.keys()))
        + said("changed", changed)
        + said("removed", sorted(before.keys() - now.keys()))
    )


def raw_manifest(
    category: str,
    recipe: Mapping[str, Any],
    shards: Mapping[str, str],
    rejects: str,
    inputs: Sequence[Mapping[str, Any]],
) -> str:
    """The commit record of a category's raw_corpus: its recipe, each shard's provenance
    fingerprint, its rejects file (relative to the data root) and the input files read."""
    record = {"asset": RAW_CORPUS, "category": category, "recipe": dict(recipe), "shards": dict(shards),
              "rejects": rejects, "inputs": list(inputs)}  # fmt: skip
    return json.dumps(record, indent=1, sort_keys=True) + "\n"


def read_manifest(layout: DataLayout, asset: str, category: str) -> dict[str, Any] | None:
    """A partition's commit record; None when there is none (never made, or an unfinished commit)."""
    try:
        record = json.loads(layout.manifest_path(asset, category).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@dataclass(frozen=True)
class Expected:
    """What the current settings would write; ``None`` leaves that part unchecked.

    ``scores`` may name only some keys of a scorer recipe: those a configuration decides
    before any device is touched (see ``scoring.windows_file.expected_scorer_recipe``).
    """

    num_shards: int
    inputs: CategoryInputs | None = None
    windows: Mapping[str, Any] | None = None
    scores: Mapping[str, Any] | None = None

    @property
    def raw(self) -> dict[str, Any]:
        return raw_recipe(self.num_shards, self.inputs.fields if self.inputs else None)


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


def raw_problem(layout: DataLayout, category: str, expected: Expected) -> tuple[str | None, dict | None]:
    """Why the category's raw_corpus as a whole is not current (None if it is), and its commit record."""
    manifest = read_manifest(layout, RAW_CORPUS, category)
    if manifest is None:
        if layout.shard_paths(RAW_CORPUS, category):
            return "raw_corpus has no commit record: its ingest did not finish (killed?) or an older version wrote it", None
        return "raw_corpus is missing", None
    if manifest.get("asset") != RAW_CORPUS or manifest.get("category") != category:
        return f"{layout.manifest_path(RAW_CORPUS, category)} is not the commit record of raw_corpus {category}", None
    recipe = expected.raw
    found = {key: manifest["recipe"][key] for key in recipe if key in manifest.get("recipe", {})}
    if found != recipe:
        return "raw_corpus was made with " + "; ".join(recipe_differences(found, recipe)), manifest
    if expected.inputs is not None:
        changes = input_changes(manifest.get("inputs", []), expected.inputs)
        if changes:
            return "raw_corpus was read from other input files than those there now: " + "; ".join(changes), manifest
    return None, manifest


def category_states(
    layout: DataLayout, category: str, shards: Sequence[str], expected: Expected
) -> tuple[str | None, list[ShardState]]:
    """Why the category's raw_corpus is not current (None if it is) and each shard's state
    (:func:`shard_states`), the raw_corpus commit and inputs checked once for all."""
    problem, manifest = raw_problem(layout, category, expected)
    return problem, [_shard_state(layout, category, shard, expected, problem, manifest) for shard in shards]


def shard_states(layout: DataLayout, category: str, shards: Sequence[str], expected: Expected) -> list[ShardState]:
    """Check each shard's raw, windowed and scored files against each other and ``expected``."""
    return category_states(layout, category, shards, expected)[1]


def shard_state(layout: DataLayout, category: str, shard: str, expected: Expected) -> ShardState:
    """:func:`shard_states` of one shard."""
    return shard_states(layout, category, [shard], expected)[0]


def _shard_state(
    layout: DataLayout, category: str, shard: str, expected: Expected, problem: str | None, manifest: dict | None
) -> ShardState:
    paths = {asset: layout.shard_path(asset, category, shard) for asset in SHARDED_ASSETS}
    raw, windows, scores = (read_provenance(paths[a]) for a in SHARDED_ASSETS)
    state = {"category": category, "shard": shard, "raw": raw, "windows": windows, "scores": scores,
             "windows_path": paths[WINDOWED_CHUNKS], "scores_path": paths[SCORED_CHUNKS]}  # fmt: skip

    def stale(first: str, problem: str) -> ShardState:
        assets = SHARDED_ASSETS[SHARDED_ASSETS.index(first) :]
        return ShardState(**state, problem=f"{category}|{shard}: {problem}", stale=assets)

    key = (category, shard)
    problem = problem or _record_problem(RAW_CORPUS, paths[RAW_CORPUS], raw, key)
    if problem is None and manifest.get("shards", {}).get(shard) != raw.fingerprint:
        problem = f"{paths[RAW_CORPUS].name} of raw_corpus is not the file its last commit recorded (an ingest did not finish)"
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
    """The first difference of ``record`` from ``recipe`` (on the keys ``recipe`` names) or from its input."""
    found = {key: record.recipe[key] for key in recipe or {} if key in record.recipe}
    if recipe is not None and found != dict(recipe):
        return f"{record.asset} was made with " + "; ".join(recipe_differences(found, recipe))
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
    states = shard_states(layout, category, shards, expected)
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
    """Pairs of windows and scores files whose recipes agree across every shard and whose
    contents match (:func:`_check_contents`), else an error."""
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
    _check_contents([(wp, sp) for _, wp, _, sp, _ in pairs])
    shards = [
        {"shard": name, "windows": w.fingerprint, "scores": s.fingerprint, "windows_file": str(wp),
         "scores_file": str(sp), "rows": pq.read_metadata(sp).num_rows}
        for name, wp, w, sp, s in pairs
    ]  # fmt: skip
    return CategoryFiles(
        windows=[str(p[1]) for p in pairs], scores=[str(p[3]) for p in pairs], shards=shards,
        windows_recipe=pairs[0][2].recipe, scores_recipe=pairs[0][4].recipe,
    )  # fmt: skip


def _columns(path: Path, names: Sequence[str]) -> pa.Table | None:
    try:
        return pq.read_table(path, columns=list(names))
    except (KeyError, pa.ArrowInvalid):  # a column missing: written by an older version
        return None


def _check_contents(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Each scores file holds, row for row, the scores of its windows file's windows (the same
    data_id and token hash) and only finite ones; else one error naming the windows.

    The token hash in a scores row is the scorer's own hash of the token ids it scored, so a
    windows file cut again from edited text never passes for the one that was scored, even
    where provenance could not tell them apart.
    """
    problems: list[str] = []
    non_finite: list[str] = []
    total = 0
    for windows_path, scores_path in pairs:
        windows = _columns(windows_path, ("data_id", "tokens_hash"))
        scores = _columns(scores_path, ("data_id", "tokens_hash", "ds", "du"))
        for path, table in ((windows_path, windows), (scores_path, scores)):
            if table is None:
                problems.append(f"{path} has no tokens_hash column (made by an older version): make it again")
        if windows is None or scores is None:
            continue
        if windows.num_rows != scores.num_rows:
            problems.append(f"{scores_path} does not hold one score per window of {windows_path}")
            continue
        same = pc.and_(
            pc.equal(windows["data_id"], scores["data_id"]), pc.equal(windows["tokens_hash"], scores["tokens_hash"])
        )
        differ = pc.indices_nonzero(pc.invert(pc.fill_null(same, False))).to_pylist()
        if differ:
            ids = [windows["data_id"][i].as_py() for i in differ[:3]]
            problems.append(
                f"{scores_path} holds the scores of other windows than {windows_path}: {len(differ)} windows "
                f"differ in content ({', '.join(ids)}{' ...' if len(differ) > 3 else ''}): score {windows_path} again"
            )
            continue
        finite = pc.fill_null(pc.and_(pc.is_finite(scores["ds"]), pc.is_finite(scores["du"])), False)
        non_finite += [scores["data_id"][i].as_py() for i in pc.indices_nonzero(pc.invert(finite)).to_pylist()]
        total += scores.num_rows
    if problems:
        raise InconsistentDataError("; ".join(problems))
    if non_finite:
        raise NonFiniteScoresError(
            non_finite_message(non_finite, total, "of the scores read")
            + ": never selected; score them again with working model weights and rope settings"
        )


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

    Every windows file needs exactly one scores file made from it, holding the scores of its
    windows row for row, and no scores file may come from windows outside the given ones.
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
    pairs = [
        (f"{wrecord.category}|{wrecord.shard}", wpath, wrecord, *scored[fp]) for fp, (wpath, wrecord) in windows.items()
    ]
    return _agreeing(pairs)


def _required(path: Path) -> Provenance:
    record = read_provenance(path)
    if record is None:
        problem = "does not exist" if not path.is_file() else "records no provenance (written by an older version or by hand)"
        raise InconsistentDataError(f"{path} {problem}: make it again with longattn window / score")
    return record


def obsolete_shard_files(layout: DataLayout, category: str, current: Iterable[str]) -> list[Path]:
    """A category's raw, windows and scores shard files (and scoring parts) outside the
    current partition set: what a raw_corpus commit deletes before it is declared
    (``storage.PartitionCommit``), so a glob over a category never meets them."""
    keep = {f"shard={shard}.parquet" for shard in current}
    found = []
    for asset in SHARDED_ASSETS:
        found += [path for path in layout.shard_paths(asset, category) if path.name not in keep]
        folder = layout.category_dir(asset, category)
        found += [
            parts for parts in (folder.glob(".shard=*.parquet.parts") if folder.is_dir() else ())
            if parts.name[1 : -len(".parts")] not in keep
        ]  # fmt: skip
    return found
