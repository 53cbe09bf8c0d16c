"""Same inputs and settings, same outputs: across runs, shard counts, threads and batch sizes.

Reruns must give byte-identical files. Changing how the work is cut (shard count, torch
threads, windowing and scoring batch sizes) must give the same rows; windows, scores and
the selection are compared as sets of rows without the ``shard`` column, which records the
cut itself.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from longattn_assets.corpus.ingest import ingest_category
from longattn_assets.scoring.windows_file import score_windows_file
from longattn_assets.selection.exports import JSONL_FILE, SELECTED_FILE, export_category
from longattn_assets.storage import DataLayout, shard_key
from longattn_assets.windows.chunking import WindowSpec
from longattn_assets.windows.files import window_raw_shard

from ..conftest import KILL_WINDOW, RESUME_CHUNK
from ..kill.harness import ORDER, run_child, stage_command
from ..pipeline import snapshot
from ..record import record

WINDOW = 128


def test_a_rerun_in_another_process_gives_every_file_byte_for_byte(reference, code_input: Path, tmp_path: Path):
    _, _, expected = reference
    root = tmp_path / "root"
    for stage in ORDER:  # child processes, with the reference's environment (one shard)
        assert run_child(stage_command(stage, root, code_input, KILL_WINDOW, RESUME_CHUNK))[0] == 0
    assert snapshot(root) == expected
    assert {Path(p).suffix for p in expected} >= {".parquet", ".jsonl", ".json", ".html", ".md"}
    rows = sum(pq.read_metadata(root / p).num_rows for p in expected if p.endswith(".parquet"))
    record("determinism", f"rerun: all {len(expected)} files of every asset", faults=0, survived=1,
           rows_checked=rows, rows_lost=0)  # fmt: skip


def _run(input_dir: Path, root: Path, shards: int, tokenizer, scorer, docs_per_batch: int = 64) -> DataLayout:
    layout = DataLayout(root)
    ingest_category(input_dir, "code", layout, shards)
    for index in range(shards):
        key = shard_key(index)
        windows = layout.shard_path("windowed_chunks", "code", key)
        source = layout.shard_path("raw_corpus", "code", key)
        window_raw_shard(source, tokenizer, WindowSpec("code", key, WINDOW), windows, docs_per_batch=docs_per_batch)
        score_windows_file(windows, layout.shard_path("scored_chunks", "code", key), scorer=scorer)
    export_category(
        layout.shard_glob("windowed_chunks", "code"), layout.shard_glob("scored_chunks", "code"),
        layout.category_dir("longabc_dataset", "code"), category="code",
    )  # fmt: skip
    return layout


def _rows(layout: DataLayout, asset: str, drop: tuple[str, ...] = ("shard",)) -> list[tuple]:
    tables = [pq.read_table(p) for p in layout.shard_paths(asset, "code")]
    table = pa.concat_tables(tables)
    table = table.drop_columns([c for c in drop if c in table.column_names])
    return sorted(tuple(str(v) for v in row.values()) for row in table.to_pylist())


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory, code_input: Path, tokenizer, cpu_scorer) -> DataLayout:
    return _run(code_input, tmp_path_factory.mktemp("one"), 1, tokenizer, cpu_scorer)


def test_shard_count_changes_no_row(one_shard: DataLayout, code_input: Path, tmp_path: Path, tokenizer, cpu_scorer):
    three = _run(code_input, tmp_path / "three", 3, tokenizer, cpu_scorer)
    checked = 0
    for asset in ("raw_corpus", "windowed_chunks", "scored_chunks"):
        rows = _rows(three, asset)
        assert rows == _rows(one_shard, asset), asset
        checked += len(rows)
    selected = [three.category_dir("longabc_dataset", "code") / SELECTED_FILE,
                one_shard.category_dir("longabc_dataset", "code") / SELECTED_FILE]  # fmt: skip
    a, b = (pq.read_table(p).drop_columns(["shard"]) for p in selected)
    assert a.equals(b)  # same windows, same order (ties broken by data_id)
    jsonl = [layout.category_dir("longabc_dataset", "code") / JSONL_FILE for layout in (three, one_shard)]
    assert jsonl[0].read_bytes() == jsonl[1].read_bytes()
    record("determinism", "1 vs 3 shards: corpus, windows, scores, selection", faults=0, survived=1,
           rows_checked=checked + a.num_rows, rows_lost=0)  # fmt: skip


def test_windowing_batch_size_changes_no_row(one_shard: DataLayout, tokenizer, tmp_path: Path):
    source = one_shard.shard_path("raw_corpus", "code", "00000")
    tables = []
    for docs_per_batch in (1, 5, 64):
        out = tmp_path / f"windows-{docs_per_batch}.parquet"
        window_raw_shard(source, tokenizer, WindowSpec("code", "00000", WINDOW), out, docs_per_batch=docs_per_batch)
        tables.append(pq.read_table(out))
    assert tables[0].num_rows > 0
    assert all(t.equals(tables[0]) for t in tables[1:])


def test_torch_threads_and_scoring_batches_change_no_byte(windows_file: Path, cpu_scorer, tmp_path: Path):
    threads = torch.get_num_threads()
    outputs = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            out = tmp_path / f"threads-{count}.parquet"
            score_windows_file(windows_file, out, scorer=cpu_scorer)
            outputs.append(out.read_bytes())
    finally:
        torch.set_num_threads(threads)
    single = tmp_path / "one-window-per-batch.parquet"
    score_windows_file(windows_file, single, model=None, device="cpu", batch_tokens=WINDOW + 1)
    outputs.append(single.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    record("determinism", "torch threads 1 vs 2, batch of 1 vs all", faults=0, survived=3,
           rows_checked=3 * pq.read_metadata(windows_file).num_rows, rows_lost=0)  # fmt: skip
