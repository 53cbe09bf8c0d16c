"""Run the reliability suite and print its figures as a Markdown table.

    python -m tests.reliability.summary [extra pytest args]

Each scenario records faults injected, runs that survived (ended with the expected
outputs), rows checked and rows lost; the table sums them per scenario, plus a total.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .record import ENV

HERE = Path(__file__).resolve().parent
COLUMNS = ("faults", "survived", "rows_checked", "rows_lost")


def table(entries: list[dict]) -> str:
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for entry in entries:
        key = (entry["area"], entry["scenario"])
        into = rows.setdefault(key, dict.fromkeys(COLUMNS, 0))
        for column in COLUMNS:
            into[column] += entry[column]
    lines = [
        "| area | scenario | faults injected | runs survived | rows checked | rows lost |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (area, scenario), values in sorted(rows.items()):
        lines.append(f"| {area} | {scenario} | " + " | ".join(f"{values[c]:,}" for c in COLUMNS) + " |")
    totals = {c: sum(v[c] for v in rows.values()) for c in COLUMNS}
    lines.append("| **total** | | " + " | ".join(f"**{totals[c]:,}**" for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="reliability-") as folder:
        env = {**os.environ, ENV: folder}
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE), *argv], env=env)
        entries = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("*.json"))]
    print()
    print(table(entries))
    print(f"\npytest exit status: {code}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
