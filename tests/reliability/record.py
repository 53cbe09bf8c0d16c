"""Figures of the fault scenarios, collected for the summary table.

A test calls :func:`record` once per scenario; nothing is written unless
``LONGATTN_RELIABILITY_RECORD`` names a folder (``python -m tests.reliability.summary``
sets it), so plain pytest runs leave no files behind.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

ENV = "LONGATTN_RELIABILITY_RECORD"


def record(area: str, scenario: str, *, faults: int, survived: int, rows_checked: int, rows_lost: int) -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    entry = {
        "area": area,
        "scenario": scenario,
        "faults": faults,
        "survived": survived,
        "rows_checked": rows_checked,
        "rows_lost": rows_lost,
    }
    path = Path(folder) / f"{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(entry))
