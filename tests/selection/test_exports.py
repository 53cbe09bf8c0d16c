"""The outputs of one category: selected.parquet, the LongAttn JSONL and the HF datasets folder."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from longattn_assets.selection.exports import export_category
from longattn_assets.selection.rules import SelectionSettings

SCORES = [(f"w{i:02d}", (i * 37 % 23) / 23, (i % 5) / 1000, 40 + i) for i in range(24)]
TEXT_BYTES = len("text of w00 <b>&</b> ünïcode".encode())


def read_card(hf_dir: Path) -> tuple[dict, str]:
    _, front, body = (hf_dir / "README.md").read_text(encoding="utf-8").split("---\n", 2)
    return yaml.safe_load(front), body


def read_hf_with_pyarrow(hf_dir: Path) -> pa.Table:
    """Follow the card's own data_files pattern, as the Hub does."""
    card, _ = read_card(hf_dir)
    (config,) = card["configs"]
    (files,) = config["data_files"]
    assert config["config_name"] == "default" and files["split"] == "train"
    return pa.concat_tables(pq.read_table(p) for p in sorted(hf_dir.glob(files["path"])))


@pytest.fixture
def exported(make_category, tmp_path):
    windows, scores = make_category({"00000": SCORES[:12], "00001": SCORES[12:]})
    out = tmp_path / "out"
    summary = export_category(
        windows, scores, out, category="book", hf_file_bytes=3 * TEXT_BYTES,
        extra_settings={"window_size": 2048},
    )  # fmt: skip
    return out, summary, (windows, scores)


def test_jsonl_lines_are_the_selected_rows_in_rank_order(exported):
    out, summary, _ = exported
    selected = pq.read_table(out / "selected.parquet")
    lines = (out / "longabc.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == summary.kept == 12
    assert [list(r) for r in records] == [["content", "data_id"]] * len(records)
    assert [r["data_id"] for r in records] == selected.column("data_id").to_pylist()
    assert [r["content"] for r in records] == selected.column("content").to_pylist()
    assert selected.column("rank").to_pylist() == list(range(1, 13))
    assert "ünïcode" in lines[0]


def test_hf_folder_reads_back_through_its_card_with_pyarrow(exported):
    out, summary, _ = exported
    hf = out / "hf"
    table = read_hf_with_pyarrow(hf)
    selected = pq.read_table(out / "selected.parquet")
    assert table.column_names == ["content", "data_id", "ds", "du", "lds"]
    assert table.to_pydict() == selected.select(table.column_names).to_pydict()
    card, body = read_card(hf)
    features = card["dataset_info"]["features"]
    assert features == [
        {"name": "content", "dtype": "string"},
        {"name": "data_id", "dtype": "string"},
        {"name": "ds", "dtype": "float64"},
        {"name": "du", "dtype": "float64"},
        {"name": "lds", "dtype": "float64"},
    ]
    assert card["dataset_info"]["splits"][0]["num_examples"] == summary.kept
    assert "| rule | fraction |" in body and "| window_size | 2048 |" in body
    assert f"| kept | {summary.kept} |" in body


def test_hf_files_are_bounded_and_numbered_of_n(exported):
    out, _, _ = exported
    files = sorted((out / "hf" / "data").iterdir())
    assert [f.name for f in files] == [f"train-{i:05d}-of-00004.parquet" for i in range(4)]
    for f in files:
        texts = pq.read_table(f).column("content").to_pylist()
        assert sum(len(t.encode()) for t in texts) <= 3 * TEXT_BYTES


def test_reexport_replaces_parts_and_removes_stale_ones(exported, tmp_path):
    out, _, (windows, scores) = exported
    export_category(
        windows, scores, out, category="book",
        settings=SelectionSettings.from_options(keep_fraction=0.25),
    )  # fmt: skip
    files = sorted(p.name for p in (out / "hf" / "data").iterdir())
    assert files == ["train-00000-of-00001.parquet"]
    assert read_hf_with_pyarrow(out / "hf").num_rows == 6
    assert json.loads((out / "selection.json").read_text())["kept"] == 6


def test_empty_selection_still_gives_a_readable_dataset(make_category, tmp_path):
    windows, scores = make_category({"00000": SCORES})
    out = tmp_path / "out"
    settings = SelectionSettings.from_options(keep_fraction=0.0)
    export_category(windows, scores, out, category="book", settings=settings)
    assert (out / "longabc.jsonl").read_text() == ""
    table = read_hf_with_pyarrow(out / "hf")
    assert table.num_rows == 0 and table.column_names == ["content", "data_id", "ds", "du", "lds"]


def test_hf_folder_loads_with_datasets(exported, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out, _, _ = exported
    cache = str(tmp_path / "hf-cache")
    # The folder alone: load_dataset finds the parquet files through the card's configs.
    by_card = datasets.load_dataset(str(out / "hf"), split="train", cache_dir=cache)
    files = sorted(str(p) for p in (out / "hf" / "data").glob("train-*.parquet"))
    by_files = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache)
    selected = pq.read_table(out / "selected.parquet")
    for loaded in (by_card, by_files):
        assert loaded.num_rows == selected.num_rows
        assert loaded["data_id"] == selected.column("data_id").to_pylist()
        assert loaded["content"][0] == selected.column("content")[0].as_py()
