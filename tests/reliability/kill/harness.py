"""Start a pipeline stage as a child process, SIGKILL it at a chosen moment, inspect the root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[3]
STARTED = "STEP_START"
OUTPUTS = {
    "ingest": ("raw_corpus", "rejects"),
    "windows": ("windowed_chunks",),
    "scores": ("scored_chunks",),
    "select": ("longabc_dataset", "longabc_report"),
}
ORDER = list(OUTPUTS)
KILLED = -signal.SIGKILL
# The stages run one shard (00000): with one shard in the partition set it is the whole
# category, so the selection takes it (it refuses a category with unscored shards).
CHILD_ENV = {**os.environ, "LONGATTN_NUM_SHARDS": "1"}


def stage_command(stage: str, root: Path, input_dir: Path, window: int, resume_chunk: int) -> list[str]:
    return [
        sys.executable, "-m", "tests.reliability.pipeline", stage, "--root", str(root),
        "--input", str(input_dir), "--window", str(window), "--resume-chunk", str(resume_chunk),
    ]  # fmt: skip


def run_child(
    command: list[str],
    kill_after: float | None = None,
    *,
    kill_when: Callable[[], bool] | None = None,
    marker: str | None = STARTED,
) -> tuple[int, float]:
    """Run ``command``; ``kill_after`` seconds after ``marker`` shows on stderr, SIGKILL it.

    ``kill_when``, if given, is polled instead and the kill sent once it returns True.
    Returns the exit code (``KILLED`` when the kill landed) and the seconds from the marker
    to the end. Timing from the marker, not from the start, puts the kill inside the work
    rather than inside Python's imports.
    """
    child = subprocess.Popen(
        command, cwd=REPO, env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seen = threading.Event()
    tail: list[str] = []

    def read() -> None:
        for line in child.stderr:
            tail.append(line)
            del tail[:-40]
            if marker in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while marker is not None and not seen.wait(0.05):
        if child.poll() is not None:
            break
    started = time.perf_counter()
    if kill_after is not None:
        time.sleep(kill_after)
    elif kill_when is not None:
        while child.poll() is None and not kill_when():
            time.sleep(0.01)
    if (kill_after is not None or kill_when is not None) and child.poll() is None:
        child.send_signal(signal.SIGKILL)
    code = child.wait(timeout=600)
    reader.join(timeout=5)
    if code not in (0, KILLED):
        raise AssertionError(f"{' '.join(command)} failed ({code}):\n{''.join(tail)}")
    return code, time.perf_counter() - started


def copy_outputs(source: Path, target: Path, stages: list[str]) -> None:
    for stage in stages:
        for folder in OUTPUTS[stage]:
            if (source / folder).is_dir():
                shutil.copytree(source / folder, target / folder)


def outputs_of(snap: dict[str, str], stages: list[str]) -> dict[str, str]:
    folders = tuple(f + "/" for stage in stages for f in OUTPUTS[stage])
    return {path: digest for path, digest in snap.items() if path.startswith(folders)}


def leftovers(root: Path) -> list[str]:
    """Temporary files, spill folders and scoring parts under ``root``."""
    found = [p for p in root.rglob(".tmp-*")]
    found += [p for p in root.rglob(".*.parts")]
    work = root / ".work"
    found += list(work.iterdir()) if work.is_dir() else []
    return sorted(p.relative_to(root).as_posix() for p in found)


def parquet_rows(root: Path, stage: str) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): pq.read_metadata(p).num_rows
        for folder in OUTPUTS[stage]
        for p in sorted((root / folder).rglob("*.parquet"))
    }

