"""Run Triton kernels on CPU tensors through Triton's interpreter; compile them for GPUs.

The interpreter is chosen when a kernel is decorated, i.e. when its module is first
imported, so the variable must be set before any test module imports the kernel. The
ahead-of-time compile for GPU architectures therefore runs in a subprocess without it, once
with the venv's Triton and once with the GPU machine's (IMAGE_TRITON).
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
ROOT = Path(__file__).resolve().parents[2]
# The Triton of the GPU machine's image (docs/gpu.md). scripts/install.sh --dev installs it
# beside the venv's own, under .venv/triton-<version>, so the launch config table is compiled
# with both: the version users get with their torch and the one a lent GPU has.
IMAGE_TRITON = "3.6.0"
IMAGE_TRITON_PATH = ROOT / ".venv" / f"triton-{IMAGE_TRITON}"
_compile_report: list[str] = []


def _compile_table(out: Path, triton_path: Path | None) -> tuple[str, list]:
    """(Triton version, resources) of the whole table compiled by triton_targets.py in a
    subprocess, without the interpreter; ``triton_path`` goes ahead of the venv's Triton."""
    from longattn_assets.scoring.triton_targets import KernelResources

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if triton_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(triton_path), str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "longattn_assets.scoring.triton_targets", "--json", str(out)],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )
    _compile_report.append(proc.stdout)
    if not out.exists():
        pytest.fail(f"triton_targets failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
    version = proc.stdout.split(":", 1)[0].removeprefix("triton ")
    return version, [KernelResources.from_json(entry) for entry in json.loads(out.read_text())]


@pytest.fixture(scope="session", params=["installed", IMAGE_TRITON])
def compiled_targets(request, tmp_path_factory) -> list:
    """Every launch config table entry compiled for its architecture (triton_targets.py), by
    the venv's Triton and by the image's."""
    out = tmp_path_factory.mktemp("triton-targets") / "resources.json"
    if request.param == "installed":
        return _compile_table(out, None)[1]
    if not (IMAGE_TRITON_PATH / "triton").is_dir():
        pytest.skip(f"Triton {IMAGE_TRITON} is not in {IMAGE_TRITON_PATH} (scripts/install.sh --dev puts it there)")
    version, resources = _compile_table(out, IMAGE_TRITON_PATH)
    if version != IMAGE_TRITON:
        pytest.fail(f"{IMAGE_TRITON_PATH} holds Triton {version}, not {IMAGE_TRITON}")
    return resources


def pytest_terminal_summary(terminalreporter) -> None:
    for report in _compile_report:
        terminalreporter.write_sep("-", "Triton kernel compiled per GPU architecture (no GPU used)")
        terminalreporter.write_line(report)
