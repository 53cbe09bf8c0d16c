"""The array job script: one task per shard, each running the Pipes-aware task wrapper."""

from __future__ import annotations

import shlex
from pathlib import Path

from .settings import SlurmSettings

TASK_MODULE = "longattn_assets.slurm.task"


def sbatch_directives(settings: SlurmSettings, n_tasks: int, log_dir: Path) -> list[str]:
    if n_tasks < 1:
        raise ValueError("an array job needs at least one task")
    array = f"0-{n_tasks - 1}" + (f"%{settings.max_parallel}" if settings.max_parallel > 0 else "")
    options = [
        f"--job-name={settings.job_name}",
        f"--array={array}",
        # One log per task, stdout and stderr together, kept after the run for debugging.
        f"--output={log_dir / 'task-%a.log'}",
        f"--error={log_dir / 'task-%a.log'}",
        f"--cpus-per-task={settings.cpus_per_task}",
        f"--time={settings.time_limit}",
        "--requeue" if settings.requeue else "--no-requeue",
    ]
    if settings.partition:
        options.append(f"--partition={settings.partition}")
    if settings.gpus_per_task > 0:
        options.append(f"--gpus-per-task={settings.gpus_per_task}")
    if settings.mem:
        options.append(f"--mem={settings.mem}")
    options.extend(settings.extra_args)
    return options


def render_array_script(
    settings: SlurmSettings, manifest: Path, n_tasks: int, log_dir: Path
) -> str:
    lines = ["#!/bin/bash"]
    lines += [f"#SBATCH {shlex.quote(option)}" for option in sbatch_directives(settings, n_tasks, log_dir)]
    command = shlex.join([settings.python, "-m", TASK_MODULE, str(manifest)])
    lines += ["set -euo pipefail", f"exec {command}", ""]
    return "\n".join(lines)
