"""Run the pipeline's assets through Dagster on a given data root, in this process or as a child.

The kill tests start ``python -m tests.reliability.pipeline STAGE ...`` as a subprocess so
they can SIGKILL it; the other fault tests call :func:`materialize` in process so they can
monkeypatch what the assets call.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import dagster as dg

from longattn_assets.assets.corpus import raw_corpus
from longattn_assets.assets.scoring import scored_chunks
from longattn_assets.assets.selection import longabc_dataset, longabc_report
from longattn_assets.assets.windows import windowed_chunks
from longattn_assets.resources import AttentionScorer, CorpusInput, DataRoot, Windowing

ASSETS = [raw_corpus, windowed_chunks, scored_chunks, longabc_dataset, longabc_report]
STAGES = {
    "ingest": [raw_corpus],
    "windows": [windowed_chunks],
    "scores": [scored_chunks],
    "select": [longabc_dataset, longabc_report],
}
SHARDED = {"windows", "scores"}


def resources(root: Path, input_dir: Path, window: int, **scorer: object) -> dict:
    return {
        "data_root": DataRoot(root=str(root)),
        "corpus_input": CorpusInput(input_dir=str(input_dir)),
        "windowing": Windowing(window_size=window),
        "attention_scorer": AttentionScorer(device="cpu", **scorer),
    }


def partition(stage: str, category: str, shard: str) -> str | dg.MultiPartitionKey:
    if stage in SHARDED:
        return dg.MultiPartitionKey({"category": category, "shard": shard})
    return category


def materialize(
    stage: str,
    root: Path,
    input_dir: Path,
    *,
    window: int,
    category: str = "code",
    shard: str = "00000",
    raise_on_error: bool = True,
    **scorer: object,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        selection=STAGES[stage],
        partition_key=partition(stage, category, shard),
        resources=resources(root, input_dir, window, **scorer),
        raise_on_error=raise_on_error,
    )


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest), skipping hidden work files."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--window", type=int, required=True)
    parser.add_argument("--category", default="code")
    parser.add_argument("--shard", default="00000")
    parser.add_argument("--batch-tokens", type=int, default=65536)
    parser.add_argument("--resume-chunk", type=int, default=256)
    parser.add_argument("--metadata-out", type=Path, help="write the stage's materialization metadata here (JSON)")
    args = parser.parse_args(argv)
    result = materialize(
        args.stage, args.root, args.input, window=args.window, category=args.category,
        shard=args.shard, batch_tokens=args.batch_tokens, resume_chunk_windows=args.resume_chunk,
    )  # fmt: skip
    if args.metadata_out is not None:
        recorded = {
            str(event.asset_key.to_user_string()): {name: value.value for name, value in event.metadata.items()}
            for event in result.get_asset_materialization_events()
            for event in [event.materialization]
        }
        args.metadata_out.write_text(json.dumps(recorded, default=str))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
