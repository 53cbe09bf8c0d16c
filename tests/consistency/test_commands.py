"""`longattn window` and `longattn select` keep ids unique and refuse windows and scores that
do not belong together (issue 11, scenarios 4 and 5)."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from longattn_assets.cli import main
from longattn_assets.windows.ids import tokens_hash
from tests.consistency.conftest import code_rows
from tests.consistency.pipeline import WINDOW
from tests.corpus_fixtures import write_jsonl


def window(source: Path, output: Path, size: int = WINDOW) -> int:
    return main(["window", str(source), "--category", "code", "--output", str(output), "--window-size", str(size)])


def score(windows: Path, output: Path) -> int:
    return main(["score", str(windows), "--output", str(output), "--device", "cpu"])


def test_select_refuses_scores_of_other_windows_in_one_line(tmp_path: Path, capsys):
    """Scenario 4: windows of W=128 with scores of W=256 windows: exit 2, nothing written."""
    source = write_jsonl(tmp_path / "in.jsonl", code_rows(3))
    assert window(source, tmp_path / "w128.parquet") == 0
    assert window(source, tmp_path / "w256.parquet", 2 * WINDOW) == 0
    assert score(tmp_path / "w256.parquet", tmp_path / "s256.parquet") == 0
    capsys.readouterr()
    code = main(["select", "--windows", str(tmp_path / "w128.parquet"), "--scores",
                 str(tmp_path / "s256.parquet"), "--output", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("longattn: error: ")
    assert "s256.parquet was scored from windows" in err and "not among the given windows files" in err
    assert not (tmp_path / "out").exists()


def test_select_refuses_windows_without_scores(tmp_path: Path, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", code_rows(4))
    write_jsonl(tmp_path / "other.jsonl", code_rows(2, offset=4))
    assert window(source, tmp_path / "w/a.parquet") == 0
    assert window(tmp_path / "other.jsonl", tmp_path / "w/b.parquet") == 0
    assert score(tmp_path / "w/a.parquet", tmp_path / "s/a.parquet") == 0
    capsys.readouterr()
    code = main(["select", "--windows", str(tmp_path / "w/*.parquet"), "--scores",
                 str(tmp_path / "s/*.parquet"), "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "windows without scores: " in capsys.readouterr().err


def test_window_rejects_duplicate_texts_so_ids_stay_unique(tmp_path: Path, capsys):
    """Scenario 5: a file repeating texts; ids are unique and a huge budget keeps each window once."""
    rows = code_rows(3)
    rows += [{"id": "copy-" + r["id"], "text": r["text"]} for r in rows[:2]]
    source = write_jsonl(tmp_path / "dupes.jsonl", rows)
    assert window(source, tmp_path / "w.parquet") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rejects"] == 2
    reasons = [json.loads(line)["reason"] for line in Path(summary["rejects_file"]).read_text().splitlines()]
    assert all(reason.startswith("duplicate text") for reason in reasons)
    ids = pq.read_table(tmp_path / "w.parquet").column("data_id").to_pylist()
    assert len(ids) == len(set(ids)) == summary["windows"]

    assert score(tmp_path / "w.parquet", tmp_path / "s.parquet") == 0
    capsys.readouterr()
    assert main(["select", "--windows", str(tmp_path / "w.parquet"), "--scores", str(tmp_path / "s.parquet"),
                 "--output", str(tmp_path / "out"), "--token-budget", str(10**12)]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert result["kept"] == result["n"] == len(ids)
    selected = pq.read_table(tmp_path / "out/selected.parquet").column("data_id").to_pylist()
    assert sorted(selected) == sorted(ids)


def edit_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` (same length) once, then restore the file's mtime, as an edit
    followed by `touch -r`, `cp -p`, `rsync -t` or `tar` leaves it."""
    assert len(old) == len(new)
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_select_refuses_windows_of_an_edited_input_with_scores_of_the_old_one(tmp_path: Path, capsys):
    """Issue 23 item 2: one word changed, size and mtime kept; the new windows and the old
    scores are refused in one line with exit 2 (it said "kept 2 of 4" and wrote 1 row)."""
    source = write_jsonl(tmp_path / "in.jsonl", code_rows(2))
    assert window(source, tmp_path / "old.windows.parquet") == 0
    assert score(tmp_path / "old.windows.parquet", tmp_path / "old.scores.parquet") == 0
    edit_keeping_size_and_mtime(source, "import", "IMPORT")
    assert window(source, tmp_path / "new.windows.parquet") == 0
    capsys.readouterr()
    code = main(["select", "--windows", str(tmp_path / "new.windows.parquet"), "--scores",
                 str(tmp_path / "old.scores.parquet"), "--output", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "old.scores.parquet was scored from windows" in err and "not among the given windows files" in err
    assert not (tmp_path / "out").exists()


def test_scores_of_other_window_contents_are_refused_window_by_window(tmp_path: Path, capsys):
    """Even where provenance cannot tell two windows files apart (here: the same record), the
    token hashes the scorer wrote beside each score must be those of the windows."""
    source = write_jsonl(tmp_path / "in.jsonl", code_rows(2))
    assert window(source, tmp_path / "w.parquet") == 0
    assert score(tmp_path / "w.parquet", tmp_path / "s.parquet") == 0
    table = pq.read_table(tmp_path / "w.parquet")
    ids = table.column("token_ids").to_pylist()
    ids[1] = list(reversed(ids[1]))  # another window content under the same data_id and record
    hashes = [tokens_hash(np.array(t, np.int32)) for t in ids]
    table = table.set_column(table.schema.get_field_index("token_ids"), "token_ids", pa.array(ids, pa.list_(pa.int32())))
    table = table.set_column(table.schema.get_field_index("tokens_hash"), "tokens_hash", pa.array(hashes))
    pq.write_table(table, tmp_path / "w.parquet")  # the provenance record comes along
    capsys.readouterr()
    code = main(["select", "--windows", str(tmp_path / "w.parquet"), "--scores", str(tmp_path / "s.parquet"),
                 "--output", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    data_id = table.column("data_id")[1].as_py()
    assert f"s.parquet holds the scores of other windows than {tmp_path / 'w.parquet'}: 1 windows differ in content ({data_id})" in err
    assert not (tmp_path / "out").exists()


def test_select_refuses_non_finite_scores_naming_the_windows(tmp_path: Path, capsys):
    """Issue 23 item 5: a NaN ds in the input of `longattn select`: exit 2, nothing written
    (it wrote a dataset whose card said "ds": {"mean": NaN})."""
    source = write_jsonl(tmp_path / "in.jsonl", code_rows(2))
    assert window(source, tmp_path / "w.parquet") == 0
    assert score(tmp_path / "w.parquet", tmp_path / "s.parquet") == 0
    table = pq.read_table(tmp_path / "s.parquet")
    ds = table.column("ds").to_pylist()
    ds[2] = math.nan
    pq.write_table(table.set_column(table.schema.get_field_index("ds"), "ds", pa.array(ds)), tmp_path / "s.parquet")
    capsys.readouterr()
    code = main(["select", "--windows", str(tmp_path / "w.parquet"), "--scores", str(tmp_path / "s.parquet"),
                 "--output", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    data_id = table.column("data_id")[2].as_py()
    assert f"1 of {table.num_rows} windows of the scores read have a NaN or infinite ds/du ({data_id})" in err
    assert not (tmp_path / "out").exists()


def test_select_refuses_scores_of_another_checkpoint_with_the_same_tokenizer(tmp_path: Path, checkpoints, capsys):
    """Issue 23 item 1: scores made by one checkpoint are not those of another that shares its
    tokenizer; `--model` names the model the scores must come from."""
    first, second = checkpoints
    source = write_jsonl(tmp_path / "in.jsonl", code_rows(2))
    assert main(["window", str(source), "--category", "code", "--output", str(tmp_path / "w.parquet"),
                 "--window-size", str(WINDOW), "--model", str(first)]) == 0  # fmt: skip
    assert main(["score", str(tmp_path / "w.parquet"), "--output", str(tmp_path / "s.parquet"),
                 "--device", "cpu", "--model", str(first)]) == 0  # fmt: skip
    select = ["select", "--windows", str(tmp_path / "w.parquet"), "--scores", str(tmp_path / "s.parquet")]
    capsys.readouterr()
    assert main([*select, "--output", str(tmp_path / "out"), "--model", str(second)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"not by {second}" in err
    assert not (tmp_path / "out").exists()
    assert main([*select, "--output", str(tmp_path / "out"), "--model", str(first)]) == 0
