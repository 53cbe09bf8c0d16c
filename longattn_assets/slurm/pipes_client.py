"""Dagster side: submit one array job for many shards and collect each task's Pipes report.

Each task gets its own Pipes message file (a ``PipesCompositeMessageReader`` of file
readers, one per task) on the shared filesystem, so tasks never interleave writes; logs
sent by the tasks appear in the Dagster run as they happen. Whatever interrupts the wait
(the run being cancelled, the process being terminated, an error) cancels the job.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from . import commands
from .sbatch import render_array_script
from .settings import SlurmSettings


@dataclass(frozen=True)
class ShardTask:
    partition: str
    windows: Path
    scores: Path


@dataclass
class ArrayOutcome:
    job_id: str
    run_dir: Path
    succeeded: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class PipesSlurmArrayClient:
    """Runs ``longattn score`` for each shard as one task of a Slurm array job."""

    def __init__(self, settings: SlurmSettings, poll_s: float = 1.0):
        self.settings = settings
        self.poll_s = poll_s

    def run(
        self,
        *,
        context: dg.OpExecutionContext,
        tasks: Sequence[ShardTask],
        score_command: Sequence[str],
        score_options: Sequence[str] = (),
    ) -> ArrayOutcome:
        run_dir = Path(self.settings.shared_dir) / f"{context.run_id}-{context.op.name}"
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (run_dir / "messages").mkdir(exist_ok=True)
        readers = [
            dg.PipesFileMessageReader(str(run_dir / "messages" / f"task-{i}.jsonl"), cleanup_file=False)
            for i in range(len(tasks))
        ]
        with warnings.catch_warnings():
            # Per-writer sessions are "preview" in Dagster 1.13; this is their intended use.
            warnings.simplefilter("ignore", dg.PreviewWarning)
            reader = dg.PipesCompositeMessageReader(readers)
        injector = dg.PipesFileContextInjector(str(run_dir / "pipes-context.json"))
        with dg.open_pipes_session(context, injector, reader) as session:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", dg.PreviewWarning)
                task_envs = session.get_per_writer_bootstrap_env_vars()
            manifest = run_dir / "manifest.json"
            manifest.write_text(
                json.dumps(
                    {
                        "score_command": list(score_command),
                        "score_options": list(score_options),
                        "tasks": [
                            {
                                "partition": t.partition,
                                "windows": str(t.windows),
                                "scores": str(t.scores),
                                "pipes_env": dict(env),
                            }
                            for t, env in zip(tasks, task_envs, strict=True)
                        ],
                    },
                    indent=1,
                ),
                encoding="utf-8",
            )
            script = run_dir / "job.sh"
            script.write_text(render_array_script(self.settings, manifest, len(tasks), run_dir / "logs"))
            job_id = commands.submit(script, run_dir)
            context.log.info(
                f"submitted Slurm array job {job_id}: {len(tasks)} tasks, script {script}, "
                f"logs {run_dir / 'logs'}"
            )
            try:
                while commands.job_active(job_id):
                    time.sleep(self.poll_s)
            except BaseException:
                # Run cancellation reaches us as an exception raised into this wait (or
                # SIGTERM turned into one): the array must not keep using the cluster.
                commands.cancel(job_id)
                context.log.warning(f"cancelled Slurm array job {job_id}")
                raise
            states = commands.task_states(job_id)
        return self._outcome(job_id, run_dir, tasks, session.get_custom_messages(), states)

    @staticmethod
    def _outcome(
        job_id: str,
        run_dir: Path,
        tasks: Sequence[ShardTask],
        messages: Sequence[object],
        states: dict[int, str],
    ) -> ArrayOutcome:
        outcome = ArrayOutcome(job_id, run_dir)
        reports: dict[str, dict] = {}
        for message in messages:
            # A requeued task reports again; its last report is the one that counts.
            if isinstance(message, dict) and "partition" in message:
                reports[message["partition"]] = message
        for index, task in enumerate(tasks):
            report = reports.get(task.partition)
            log = run_dir / "logs" / f"task-{index}.log"
            if report is not None and report.get("status") == "succeeded":
                outcome.succeeded[task.partition] = report.get("metadata", {}) | {"log": str(log)}
            elif report is not None:
                outcome.failed[task.partition] = (
                    f"task {job_id}_{index} failed (exit {report.get('returncode')}); see {log}:\n"
                    f"{report.get('error', '')}"
                )
            else:
                state = states.get(index, "unknown: no longer known to slurmctld")
                outcome.failed[task.partition] = (
                    f"task {job_id}_{index} ended without a report (Slurm state {state}); see {log}"
                )
        return outcome
