"""Small real inputs for the fault tests: stdlib text, a windows file, a scorer."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.corpus_fixtures import stdlib_sources, write_jsonl

KILL_WINDOW = 256
RESUME_CHUNK = 4


@pytest.fixture(scope="session")
def code_input(tmp_path_factory) -> Path:
    """An input folder with one category, ``code``: 16 real stdlib modules in two files."""
    root = tmp_path_factory.mktemp("input")
    docs = stdlib_sources(16, min_chars=3_000, offset=5)
    rows = [{"id": name, "text": text[:6_000]} for name, text in docs]
    write_jsonl(root / "code" / "part-0.jsonl", rows[:8])
    write_jsonl(root / "code" / "part-1.jsonl", [{"content": r["text"], "id": r["id"]} for r in rows[8:]])
    return root


@pytest.fixture(scope="session")
def windows_file(tmp_path_factory, tokenizer) -> Path:
    """A windowed_chunks file of about twenty 128-token windows of real text."""
    from longattn_assets.corpus.records import Document
    from longattn_assets.windows.chunking import WindowSpec
    from longattn_assets.windows.files import document_batches, files_provenance, write_windows

    docs = [Document(text[:2_500], name, "stdlib", i) for i, (name, text) in enumerate(stdlib_sources(4, 4_000))]
    path = tmp_path_factory.mktemp("windows") / "shard=00000.parquet"
    spec = WindowSpec("code", "00000", 128)
    record = files_provenance(spec, tokenizer, "stdlib")
    write_windows(document_batches(docs, []), tokenizer, spec, path, provenance=record)
    assert pq.read_metadata(path).num_rows >= 16
    return path


@pytest.fixture(scope="session")
def cpu_scorer():
    from longattn_assets.scoring.factory import build_scorer

    return build_scorer(None, device="cpu")


@pytest.fixture(scope="session")
def reference(tmp_path_factory, code_input: Path) -> tuple[Path, dict[str, float], dict[str, str]]:
    """Every stage run once, uninterrupted, each as a child process (code, shard 00000).

    Returns the root, each step's seconds (from its STEP_START) and every file's digest.
    """
    from .kill.harness import ORDER, run_child, stage_command
    from .pipeline import snapshot

    root = tmp_path_factory.mktemp("reference")
    seconds = {}
    for stage in ORDER:
        code, seconds[stage] = run_child(stage_command(stage, root, code_input, KILL_WINDOW, RESUME_CHUNK))
        assert code == 0
    return root, seconds, snapshot(root)
