"""A tiny corpus: a few short real documents per category, so real scoring takes a moment."""

from pathlib import Path

from tests.corpus_fixtures import stdlib_sources, write_jsonl

TINY_WINDOW = 64


def tiny_corpus(root: Path, categories=("code",), docs: int = 24, chars: int = 600) -> Path:
    for offset, category in enumerate(categories):
        sources = stdlib_sources(docs, min_chars=chars, offset=offset * 20)
        rows = [{"id": f"{category}/{name}", "text": text[:chars]} for name, text in sources]
        write_jsonl(root / category / "part-0.jsonl", rows)
    return root
