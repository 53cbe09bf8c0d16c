"""A partition's files become current together (issue 23, item 4).

raw_corpus commits its shards and its rejects file, and deletes the shard files of an
earlier shard count, before one atomic record says they are current. A fault is injected at
every step of that commit while the shard count changes from 2 to 1: each time the data
root reads as not current, and the rerun (the demo) ends with the bytes of a fresh run and a
category glob that returns exactly its rows.
"""

import sys

import duckdb

from tests.consistency.pipeline import dataset, fresh_root, materialize, run_demo, started

ASSETS = ("raw_corpus", "windowed_chunks", "scored_chunks")


class InjectedFault(RuntimeError):
    pass


def _commit_steps(counts, hook) -> None:
    """Install ``hook`` as the commit-step hook of the 1-shard generation of the package."""
    counts.use(1)
    steps = sys.modules["longattn_assets.storage"].COMMIT_STEPS
    steps.clear()
    if hook is not None:
        steps.append(hook)


def _fault_at(index: int):
    """A commit-step hook that raises at the ``index``-th step it sees."""
    calls = iter(range(10**6))

    def fault(description: str) -> None:
        if next(calls) == index:
            raise InjectedFault(description)

    return fault


def _files(root, names=("raw_corpus", "rejects")) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for name in names for p in sorted((root / name).rglob("*")) if p.is_file()
    }  # fmt: skip


def _glob_rows(root) -> int:
    """The README's query over a category's scores: every file the glob finds."""
    pattern = str(root / "scored_chunks" / "category=code" / "*.parquet")
    return duckdb.sql(f"SELECT count(*) FROM '{pattern}'").fetchall()[0][0]


def test_a_fault_at_every_step_of_a_commit_leaves_nothing_a_rerun_does_not_redo(counts, corpus, scratch, tmp_path):
    reference = fresh_root(counts, 1, corpus, scratch)
    seen: list[str] = []
    _commit_steps(counts, seen.append)
    try:
        assert materialize(counts, 1, ["raw_corpus"], "code", started(counts, 2, corpus, scratch, tmp_path / "steps"), corpus).success
    finally:
        _commit_steps(counts, None)
    # the record goes, both files are renamed in, the three obsolete shard files go, the record comes
    assert seen[0] == "remove the record _manifest.json" and seen[-1] == "write the record _manifest.json"
    assert [s for s in seen if s.startswith("rename")] == ["rename shard=00000.parquet into place", "rename raw_corpus.jsonl into place"]
    assert sum(s == "remove shard=00001.parquet" for s in seen) == 3

    for index, step in enumerate(seen):
        root = started(counts, 2, corpus, scratch, tmp_path / f"fault-{index}")
        _commit_steps(counts, _fault_at(index))
        try:
            assert not materialize(counts, 1, ["raw_corpus"], "code", root, corpus).success, step
        finally:
            _commit_steps(counts, None)
        said = run_demo(counts, 1, root, corpus)
        assert "  raw_corpus: up to date" not in said, step
        assert _files(root) == _files(reference), step
        assert dataset(root) == dataset(reference), step
        for asset in ASSETS:
            assert sorted(p.name for p in (root / asset / "category=code").glob("*.parquet")) == ["shard=00000.parquet"], step
        assert _glob_rows(root) == _glob_rows(reference), step
