"""The demo (the whole pipeline through Dagster with a persistent instance) killed and rerun.

`longattn demo` runs :func:`run_demo` on the bundled sample; here it runs on the small
test input (category code, 256-token windows) so a run takes seconds on a CPU. The demo
is killed twice at seeded random moments, each time on top of what the previous kill
left, then run to the end: every file must equal an uninterrupted demo run's.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow.parquet as pq

from ..conftest import KILL_WINDOW
from ..pipeline import snapshot
from ..record import record
from .harness import KILLED, leftovers, run_child

KILLS = 2


def _rows(root: Path, files: dict[str, str]) -> int:
    return sum(pq.read_metadata(root / path).num_rows for path in files if path.endswith(".parquet"))


def demo_command(root: Path, input_dir: Path) -> list[str]:
    code = (
        "import sys; from pathlib import Path; from longattn_assets.demo import run_demo; "
        f"run_demo(Path(sys.argv[1]), window_size={KILL_WINDOW}, input_dir=Path(sys.argv[2]), "
        "device='cpu', categories=['code'])"
    )
    return [sys.executable, "-c", code, str(root), str(input_dir)]


def test_demo_killed_twice_then_rerun_gives_the_uninterrupted_files(code_input: Path, tmp_path: Path):
    reference = tmp_path / "reference"
    code, seconds = run_child(demo_command(reference, code_input), marker=None)
    assert code == 0
    expected = snapshot(reference)
    assert any(p.startswith("longabc_report/") for p in expected)

    root = tmp_path / "killed"
    rng = random.Random(2502_16860)
    kills = 0
    for _ in range(KILLS):
        code, _ = run_child(demo_command(root, code_input), kill_after=rng.uniform(0.2, 0.5) * seconds, marker=None)
        kills += code == KILLED
        visible = snapshot(root)
        assert {p for p, digest in visible.items() if expected.get(p) != digest} == set()
    assert run_child(demo_command(root, code_input), marker=None)[0] == 0
    assert snapshot(root) == expected
    assert leftovers(root) == []
    rows = [_rows(folder, expected) for folder in (reference, root)]
    record("kill -9", "demo run_demo (whole pipeline, persistent instance)", faults=kills, survived=KILLS,
           rows_checked=rows[1], rows_lost=rows[0] - rows[1])  # fmt: skip
    assert kills >= 1
