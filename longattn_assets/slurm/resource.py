"""The SlurmScoring resource: Slurm options for the scoring array job, defaulting to the env."""

from __future__ import annotations

import dagster as dg
from pydantic import model_validator

from .. import settings as project_settings
from ..validation import check_fields
from .settings import SlurmSettings

_DEFAULTS = SlurmSettings.from_env(str(project_settings.data_root() / ".slurm"))


class SlurmScoring(dg.ConfigurableResource):
    """Where and how the scoring array job runs (see docs/operations.md, "Slurm").

    Every field defaults to its LONGATTN_SLURM_* environment variable. ``shared_dir``
    must be on the filesystem shared with the nodes, like the data root itself.
    """

    shared_dir: str = _DEFAULTS.shared_dir
    partition: str = _DEFAULTS.partition
    gpus_per_task: int = _DEFAULTS.gpus_per_task
    cpus_per_task: int = _DEFAULTS.cpus_per_task
    mem: str = _DEFAULTS.mem
    time_limit: str = _DEFAULTS.time_limit
    requeue: bool = _DEFAULTS.requeue
    max_parallel: int = _DEFAULTS.max_parallel
    extra_args: list[str] = list(_DEFAULTS.extra_args)
    python: str = _DEFAULTS.python
    poll_s: float = 5.0

    @model_validator(mode="after")
    def _check(self) -> SlurmScoring:
        check_fields(self, "slurm_scoring", ("gpus_per_task", "cpus_per_task", "max_parallel", "poll_s"))
        return self

    def settings(self) -> SlurmSettings:
        return SlurmSettings(
            shared_dir=self.shared_dir,
            partition=self.partition,
            gpus_per_task=self.gpus_per_task,
            cpus_per_task=self.cpus_per_task,
            mem=self.mem,
            time_limit=self.time_limit,
            requeue=self.requeue,
            max_parallel=self.max_parallel,
            extra_args=tuple(self.extra_args),
            python=self.python,
        )
