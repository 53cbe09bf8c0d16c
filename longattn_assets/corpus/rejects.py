"""The rejects file of a category: every unusable row, sorted by source and location.

Workers write their rejects as sorted runs (JSON lines); the final file is a streaming
merge of the runs, so the rejects of a corpus never need to fit in memory.
"""

from __future__ import annotations

import heapq
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..storage import atomic_path
from .records import Reject

# Python objects of one buffered reject besides its strings (dataclass, tuple, list slot).
_REJECT_OVERHEAD = 200


def reject_key(reject: Reject) -> tuple[str, int, str]:
    return reject.source, reject.location, reject.reason


def reject_line(reject: Reject) -> str:
    record = {"source": reject.source, "location": reject.location, "reason": reject.reason, "excerpt": reject.excerpt}
    return json.dumps(record, ensure_ascii=False) + "\n"


def reject_size(reject: Reject) -> int:
    """Bytes a buffered reject holds, for the memory budget."""
    return _REJECT_OVERHEAD + sum(sys.getsizeof(s) for s in (reject.source, reject.reason, reject.excerpt))


def write_reject_run(rejects: list[Reject], path: Path) -> Path:
    """One sorted run of rejects as JSON lines (a scratch file, not atomic)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(reject_line(r) for r in sorted(rejects, key=reject_key))
    return path


def _read_run(path: Path) -> Iterator[tuple[tuple[str, int, str], str]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            yield (record["source"], record["location"], record["reason"]), line


def merge_reject_runs(runs: Iterable[Path], path: Path) -> dict[str, int]:
    """Write the runs merged in (source, location, reason) order to ``path`` (a temporary name
    the caller commits); count reasons.

    A reason is counted under its part before the first colon (``invalid JSON``).
    """
    reasons: dict[str, int] = {}
    with open(path, "w", encoding="utf-8") as out:
        for (_, _, reason), line in heapq.merge(*(_read_run(r) for r in runs), key=lambda item: item[0]):
            out.write(line)
            key = reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return reasons


def write_rejects(rejects: list[Reject], path: Path) -> Path:
    """Rejects held in memory (the CLI's few) as one sorted file, in the same format."""
    with atomic_path(path) as tmp:
        write_reject_run(rejects, tmp)
    return path
