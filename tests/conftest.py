"""Shared fixtures: small real inputs built from files installed on every machine."""

import json
import sysconfig
from pathlib import Path

import pytest

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(count: int, min_chars: int = 0, offset: int = 0) -> list[tuple[str, str]]:
    """(name, text) of real Python standard-library modules, in a fixed order."""
    files = sorted(p for p in STDLIB.glob("*.py") if p.stat().st_size >= min_chars)
    return [(p.name, p.read_text(encoding="utf-8")) for p in files[offset : offset + count]]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tokenizer():
    from longattn_assets.model.tokenizer import load_tokenizer

    return load_tokenizer()


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """An input folder with categories 'code' and 'book' of real stdlib text in two files each."""
    root = tmp_path / "input"
    for category, offset in (("code", 0), ("book", 40)):
        docs = stdlib_sources(24, min_chars=2_000, offset=offset)
        rows = [{"id": f"{category}/{name}", "text": text} for name, text in docs]
        write_jsonl(root / category / "part-0.jsonl", rows[:12])
        write_jsonl(root / category / "part-1.jsonl", [{"content": r["text"], "id": r["id"]} for r in rows[12:]])
    return root
