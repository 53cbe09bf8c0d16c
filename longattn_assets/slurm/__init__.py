"""Scoring a category's shards as one Slurm array job, reported back through Dagster Pipes.

``settings`` (what to ask Slurm for), ``sbatch`` (the job script), ``commands`` (sbatch,
squeue, scancel) and ``task`` (what runs inside each array task) import no Dagster; the
Dagster side is ``pipes_client``.
"""
