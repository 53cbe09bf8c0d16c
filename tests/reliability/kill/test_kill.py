"""kill -9 inside each stage, then a rerun: the outputs are the uninterrupted run's bytes.

Each stage runs as a child process (Dagster's in-process executor, one partition) on a copy
of the reference root that holds only the stages before it. The child is SIGKILLed at a
seeded random moment after its step starts. Right after the kill, every file a reader's
glob can see must already be complete (the reference's exact bytes); after a rerun the
stage's files must equal the reference's byte for byte, with no row lost or duplicated
and no temporary file, spill folder or scoring part left behind.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ..conftest import KILL_WINDOW, RESUME_CHUNK
from ..pipeline import snapshot
from ..record import record
from .harness import (
    KILLED,
    ORDER,
    copy_outputs,
    leftovers,
    outputs_of,
    parquet_rows,
    run_child,
    stage_command,
)

SEED = 2502_16860
KILLS = 3
UNIQUE_KEY = {"raw_corpus": "doc_hash", "windowed_chunks": "data_id", "scored_chunks": "data_id"}


def _assert_no_duplicates(root: Path) -> None:
    for folder, key in UNIQUE_KEY.items():
        files = sorted((root / folder).rglob("shard=*.parquet"))
        values = [v for f in files for v in pq.read_table(f, columns=[key]).column(key).to_pylist()]
        assert len(values) == len(set(values)), f"duplicated {key} in {folder}"


@pytest.mark.parametrize("stage", ORDER)
def test_kill_9_inside_a_stage_then_rerun_gives_the_uninterrupted_bytes(
    stage: str, reference, code_input: Path, tmp_path: Path
):
    ref_root, seconds, ref_snap = reference
    done = ORDER[: ORDER.index(stage) + 1]
    expected = outputs_of(ref_snap, done)
    expected_rows = parquet_rows(ref_root, stage)
    rng = random.Random(f"{SEED}-{stage}")
    kills = rows_checked = rows_lost = 0
    for attempt in range(KILLS):
        root = tmp_path / f"attempt-{attempt}"
        copy_outputs(ref_root, root, ORDER[: ORDER.index(stage)])
        command = stage_command(stage, root, code_input, KILL_WINDOW, RESUME_CHUNK)
        code, _ = run_child(command, kill_after=rng.uniform(0.05, 0.95) * seconds[stage])
        kills += code == KILLED

        visible = outputs_of(snapshot(root), done)
        partial = {path for path, digest in visible.items() if digest != expected[path]}
        assert not partial, f"a reader could see incomplete files after the kill: {partial}"

        assert run_child(command)[0] == 0
        assert outputs_of(snapshot(root), done) == expected
        assert leftovers(root) == []
        _assert_no_duplicates(root)
        rows = parquet_rows(root, stage)
        rows_checked += sum(rows.values())
        rows_lost += sum(expected_rows.values()) - sum(rows.values())
    record("kill -9", f"stage {stage}", faults=kills, survived=KILLS, rows_checked=rows_checked, rows_lost=rows_lost)
    assert kills >= 1, "no kill landed while the step was running"
    assert rows_lost == 0


def test_scoring_killed_mid_shard_resumes_from_its_parts(reference, code_input: Path, tmp_path: Path):
    ref_root, seconds, ref_snap = reference
    root = tmp_path / "root"
    copy_outputs(ref_root, root, ORDER[:2])
    command = stage_command("scores", root, code_input, KILL_WINDOW, 1)
    def parts() -> list[Path]:
        return sorted(root.rglob(".*.parts/part-*.parquet"))

    code, _ = run_child(command, kill_when=lambda: len(parts()) >= 2)
    assert code == KILLED and len(parts()) >= 2
    kept = len(parts())

    # The rerun is a child too: it must see the reference's one-shard partitions.
    report = tmp_path / "metadata.json"
    assert run_child([*command, "--metadata-out", str(report)])[0] == 0
    metadata = json.loads(report.read_text())["scored_chunks"]
    assert metadata["windows_resumed"] >= kept
    assert outputs_of(snapshot(root), ORDER[:3]) == outputs_of(ref_snap, ORDER[:3])
    assert leftovers(root) == []


def test_readers_globs_never_match_temporaries_or_parts(reference, tmp_path: Path):
    import polars as pl

    from longattn_assets.storage import DataLayout

    ref_root = reference[0]
    root = tmp_path / "root"
    copy_outputs(ref_root, root, ORDER[:3])
    layout = DataLayout(root)
    folder = layout.category_dir("scored_chunks", "code")
    real = layout.shard_paths("scored_chunks", "code")
    junk = folder / ".tmp-shard=00001.parquet.abcdef-1.0000"
    junk.write_bytes(real[0].read_bytes()[:100])  # a partial Parquet file
    parts = folder / ".shard=00002.parquet.parts"
    parts.mkdir()
    (parts / "part-00000.parquet").write_bytes(real[0].read_bytes())

    assert layout.shard_paths("scored_chunks", "code") == real
    glob = layout.shard_glob("scored_chunks", "code")
    rows = sum(pq.read_metadata(p).num_rows for p in real)
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall()[0][0] == rows
    assert pl.scan_parquet(glob).select(pl.len()).collect().item() == rows
