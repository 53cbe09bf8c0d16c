"""Run Triton kernels on CPU tensors through Triton's interpreter; compile them for GPUs.

The interpreter is chosen when a kernel is decorated, i.e. when its module is first
imported, so the variable must be set before any test module imports the kernel. The
ahead-of-time compile for GPU architectures therefore runs in a subprocess without it.
Modules that need Triton skip (with the reason) where the ``gpu`` extra is not installed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["TRITON_INTERPRET"] = "1"

NO_TRITON = "Triton is not installed (pip install 'longattn_assets[gpu]')"
_compile_report: list[str] = []


@pytest.fixture(scope="session")
def compiled_targets(tmp_path_factory) -> list:
    """Every launch config table entry compiled for its architecture (triton_targets.py)."""
    from longattn_assets.scoring.triton_targets import KernelResources

    out = tmp_path_factory.mktemp("triton-targets") / "resources.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, "-m", "longattn_assets.scoring.triton_targets", "--json", str(out)],
        env=env, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    _compile_report.append(proc.stdout)
    if not out.exists():
        pytest.fail(f"triton_targets failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return [KernelResources.from_json(entry) for entry in json.loads(out.read_text())]


def pytest_terminal_summary(terminalreporter) -> None:
    for report in _compile_report:
        terminalreporter.write_sep("-", "Triton kernel compiled per GPU architecture (no GPU used)")
        terminalreporter.write_line(report)
