"""Thin wrappers over sbatch, squeue, scontrol and scancel (no accounting database needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path


class SlurmError(RuntimeError):
    """A Slurm command failed."""


def _run(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SlurmError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def submit(script: Path, cwd: Path) -> str:
    """Submit ``script`` and return the job id."""
    out = _run(["sbatch", "--parsable", f"--chdir={cwd}", str(script)]).stdout.strip()
    return out.split(";")[0]


def job_active(job_id: str) -> bool:
    """Whether any task of the job is still pending, running or being requeued."""
    proc = _run(["squeue", "--noheader", "--array", "--jobs", job_id, "--format=%i"], check=False)
    if proc.returncode != 0:
        # squeue rejects ids it has already purged: the job is long gone.
        if "Invalid job id" in proc.stderr:
            return False
        raise SlurmError(f"squeue failed: {proc.stderr.strip()}")
    return bool(proc.stdout.strip())


def task_states(job_id: str) -> dict[int, str]:
    """Array task index -> Slurm state, while slurmctld still remembers the job (MinJobAge)."""
    proc = _run(["scontrol", "--oneliner", "show", "job", job_id], check=False)
    states: dict[int, str] = {}
    for line in proc.stdout.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "ArrayTaskId" in fields and fields["ArrayTaskId"].isdigit():
            states[int(fields["ArrayTaskId"])] = fields.get("JobState", "UNKNOWN")
    return states


def cancel(job_id: str) -> None:
    _run(["scancel", job_id], check=False)
