"""Shared fixtures."""

from pathlib import Path

import pytest

from tests.corpus_fixtures import stdlib_sources, write_jsonl


@pytest.fixture(scope="session")
def tokenizer():
    from longattn_assets.model.tokenizer import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """An input folder with categories 'code' and 'book' of real stdlib text in two files each."""
    return write_small_corpus(tmp_path / "input")


def write_small_corpus(root: Path) -> Path:
    """Write the small corpus (see ``small_corpus``) under ``root``; return ``root``."""
    for category, offset in (("code", 0), ("book", 40)):
        docs = stdlib_sources(24, min_chars=2_000, offset=offset)
        rows = [{"id": f"{category}/{name}", "text": text} for name, text in docs]
        write_jsonl(root / category / "part-0.jsonl", rows[:12])
        write_jsonl(root / category / "part-1.jsonl", [{"content": r["text"], "id": r["id"]} for r in rows[12:]])
    return root
