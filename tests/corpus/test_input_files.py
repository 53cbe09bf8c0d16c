"""Every file under an input folder is read or rejected with its reason; nothing can hang a step."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longattn_assets.corpus.ingest import ingest_category
from longattn_assets.corpus.records import PRETTY_JSON, Document, Reject, category_files, read_file
from longattn_assets.storage import DataLayout
from tests.corpus_fixtures import write_jsonl

REPO = Path(__file__).resolve().parents[2]


def _rejects(layout: DataLayout, category: str) -> list[tuple[str, str]]:
    lines = layout.category_file("rejects", category, "raw_corpus.jsonl").read_text().splitlines()
    return sorted((row["source"], row["reason"]) for row in map(json.loads, lines))


@pytest.fixture
def awkward_folder(tmp_path: Path) -> Path:
    """A category folder holding one of every kind of entry the issue names."""
    outside = tmp_path / "outside"
    write_jsonl(outside / "secret.jsonl", [{"text": "outside text"}])
    folder = tmp_path / "input" / "code"
    write_jsonl(folder / "good.jsonl", [{"id": "g", "text": "good text"}])
    write_jsonl(folder / "real" / "inner.jsonl", [{"id": "i", "text": "inner text"}])
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "blank.jsonl").write_text("\n  \n")
    (folder / "dangling.jsonl").symlink_to(tmp_path / "gone.jsonl")
    (folder / "inside-link.jsonl").symlink_to(folder / "good.jsonl")
    (folder / "escape.jsonl").symlink_to(outside / "secret.jsonl")
    (folder / "linked-dir").symlink_to(folder / "real", target_is_directory=True)
    (folder / "outside-dir").symlink_to(outside, target_is_directory=True)
    (folder / "real" / "loop").symlink_to(folder, target_is_directory=True)
    os.mkfifo(folder / "pipe.jsonl")
    (folder / "pretty.json").write_text(json.dumps([{"text": "a"}, {"text": "b"}], indent=2))
    ids = pd.DataFrame({"id": [1, None, 3], "text": ["one", "two", "three"]})  # pandas makes id float
    ids.to_parquet(folder / "float-ids.parquet")
    pq.write_table(pa.table({"id": [2.5, float("nan")], "text": ["half", "nan"]}), folder / "bad-ids.parquet")
    return folder


def test_every_entry_is_read_or_rejected_with_its_reason(awkward_folder: Path, tmp_path: Path):
    layout = DataLayout(tmp_path / "root")
    stats = ingest_category(awkward_folder.parent, "code", layout, num_shards=1)
    everything = _rejects(layout, "code")
    rejects = [(source, reason) for source, reason in everything if not reason.startswith("duplicate text")]
    # inside-link.jsonl and linked-dir/ repeat files inside the folder: read, then deduplicated
    assert [s for s, r in everything if r.startswith("duplicate text")] == ["inside-link.jsonl", "real/inner.jsonl"]
    outside = (tmp_path / "outside").resolve()
    loop = "symlinked folder that loops back onto a folder above it: not followed"
    assert rejects == sorted([
        ("bad-ids.parquet", "id is 2.5, not a whole number"),
        ("bad-ids.parquet", "id is nan, not a whole number"),
        ("blank.jsonl", "no rows (only blank lines)"),
        ("dangling.jsonl", "dangling symlink: its target does not exist"),
        ("empty.jsonl", "empty file (0 bytes)"),
        ("escape.jsonl", f"symlink to {outside / 'secret.jsonl'}, outside the input folder {awkward_folder}: not followed"),
        ("linked-dir/loop", loop),
        ("outside-dir", f"symlink to {outside}, outside the input folder {awkward_folder}: not followed"),
        ("pipe.jsonl", "not a regular file (a FIFO, socket or device): not read"),
        ("pretty.json", PRETTY_JSON),
        ("real/loop", loop),
    ])  # fmt: skip
    table = pq.read_table(layout.shard_path("raw_corpus", "code", "00000")).to_pylist()
    kept = {row["text"]: row["doc_id"] for row in table}
    missing_id = next(row["doc_hash"] for row in table if row["text"] == "two")  # the null id: the hash
    assert kept == {"good text": "g", "inner text": "i", "one": "1", "two": missing_id, "three": "3"}
    listed = [p.relative_to(awkward_folder).as_posix() for p in category_files(awkward_folder)]
    read = ["float-ids.parquet", "good.jsonl", "linked-dir/inner.jsonl"]
    assert sorted(listed) == sorted({s for s, _ in everything} | set(read)) and stats.files == len(listed)


def test_bad_float_ids_are_rejected_row_by_row(awkward_folder: Path):
    items = list(read_file(awkward_folder / "bad-ids.parquet"))
    assert [i.reason for i in items if isinstance(i, Reject)] == [
        "id is 2.5, not a whole number",
        "id is nan, not a whole number",
    ]


def test_float_ids_that_are_whole_numbers_read_as_ids(tmp_path: Path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": 7.0, "text": "a"}, {"id": 12345678901, "text": "b"}])
    docs = [d for d in read_file(tmp_path / "a.jsonl") if isinstance(d, Document)]
    assert [d.doc_id for d in docs] == ["7", "12345678901"]


def test_a_broken_first_line_is_not_taken_for_a_pretty_printed_file(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "cut\n{"text": "kept"}\n')
    items = list(read_file(path))
    assert [type(i) for i in items] == [Reject, Document] and "invalid JSON" in items[0].reason


def test_longattn_window_on_a_fifo_rejects_it_instead_of_waiting(tmp_path: Path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "longattn_assets.cli", "window", str(fifo), "--category", "c",
         "--output", str(tmp_path / "w.parquet"), "--window-size", "64"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # no document, so no window: said in one line (exit 2), with the reject written
    rejects = tmp_path / "w.parquet.rejects.jsonl"
    assert done.returncode == 2 and done.stderr == (
        f"longattn: error: no windows: the inputs hold no usable document (1 rejected rows: {rejects})\n"
    )
    reject = json.loads(rejects.read_text())
    assert reject["reason"] == "not a regular file (a FIFO, socket or device): not read"


def _without_file_permission_override() -> list[str]:
    """A command prefix under which permission bits bind, as for any user but root: root's
    capabilities that override them are dropped (setpriv); nothing for a user already."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop CAP_DAC_OVERRIDE")
    return ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]


