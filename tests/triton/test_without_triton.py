"""Without the gpu extra, the Triton test modules skip with a reason instead of failing collection."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEEDS_TRITON = ["test_compile_targets.py", "test_gpu_check.py", "test_kernel_choice.py", "test_scorer_dispatch.py",
                "test_triton_statistics.py"]
# The launch config table and its limits are plain Python: they still run.
TRITON_FREE = "test_launch_configs.py"


def test_triton_modules_skip_when_triton_is_not_installed(tmp_path):
    # A package named triton ahead of the installed one on sys.path, whose import fails
    # the way a missing module's does.
    (tmp_path / "triton").mkdir()
    (tmp_path / "triton" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'triton'\", name='triton')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         *(f"tests/triton/{name}" for name in [*NEEDS_TRITON, TRITON_FREE])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f" passed, {len(NEEDS_TRITON)} skipped in " in proc.stdout
    assert "error" not in proc.stdout.lower()
    assert proc.stdout.count("Triton is not installed") == len(NEEDS_TRITON)


def test_the_compile_table_says_in_one_line_what_to_install(tmp_path):
    (tmp_path / "triton").mkdir()
    (tmp_path / "triton" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'triton'\", name='triton')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, "-m", "longattn_assets.scoring.triton_targets"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "triton_targets compiles the Triton kernel and needs Triton, which the plain install leaves out: "
        ".venv/bin/pip install 'triton>=3.0' (scripts/install.sh --dev installs it)\n"
    )
