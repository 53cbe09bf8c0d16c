"""A small corpus and the pipeline under several shard counts (see pipeline.py)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.consistency.pipeline import ShardCounts, shard_counts
from tests.corpus_fixtures import stdlib_sources, write_jsonl

DOC_CHARS = 2_400


def code_rows(count: int, offset: int = 0) -> list[dict]:
    return [
        {"id": name, "text": text[:DOC_CHARS]}
        for name, text in stdlib_sources(count, min_chars=DOC_CHARS, offset=offset)
    ]


def write_corpus(folder: Path, rows: list[dict]) -> Path:
    write_jsonl(folder / "code" / "part-0.jsonl", rows)
    return folder


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight real documents of about 700 tokens (some 50 windows of 128 tokens); read only."""
    return write_corpus(tmp_path_factory.mktemp("corpus"), code_rows(8))


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's fresh runs live."""
    return tmp_path_factory.mktemp("fresh")


@pytest.fixture
def counts() -> Iterator[ShardCounts]:
    with shard_counts() as generations:
        yield generations