INGEST_AND_PRINT_REJECTS = """
import json, sys
from pathlib import Path
from longattn_assets.corpus.ingest import ingest_category
from longattn_assets.storage import DataLayout
layout = DataLayout(sys.argv[2])
stats = ingest_category(Path(sys.argv[1]), "code", layout, num_shards=1)
lines = layout.category_file("rejects", "code", "raw_corpus.jsonl").read_text().splitlines()
print(json.dumps({"documents": stats.documents, "rejects": [(r["source"], r["reason"]) for r in map(json.loads, lines)]}))
"""


def test_unreadable_entries_are_rejects_with_their_reason_for_a_user_without_root_rights(tmp_path: Path):
    """A sub-folder that cannot be listed, a file that cannot be read and a folder without
    the execute bit: each a reject with its reason, the rest ingested (issue 23, item 7)."""
    prefix = _without_file_permission_override()
    folder = tmp_path / "input" / "code"
    write_jsonl(folder / "good.jsonl", [{"text": "readable text"}])
    write_jsonl(folder / "locked" / "inner.jsonl", [{"text": "behind a folder without read permission"}])
    write_jsonl(folder / "no-search" / "inner.jsonl", [{"text": "behind a folder without execute bit"}])
    write_jsonl(folder / "secret.jsonl", [{"text": "a file without read permission"}])
    modes = {folder / "locked": 0o311, folder / "no-search": 0o644, folder / "secret.jsonl": 0o200}
    for path, mode in modes.items():
        path.chmod(mode)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", INGEST_AND_PRINT_REJECTS, str(folder.parent), str(tmp_path / "root")],
            capture_output=True, text=True, cwd=REPO, timeout=300,
        )  # fmt: skip
    finally:
        for path in modes:
            path.chmod(0o755)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["documents"] == 1
    assert found["rejects"] == [
        ["locked", "folder that cannot be listed (Permission denied): none of its files are read"],
        ["no-search/inner.jsonl", "cannot be read: Permission denied"],
        ["secret.jsonl", "unreadable file after line 0: [Errno 13] Permission denied: '" + str(folder / "secret.jsonl") + "'"],
    ]
