"""Resource faults: a bad model, foreign windows, out-of-memory batches and a full disk.

Each fault is injected into a real asset run (Dagster, in process) or a real `longattn`
command, and the test checks the run's outcome and what is left on disk.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from longattn_assets.model.source import resolve_model
from longattn_assets.scoring.scorer import Layer0Scorer

from ..conftest import KILL_WINDOW
from ..kill.harness import leftovers
from ..pipeline import materialize
from ..record import record

BATCH_TOKENS = 4 * (KILL_WINDOW + 1)  # four windows (plus BOS) per batch
SCORED = Path("scored_chunks/category=code/shard=00000.parquet")
WINDOWS = Path("windowed_chunks/category=code/shard=00000.parquet")


@pytest.fixture(scope="module")
def windowed(tmp_path_factory, code_input: Path) -> Path:
    root = tmp_path_factory.mktemp("windowed")
    materialize("ingest", root, code_input, window=KILL_WINDOW)
    materialize("windows", root, code_input, window=KILL_WINDOW)
    return root


@pytest.fixture(scope="module")
def scored_reference(tmp_path_factory, windowed: Path, code_input: Path) -> bytes:
    root = tmp_path_factory.mktemp("scored")
    shutil.copytree(windowed, root, dirs_exist_ok=True)
    materialize("scores", root, code_input, window=KILL_WINDOW, batch_tokens=BATCH_TOKENS)
    return (root / SCORED).read_bytes()


@pytest.fixture
def root(tmp_path: Path, windowed: Path) -> Path:
    shutil.copytree(windowed, tmp_path / "root")
    return tmp_path / "root"


def _bad_models(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Model spec -> (the words the error must contain, why)."""
    real = resolve_model().path
    junk, truncated = tmp_path / "junk.gguf", tmp_path / "truncated.gguf"
    junk.write_bytes(os.urandom(4096))
    with open(real, "rb") as source:
        truncated.write_bytes(source.read(2_000_000))
    return {
        str(tmp_path / "missing.gguf"): ("does not exist", "missing file"),
        str(junk): ("this file is not GGUF", "random bytes"),
        str(truncated): ("not a readable model file", "GGUF cut at 2 MB"),
        str(tmp_path / "no-such-dir" / "model"): ("does not exist", "missing directory"),
    }


def _failure(result, node: str) -> str:
    """The step's error and its causes, as a person reads them in the UI."""
    assert not result.success
    error, messages = result.failure_data_for_node(node).error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


def test_a_missing_or_corrupt_model_fails_scored_chunks_before_any_work(
    root: Path, code_input: Path, tmp_path: Path
):
    models = _bad_models(tmp_path)
    for spec, (words, _) in models.items():
        result = materialize("scores", root, code_input, window=KILL_WINDOW, model=spec, raise_on_error=False)
        message = _failure(result, "scored_chunks")
        assert words in message and Path(spec).name in message, message
        assert not (root / "scored_chunks").exists(), "work started before the model was checked"
    record("resource faults", "bad model file (asset)", faults=len(models), survived=len(models), rows_checked=0, rows_lost=0)


def test_a_missing_or_corrupt_model_fails_longattn_score_before_any_work(root: Path, tmp_path: Path):
    for spec, (words, _) in _bad_models(tmp_path).items():
        out = tmp_path / "out.parquet"
        done = subprocess.run(
            [sys.executable, "-m", "longattn_assets.cli", "score", str(root / WINDOWS),
             "--output", str(out), "--model", spec, "--device", "cpu"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode != 0
        last = done.stderr.strip().splitlines()[-1]
        assert words in last and Path(spec).name in last, done.stderr[-2000:]
        assert "scored" not in done.stderr and not out.exists()


def test_windows_of_another_tokenizer_are_refused(root: Path, code_input: Path):
    windows = pq.read_table(root / WINDOWS)
    foreign = windows.set_column(
        windows.schema.get_field_index("tokenizer"), "tokenizer",
        pa.array(["tok-0123456789abcdef"] * windows.num_rows, pa.string()),
    )  # fmt: skip
    pq.write_table(foreign, root / WINDOWS)
    result = materialize("scores", root, code_input, window=KILL_WINDOW, raise_on_error=False)
    message = _failure(result, "scored_chunks")
    assert "tok-0123456789abcdef" in message and "re-window" in message
    assert not (root / SCORED).exists() and leftovers(root) == []


def test_out_of_memory_batches_are_split_and_the_run_succeeds(
    root: Path, code_input: Path, scored_reference: bytes, monkeypatch
):
    original = Layer0Scorer._score_batch
    sizes: list[int] = []

    def score_batch(self, windows):
        sizes.append(len(windows))
        if len(windows) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (injected)")
        return original(self, windows)

    monkeypatch.setattr(Layer0Scorer, "_score_batch", score_batch)
    result = materialize("scores", root, code_input, window=KILL_WINDOW, batch_tokens=BATCH_TOKENS)
    assert result.success
    ooms = sum(size > 1 for size in sizes)
    windows = pq.read_metadata(root / WINDOWS).num_rows
    assert ooms >= 2 and sizes.count(1) == windows
    assert (root / SCORED).read_bytes() == scored_reference
    record("resource faults", "out of memory on every batch > 1 window", faults=ooms, survived=1,
           rows_checked=windows, rows_lost=windows - pq.read_metadata(root / SCORED).num_rows)  # fmt: skip


def test_another_runtime_error_is_not_taken_for_out_of_memory(root: Path, code_input: Path, monkeypatch):
    def score_batch(self, windows):
        raise RuntimeError("expected all tensors to be on the same device (injected)")

    monkeypatch.setattr(Layer0Scorer, "_score_batch", score_batch)
    result = materialize("scores", root, code_input, window=KILL_WINDOW, raise_on_error=False)
    assert "same device" in _failure(result, "scored_chunks")
    assert not (root / SCORED).exists()


def _assert_full_disk_handled(result, node: str, folder: Path, named: Path | None = None) -> None:
    message = _failure(result, node)
    assert "no space left to write" in message and str(named or folder) in message, message
    for path in [*folder.rglob("shard=*.parquet"), *folder.rglob("part-*.parquet")]:
        pq.read_metadata(path)  # whatever is visible, and every kept part, is whole
    # A scoring parts folder stays for the next run to resume from; nothing else may.
    assert [p for p in leftovers(folder.parent) if not p.endswith(".parts")] == []


def test_a_full_disk_mid_write_leaves_no_partial_file(root: Path, code_input: Path, monkeypatch):
    real_write = pq.write_table

    def write_half_then_fail(table, where, **kwargs):
        real_write(table.slice(0, table.num_rows // 2), where, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)
    result = materialize("scores", root, code_input, window=KILL_WINDOW, raise_on_error=False)
    _assert_full_disk_handled(result, "scored_chunks", root / "scored_chunks")
    assert not (root / SCORED).exists()


def _mount_tmpfs(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def test_a_real_full_disk_fails_ingest_clearly_and_keeps_the_old_files(tmp_path: Path, code_input: Path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "16k"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        root = disk / "root"
        result = materialize("ingest", root, code_input, window=KILL_WINDOW, raise_on_error=False)
        # Ingest's sorted runs (under the data root's .work) fill the disk before any shard.
        _assert_full_disk_handled(result, "raw_corpus", root / "raw_corpus", named=root)
        record("resource faults", "disk full (tmpfs 16 KiB)", faults=1, survived=1, rows_checked=0, rows_lost=0)
    finally:
        subprocess.run(["umount", str(disk)], check=True)
