"""Per-chunk resume of a scoring run: parts kept, stale parts discarded, same bytes at the end."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from longattn_assets.scoring.resume import MANIFEST, parts_dir
from longattn_assets.scoring.windows_file import score_windows_file

CHUNK = 4


class Interrupted(Exception):
    pass


def _stop_after(windows: int):
    def progress(done: int, total: int) -> None:
        if done >= windows:
            raise Interrupted

    return progress


@pytest.fixture(scope="module")
def reference(tmp_path_factory, windows_file, cpu_scorer) -> bytes:
    out = tmp_path_factory.mktemp("reference") / "shard=00000.parquet"
    stats = score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK)
    assert stats["windows_resumed"] == 0
    return out.read_bytes()


def test_an_interrupted_run_resumes_after_its_last_finished_chunk(
    tmp_path: Path, windows_file, cpu_scorer, reference
):
    out = tmp_path / "category=code" / "shard=00000.parquet"
    with pytest.raises(Interrupted):
        score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK, progress=_stop_after(11))
    parts = sorted(p.name for p in parts_dir(out).glob("part-*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet"]  # 8 of the 11 scored are kept
    assert not out.exists() and not list(out.parent.glob("shard=*.parquet"))  # readers see nothing

    scored = []
    stats = score_windows_file(
        windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK, progress=lambda d, t: scored.append(d)
    )
    assert stats["windows_resumed"] == 2 * CHUNK
    assert stats["windows"] == pq.read_metadata(windows_file).num_rows
    assert out.read_bytes() == reference
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # parts removed


def test_parts_of_another_input_are_discarded(tmp_path: Path, windows_file, cpu_scorer, reference):
    out = tmp_path / "shard=00000.parquet"
    other = tmp_path / "other.parquet"
    pq.write_table(pq.read_table(windows_file).slice(2), other)  # same windows shifted by two
    with pytest.raises(Interrupted):
        score_windows_file(other, out, scorer=cpu_scorer, chunk_windows=CHUNK, progress=_stop_after(9))
    assert len(list(parts_dir(out).glob("part-*.parquet"))) == 2

    stats = score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK)
    assert stats["windows_resumed"] == 0
    assert out.read_bytes() == reference


def test_parts_of_another_chunk_size_or_a_corrupt_manifest_are_discarded(
    tmp_path: Path, windows_file, cpu_scorer, reference
):
    out = tmp_path / "shard=00000.parquet"
    with pytest.raises(Interrupted):
        score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=3, progress=_stop_after(6))
    assert json.loads((parts_dir(out) / MANIFEST).read_text())["chunk_windows"] == 3
    stats = score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK)
    assert stats["windows_resumed"] == 0 and out.read_bytes() == reference

    with pytest.raises(Interrupted):
        score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK, progress=_stop_after(5))
    (parts_dir(out) / MANIFEST).write_text("{not json")
    stats = score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK)
    assert stats["windows_resumed"] == 0 and out.read_bytes() == reference


def test_the_output_does_not_depend_on_the_chunk_size(tmp_path: Path, windows_file, cpu_scorer, reference):
    whole = tmp_path / "whole.parquet"
    score_windows_file(windows_file, whole, scorer=cpu_scorer, chunk_windows=10_000)
    assert whole.read_bytes() == reference


def test_a_part_that_lost_rows_is_scored_again(tmp_path: Path, windows_file, cpu_scorer, reference):
    out = tmp_path / "shard=00000.parquet"
    with pytest.raises(Interrupted):
        score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK, progress=_stop_after(9))
    first = parts_dir(out) / "part-00000.parquet"
    pq.write_table(pq.read_table(first).slice(1), first)
    stats = score_windows_file(windows_file, out, scorer=cpu_scorer, chunk_windows=CHUNK)
    assert stats["windows_resumed"] == CHUNK
    assert out.read_bytes() == reference
