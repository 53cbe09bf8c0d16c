"""Small real inputs built from files installed on every machine."""

import json
import sysconfig
from pathlib import Path

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_sources(count: int, min_chars: int = 0, offset: int = 0) -> list[tuple[str, str]]:
    """(name, text) of real Python standard-library modules, in a fixed order."""
    files = sorted(p for p in STDLIB.glob("*.py") if p.stat().st_size >= min_chars)
    return [(p.name, p.read_text(encoding="utf-8")) for p in files[offset : offset + count]]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path
