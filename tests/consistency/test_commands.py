"""`longattn window` and `longattn select` keep ids unique and refuse windows and scores that
do not belong together (issue 11, scenarios 4 and 5)."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from longattn_assets.cli import main
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
