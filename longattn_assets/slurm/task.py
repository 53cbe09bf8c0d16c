"""Inside one array task: score one shard with ``longattn score`` and report over Dagster Pipes.

Run as ``python -m longattn_assets.slurm.task MANIFEST``. The manifest (written by the
Dagster side on the shared filesystem) lists one entry per array index: the partition,
its windows and scores paths, and the Pipes bootstrap variables for this task's own
message file. The result of the shard (success with metadata, or failure with the tail of
the scorer's output) goes back as a Pipes custom message; the scorer's own output goes to
the task's Slurm log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from dagster_pipes import open_dagster_pipes

TAIL_CHARS = 2000


def _summary(stdout: str) -> dict:
    """The JSON object the CLI prints last, if any (it is metadata, not a requirement)."""
    start = stdout.rfind("\n{")
    text = stdout[start + 1 :] if start >= 0 else stdout
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return {k: v for k, v in value.items() if isinstance(v, (str, int, float, bool))} if isinstance(value, dict) else {}


def run_task(manifest: dict, index: int) -> int:
    task = manifest["tasks"][index]
    os.environ.update(task["pipes_env"])
    partition = task["partition"]
    command = [*manifest["score_command"], task["windows"], "--output", task["scores"], *manifest["score_options"]]
    where = f"job {os.environ.get('SLURM_ARRAY_JOB_ID', '?')}_{index} on {socket.gethostname()}"
    with open_dagster_pipes() as pipes:
        pipes.log.info(f"{partition}: scoring {task['windows']} ({where})")
        started = time.monotonic()
        proc = subprocess.run(command, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        seconds = round(time.monotonic() - started, 3)
        if proc.returncode != 0:
            error = (proc.stderr or proc.stdout)[-TAIL_CHARS:]
            pipes.log.error(f"{partition}: `longattn score` exited {proc.returncode} ({where}):\n{error}")
            pipes.report_custom_message(
                {"partition": partition, "status": "failed", "returncode": proc.returncode, "error": error}
            )
            return 1
        metadata = _summary(proc.stdout) | {
            "path": task["scores"],
            "slurm_job": where,
            "task_seconds": seconds,
        }
        pipes.report_custom_message({"partition": partition, "status": "succeeded", "metadata": metadata})
        pipes.log.info(f"{partition}: scored in {seconds}s ({where})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    manifest = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    return run_task(manifest, int(os.environ["SLURM_ARRAY_TASK_ID"]))


if __name__ == "__main__":
    sys.exit(main())
