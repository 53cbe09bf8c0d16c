"""Definitions and resources for the operations tests, over a temporary data root."""

from pathlib import Path

import dagster as dg

from longattn_assets.assets.corpus import raw_corpus
from longattn_assets.assets.scoring import scored_chunks
from longattn_assets.assets.windows import windowed_chunks
from longattn_assets.resources import AttentionScorer, CorpusInput, DataRoot, Windowing
from longattn_assets.slurm.resource import SlurmScoring

WINDOW = 256


def resources(root: Path, input_dir: Path, lock_dir: Path | None = None) -> dict:
    return {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(input_dir)),
        "windowing": Windowing(window_size=WINDOW),
        "attention_scorer": AttentionScorer(
            device="cpu", lock_dir=str(lock_dir or root / ".locks"), batch_tokens=4096
        ),
        "slurm_scoring": SlurmScoring(shared_dir=str(root / ".slurm"), gpus_per_task=0, cpus_per_task=1, poll_s=0.3),
    }


ASSETS = [raw_corpus, windowed_chunks, scored_chunks]


def ingest(category: str, root: Path, input_dir: Path, instance: dg.DagsterInstance | None = None) -> None:
    result = dg.materialize([raw_corpus], partition_key=category, resources=resources(root, input_dir), instance=instance)
    assert result.success
