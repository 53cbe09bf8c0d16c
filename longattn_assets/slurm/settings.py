"""What a scoring array job asks Slurm for, read from LONGATTN_SLURM_* environment variables."""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field

from ..validation import check, check_variable


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _checked(name: str, rule: str, default: str) -> object:
    return check_variable(name, rule, check(rule, default))


@dataclass(frozen=True)
class SlurmSettings:
    """sbatch options for one array job; one task scores one shard.

    ``shared_dir`` must be visible under the same path to the Dagster process and every
    node: the job script, the task manifest, the Pipes context and message files and the
    task logs live there. ``python`` is the interpreter the tasks run (a virtual
    environment on the shared filesystem, or the same path installed on every node).
    """

    shared_dir: str
    partition: str = ""
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem: str = ""
    time_limit: str = "04:00:00"
    requeue: bool = False
    max_parallel: int = 0
    job_name: str = "longattn-score"
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    python: str = sys.executable

    @classmethod
    def from_env(cls, default_shared_dir: str) -> SlurmSettings:
        return cls(
            shared_dir=_env("LONGATTN_SLURM_SHARED_DIR", default_shared_dir),
            partition=_env("LONGATTN_SLURM_PARTITION"),
            gpus_per_task=_checked("LONGATTN_SLURM_GPUS_PER_TASK", "gpus_per_task", "1"),
            cpus_per_task=_checked("LONGATTN_SLURM_CPUS_PER_TASK", "cpus_per_task", "4"),
            mem=_env("LONGATTN_SLURM_MEM"),
            time_limit=_env("LONGATTN_SLURM_TIME", "04:00:00"),
            requeue=_checked("LONGATTN_SLURM_REQUEUE", "flag", "0"),
            max_parallel=_checked("LONGATTN_SLURM_MAX_PARALLEL", "max_parallel", "0"),
            extra_args=tuple(shlex.split(_env("LONGATTN_SLURM_EXTRA_ARGS"))),
            python=_env("LONGATTN_SLURM_PYTHON", sys.executable),
        )


def slurm_enabled() -> bool:
    """Scoring goes to Slurm when LONGATTN_SLURM is set to 1/true/yes."""
    return _checked("LONGATTN_SLURM", "flag", "0")
