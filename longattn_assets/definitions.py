"""The one Definitions object: assets, checks, resources, jobs, schedules and sensors."""

import dagster as dg

from . import schedules, sensors
from .assets.corpus import raw_corpus
from .assets.diagnostics import scorer_diagnostics
from .assets.scoring import scored_chunks
from .assets.selection import longabc_dataset, longabc_report
from .assets.training import longabc_mixture, longabc_training
from .assets.windows import windowed_chunks
from .jobs import jobs
from .live_runs import live_run_executor
from .resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from .slurm.resource import SlurmScoring

assets = [
    raw_corpus, windowed_chunks, scored_chunks, scorer_diagnostics, longabc_dataset, longabc_report,
    longabc_training, longabc_mixture,
]  # fmt: skip


def default_resources() -> dict:
    """Resources configured from the environment (see settings.py and slurm/settings.py)."""
    return {
        "data_root": DataRoot(),
        "corpus_input": CorpusInput(),
        "windowing": Windowing(),
        "attention_scorer": AttentionScorer(),
        "slurm_scoring": SlurmScoring(),
    }


defs = dg.Definitions(
    assets=assets,
    jobs=[*jobs, *schedules.jobs],
    schedules=schedules.schedules,
    sensors=sensors.sensors,
    resources=default_resources(),
    # a killed run's pool slots are freed by the next run, without a daemon (live_runs.py)
    executor=live_run_executor(),
)
