"""One category's export, read back by mosaicml-streaming, megatron-core and datasets themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from longattn_assets.training import export as export_module
from longattn_assets.training.export import ExportSettings, export_category
from longattn_assets.training.inputs import read_selection
from tests.training.conftest import (
    WINDOW,
    folder_bytes,
    kept_in_rank_order,
    read_hf,
    read_mds,
    read_megatron,
    window_tokens,
)

VOCAB = 49152  # SmolLM2's tokenizer
BOS = 1


def _export(root: Path, out: Path, category: str = "code", vocab_size: int = VOCAB, **options):
    selection = read_selection(root / "longabc_dataset" / f"category={category}")
    return export_category(selection, out, ExportSettings.from_options(**options), vocab_size=vocab_size)


@pytest.fixture(scope="module")
def exported(selected_template, tmp_path_factory) -> tuple[Path, Path]:
    _, root = selected_template
    out = tmp_path_factory.mktemp("export") / "code"
    _export(root, out)
    return root, out


def test_every_format_holds_the_scored_token_ids_of_every_kept_window(exported, tmp_path):
    root, out = exported
    kept = kept_in_rank_order(root, "code")
    expected = [[BOS, *window_tokens(root, "code")[data_id]] for data_id in kept]  # as the scorer read them
    assert len(kept) > 20 and all(len(ids) == WINDOW + 1 for ids in expected)

    mds = read_mds(out / "mds")
    assert [s["data_id"] for s in mds] == kept  # best LDS first
    assert {s["category"] for s in mds} == {"code"}
    assert [s["input_ids"].tolist() for s in mds] == expected
    assert {s["input_ids"].dtype for s in mds} == {np.dtype(np.uint16)}

    megatron = read_megatron(out / "megatron" / "longabc")
    assert [doc.tolist() for doc in megatron] == expected
    assert {doc.dtype for doc in megatron} == {np.dtype(np.uint16)}

    hf = read_hf(out / "hf", tmp_path / "hf-cache")
    assert hf["data_id"] == kept and hf["input_ids"] == expected
    selected = pq.read_table(root / "longabc_dataset/category=code/selected.parquet")
    assert hf["content"] == selected.column("content").to_pylist()
    assert hf["lds"] == selected.column("lds").to_pylist()

    documents = pq.read_table(out / "documents.parquet")
    assert documents.column("data_id").to_pylist() == kept
    assert documents.column("rank").to_pylist() == list(range(1, len(kept) + 1))


def test_export_record_names_files_counts_and_vocabulary(exported):
    root, out = exported
    record = json.loads((out / "export.json").read_text())
    kept = kept_in_rank_order(root, "code")
    assert record["windows"] == len(kept) and record["tokens"] == len(kept) * (WINDOW + 1)
    assert record["categories"]["code"]["tokens"] == record["tokens"]
    assert record["vocab_size"] == VOCAB and record["bos_token_id"] == BOS and record["include_bos"] is True
    assert record["dtypes"] == {"mds": "uint16", "megatron": "uint16", "hf": "int32"}
    listed = {f["path"]: f["bytes"] for f in record["files"]}
    on_disk = {p: len(b) for p, b in folder_bytes(out).items() if p != "export.json"}
    assert listed == on_disk
    assert {"mds/index.json", "megatron/longabc.bin", "megatron/longabc.idx", "hf/README.md"} <= set(listed)


def test_bos_is_left_out_when_asked(selected_template, tmp_path):
    _, root = selected_template
    _export(root, tmp_path / "out", include_bos=False, formats="mds,megatron")
    kept = kept_in_rank_order(root, "code")
    tokens = window_tokens(root, "code")
    assert [s["input_ids"].tolist() for s in read_mds(tmp_path / "out" / "mds")] == [tokens[d] for d in kept]
    assert [d.tolist() for d in read_megatron(tmp_path / "out/megatron/longabc")] == [tokens[d] for d in kept]
    assert not (tmp_path / "out" / "hf").exists()


def test_megatron_files_are_the_bytes_of_megatron_cores_builder(exported, tmp_path):
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    _, out = exported
    builder = IndexedDatasetBuilder(str(tmp_path / "built.bin"), dtype=np.uint16)
    for sample in read_mds(out / "mds"):
        builder.add_item(torch.from_numpy(sample["input_ids"].astype(np.int64)))
        builder.end_document()
    builder.finalize(str(tmp_path / "built.idx"))
    assert (out / "megatron/longabc.bin").read_bytes() == (tmp_path / "built.bin").read_bytes()
    assert (out / "megatron/longabc.idx").read_bytes() == (tmp_path / "built.idx").read_bytes()


def test_a_vocabulary_over_65536_ids_is_written_as_32_bit(selected_template, tmp_path):
    _, root = selected_template
    result = _export(root, tmp_path / "out", vocab_size=128256, formats="mds,megatron")
    assert result.record["dtypes"] == {"mds": "uint32", "megatron": "int32"}
    mds = read_mds(tmp_path / "out" / "mds")
    megatron = read_megatron(tmp_path / "out" / "megatron" / "longabc")
    assert {s["input_ids"].dtype for s in mds} == {np.dtype(np.uint32)}
    assert {d.dtype for d in megatron} == {np.dtype(np.int32)}
    assert [s["input_ids"].tolist() for s in mds] == [d.tolist() for d in megatron]


def test_two_exports_are_the_same_bytes_whatever_the_memory_budget(exported, tmp_path):
    root, out = exported
    # 4 KB buckets (a quarter of the budget): the order is rebuilt from about ten of them
    _export(root, tmp_path / "again", memory_budget="16KB")
    assert folder_bytes(tmp_path / "again") == folder_bytes(out)


def test_a_current_export_is_kept_and_a_changed_setting_redoes_it(selected_template, tmp_path):
    _, root = selected_template
    out = tmp_path / "out"
    first = _export(root, out)
    stamp = (out / "export.json").stat().st_mtime_ns
    again = _export(root, out)
    assert again.reused and (out / "export.json").stat().st_mtime_ns == stamp
    changed = _export(root, out, include_bos=False)
    assert not changed.reused and changed.tokens == first.tokens - first.record["windows"]
    (out / "mds" / "shard.00000.mds").unlink()  # a file it lists is gone: no longer current
    assert not _export(root, out, include_bos=False).reused


def test_a_failed_export_leaves_the_previous_one_whole(exported, tmp_path, monkeypatch):
    root, out = exported
    target = tmp_path / "out"
    _export(root, target)
    before = folder_bytes(target)

    def broken(self):
        raise OSError("disk failed while writing the index")

    monkeypatch.setattr(export_module.MegatronOutput, "close", broken)
    with pytest.raises(OSError, match="disk failed"):
        _export(root, target, include_bos=False)
    assert folder_bytes(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left


def test_without_mosaicml_streaming_the_mds_output_says_how_to_install_it(selected_template, tmp_path, monkeypatch):
    import importlib.util
    import sys

    from longattn_assets.training.mds import MissingLibraryError

    _, root = selected_template
    find_spec = importlib.util.find_spec
    monkeypatch.delitem(sys.modules, "streaming", raising=False)  # put back after the test
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streaming" else find_spec(name, *a))
    with pytest.raises(MissingLibraryError, match="pip install --no-deps mosaicml-streaming==0.13.0"):
        _export(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert _export(root, tmp_path / "out", formats="megatron,hf").record["formats"] == ["megatron", "hf"]
