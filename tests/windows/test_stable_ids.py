"""data_ids and windows do not depend on shard count, file order or file split."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from longattn_assets.corpus.ingest import ingest_category
from longattn_assets.storage import DataLayout, shard_key
from longattn_assets.windows.chunking import WindowSpec
from longattn_assets.windows.files import window_raw_shard
from tests.corpus_fixtures import stdlib_sources, write_jsonl

WINDOW = 256


def windows_of(input_dir: Path, root: Path, num_shards: int, tokenizer) -> dict[str, tuple]:
    layout = DataLayout(root)
    ingest_category(input_dir, "code", layout, num_shards)
    found: dict[str, tuple] = {}
    for index in range(num_shards):
        shard = shard_key(index)
        out = layout.shard_path("windowed_chunks", "code", shard)
        window_raw_shard(
            layout.shard_path("raw_corpus", "code", shard),
            tokenizer,
            WindowSpec("code", shard, WINDOW),
            out,
        )
        for row in pq.read_table(out).to_pylist():
            assert row["data_id"] not in found, "data_id repeated across shards"
            found[row["data_id"]] = (row["doc_id"], row["token_start"], tuple(row["token_ids"]))
    return found


@pytest.fixture
def two_layouts(tmp_path: Path) -> tuple[Path, Path]:
    rows = [{"id": name, "text": text} for name, text in stdlib_sources(30, min_chars=1_500)]
    forward, backward = tmp_path / "forward", tmp_path / "backward"
    write_jsonl(forward / "code" / "a.jsonl", rows[:10])
    write_jsonl(forward / "code" / "b.jsonl", rows[10:])
    reordered = rows[::-1]
    for i in range(0, 30, 7):  # other file count, other row order
        write_jsonl(backward / "code" / f"part-{i:02d}.jsonl", reordered[i : i + 7])
    return forward, backward


def test_same_windows_with_1_4_and_7_shards_and_any_file_order(two_layouts, tmp_path, tokenizer):
    forward, backward = two_layouts
    one = windows_of(forward, tmp_path / "r1", 1, tokenizer)
    four = windows_of(forward, tmp_path / "r4", 4, tokenizer)
    seven = windows_of(backward, tmp_path / "r7", 7, tokenizer)
    assert len(one) > 100
    assert one == four == seven


def test_shard_files_are_byte_identical_across_reruns(two_layouts, tmp_path, tokenizer):
    forward, _ = two_layouts
    windows_of(forward, tmp_path / "a", 3, tokenizer)
    windows_of(forward, tmp_path / "b", 3, tokenizer)
    for asset in ("raw_corpus", "windowed_chunks"):
        for index in range(3):
            name = f"{asset}/category=code/shard={shard_key(index)}.parquet"
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_windows_are_slices_of_the_document_tokens(tmp_path, tokenizer):
    name, text = stdlib_sources(1, min_chars=20_000)[0]
    write_jsonl(tmp_path / "in" / "code" / "x.jsonl", [{"id": name, "text": text}])
    found = windows_of(tmp_path / "in", tmp_path / "root", 1, tokenizer)
    ids = tokenizer.encode_batch([text])[0]
    assert found
    for doc_id, start, tokens in found.values():
        assert doc_id == name
        assert list(tokens) == ids[start : start + WINDOW]


def test_sampling_keeps_a_fixed_subset_whatever_the_order(two_layouts, tmp_path, tokenizer):
    forward, _ = two_layouts
    layout = DataLayout(tmp_path / "s")
    ingest_category(forward, "code", layout, 1)
    kept = []
    for fraction in (0.3, 0.3, 1.0):
        out = tmp_path / f"s{len(kept)}.parquet"
        stats, _ = window_raw_shard(
            layout.shard_path("raw_corpus", "code", "00000"),
            tokenizer,
            WindowSpec("code", "00000", WINDOW, fraction),
            out,
        )
        kept.append(set(pq.read_table(out, columns=["data_id"]).column(0).to_pylist()))
        assert stats.windows + stats.sampled_out == len(kept[-1]) + stats.sampled_out
    assert kept[0] == kept[1] and kept[0] < kept[2]
    assert 0.15 < len(kept[0]) / len(kept[2]) < 0.45
