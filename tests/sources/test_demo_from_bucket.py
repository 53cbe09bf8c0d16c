"""Must show: ``longattn demo --input-dir s3://...`` gives the dataset files the same corpus
read from a local folder gives.

Both demos run in one child process (one import of the pipeline, one load of the model),
the way a user runs ``longattn demo`` twice, with the bucket's endpoint and credentials in
the environment as a deployment sets them; one shard keeps it short.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.corpus_fixtures import stdlib_sources, write_jsonl
from tests.sources.s3_server import S3Server

DEMO = "--window-size 64 --device cpu --categories code"
BOTH = (
    "import sys; from longattn_assets.cli import main; "
    "sys.exit(main(['demo', '--input-dir', sys.argv[1], '--data-root', 'local', *sys.argv[3].split()]) "
    "or main(['demo', '--input-dir', sys.argv[2], '--data-root', 'remote', *sys.argv[3].split()]))"
)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_from_a_bucket_writes_the_dataset_files_a_local_folder_gives(s3: S3Server, bucket: str, tmp_path: Path):
    corpus = tmp_path / "corpus"
    docs = stdlib_sources(3, min_chars=3_000, offset=10)
    write_jsonl(corpus / "code" / "part-0.jsonl", [{"id": name, "text": text[:3_000]} for name, text in docs[:2]])
    write_jsonl(corpus / "code" / "more" / "part-1.jsonl", [{"content": text[:3_000]} for _, text in docs[2:]])
    url = s3.upload(corpus, bucket, "corpus")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME" and not k.startswith("LONGATTN_")}
    run = subprocess.run(
        [sys.executable, "-c", BOTH, str(corpus), url, DEMO],
        cwd=tmp_path, env={**env, "LONGATTN_NUM_SHARDS": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"LongAttn demo: {url}," in run.stdout and run.stdout.count("selection+report: ") == 2
    dataset = "longabc_dataset/category=code"
    local, remote = _files(tmp_path / "local" / dataset), _files(tmp_path / "remote" / dataset)
    # every file of the dataset, byte for byte: none of them records where the input was read
    # (selection.json records shard fingerprints, which hash documents, not input locations)
    assert set(local) == {"selected.parquet", "longabc.jsonl", "selection.json", "hf/README.md",
                          "hf/data/train-00000-of-00001.parquet"}  # fmt: skip
    assert local == remote
    assert str(corpus) not in local["selection.json"].decode()
