"""Inputs in an S3 bucket, against a real S3-compatible server on 127.0.0.1: listed, streamed,
fingerprinted and rejected exactly as the same files in a local folder."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from longattn_assets.cli import main
from longattn_assets.corpus.ingest import ingest_category, input_fingerprint
from longattn_assets.corpus.input_file import InputAccessError
from longattn_assets.corpus.records import Document, Reject, read_file
from longattn_assets.corpus.sources import InputLocation
from longattn_assets.storage import DataLayout
from tests.sources.corpora import every_format
from tests.sources.s3_server import S3Server

SAVED_DATASET = ["hf_saved/data-00000-of-00001.arrow"]


@pytest.fixture(scope="module")
def local_corpus(tmp_path_factory) -> Path:
    return every_format(tmp_path_factory.mktemp("corpus"))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _ingested(location: str | Path, root: Path) -> tuple[list[dict], bytes]:
    layout = DataLayout(root)
    ingest_category(location, "code", layout, num_shards=2)
    rows = [row for path in sorted(layout.category_dir("raw_corpus", "code").glob("*.parquet"))
            for row in pq.read_table(path).to_pylist()]  # fmt: skip
    return rows, layout.category_file("rejects", "code", "raw_corpus.jsonl").read_bytes()


def test_listing_gives_the_local_names_and_sizes_with_object_versions(s3: S3Server, bucket: str, local_corpus: Path):
    url = s3.upload(local_corpus, bucket, "corpus")
    remote, local = InputLocation(url), InputLocation(local_corpus)
    assert remote.folders() == local.folders() == ["book", "code"]
    listed = remote.files("code")
    assert [(f.name, f.size) for f in listed] == [(f.name, f.size) for f in local.files("code")]
    names = [f.name for f in listed]
    assert "hf_saved/data-00000-of-00001.arrow" in names and "nested/deep/packed.jsonl.zst" in names
    assert not any(n.startswith(".staging") or n.endswith(("state.json", "dataset_info.json")) for n in names)
    assert all(f.version.startswith("ETag=") and not f.is_local for f in listed)


def test_every_format_streams_from_the_bucket_into_the_shards_and_rejects_a_folder_gives(
    s3: S3Server, bucket: str, local_corpus: Path, tmp_path: Path
):
    url = s3.upload(local_corpus, bucket, "corpus")
    remote_rows, remote_rejects = _ingested(url, tmp_path / "remote")
    local_rows, local_rejects = _ingested(local_corpus, tmp_path / "local")
    assert remote_rows == local_rows and remote_rejects == local_rejects
    _ingested(url, tmp_path / "again")  # idempotent: the same objects give the same files, footers included
    assert _files(tmp_path / "again") == _files(tmp_path / "remote")
    sources = {row["source"] for row in remote_rows}
    for name in ("plain.jsonl", "zipped.jsonl.gz", "nested/deep/packed.jsonl.zst", "table.parquet", *SAVED_DATASET):
        assert sum(row["source"] == name for row in remote_rows) == 4, name
    assert not any(s.startswith(".staging") for s in sources)
    reasons = {r["source"]: r["reason"] for r in map(json.loads, remote_rejects.decode().splitlines())}
    assert reasons["cut.parquet"].startswith("unreadable Parquet after row 0")
    assert reasons["bad/truncated.jsonl.gz"].startswith("unreadable file after line")
    assert "truncated .gz" in reasons["bad/truncated.jsonl.gz"]


def test_an_object_cut_removed_or_replaced_after_listing_is_a_reject_with_its_reason(s3: S3Server, bucket: str):
    client = s3.client()
    text = "".join(json.dumps({"text": f"row {i} " * 20}) + "\n" for i in range(50)).encode()
    for name in ("cut.jsonl", "gone.jsonl", "replaced.jsonl.gz"):
        client.put_object(Bucket=bucket, Key=f"in/code/{name}", Body=gzip.compress(text) if name.endswith("gz") else text)
    files = {f.name: f for f in InputLocation(f"s3://{bucket}/in").files("code")}
    client.put_object(Bucket=bucket, Key="in/code/cut.jsonl", Body=text[: len(text) // 2])
    client.delete_object(Bucket=bucket, Key="in/code/gone.jsonl")
    client.put_object(Bucket=bucket, Key="in/code/replaced.jsonl.gz", Body=gzip.compress(text)[:100])
    for name, said in (("cut.jsonl", "cut.jsonl changed after it was listed (ETag="),
                       ("gone.jsonl", "gone.jsonl was removed after it was listed"),
                       ("replaced.jsonl.gz", "replaced.jsonl.gz changed after it was listed")):  # fmt: skip
        items = list(read_file(files[name]))
        assert [type(i) for i in items] == [Reject] and said in items[0].reason, items


def test_a_stream_shorter_than_its_listed_size_is_a_reject(s3: S3Server, bucket: str):
    client = s3.client()
    client.put_object(Bucket=bucket, Key="in/code/a.jsonl", Body=b'{"text": "one"}\n{"text": "two"}\n')
    (listed,) = InputLocation(f"s3://{bucket}/in").files("code")
    longer = type(listed)(listed.url, listed.name, listed.size + 10, listed.version)
    items = list(read_file(longer))
    assert [i.text for i in items if isinstance(i, Document)] == ["one", "two"]
    assert items[-1].reason.endswith(f"ended after {listed.size} of its {listed.size + 10} bytes (cut or replaced while read)")


def test_a_new_object_changes_the_fingerprint_the_sensor_and_ingest_share(s3: S3Server, bucket: str, tmp_path: Path):
    import dagster as dg

    from longattn_assets.assets.corpus import raw_corpus
    from longattn_assets.jobs import ingest_job
    from longattn_assets.resources import CorpusInput, DataRoot
    from longattn_assets.sensors import input_sensor

    client = s3.client()
    url = f"s3://{bucket}/inputs"
    sensor = input_sensor("book")
    resources = {"corpus_input": CorpusInput(input_dir=url), "data_root": DataRoot(root=str(tmp_path))}

    def tick(cursor: str | None) -> dg.SensorResult:
        defs = dg.Definitions(assets=[raw_corpus], jobs=[ingest_job], sensors=[sensor], resources=resources)
        repo = defs.get_repository_def()
        with dg.build_sensor_context(cursor=cursor, resources=resources, repository_def=repo) as context:
            return sensor.evaluate_tick(context)

    assert "no input files" in tick(None).skip_message
    client.put_object(Bucket=bucket, Key="inputs/book/a.jsonl", Body=b'{"text": "one"}\n')
    first = tick(None)
    assert [r.run_key for r in first.run_requests] == [f"book@{first.cursor}"]
    assert first.cursor == input_fingerprint(url, "book")
    assert not tick(first.cursor).run_requests
    client.put_object(Bucket=bucket, Key="inputs/book/b.jsonl", Body=b'{"text": "two"}\n')
    added = tick(first.cursor)
    assert [r.partition_key for r in added.run_requests] == ["book"] and added.cursor != first.cursor
    client.put_object(Bucket=bucket, Key="inputs/book/a.jsonl", Body=b'{"text": "uno"}\n')  # same size
    assert tick(added.cursor).run_requests


def test_wrong_credentials_are_one_line_naming_where_credentials_come_from(
    s3: S3Server, bucket: str, monkeypatch, tmp_path: Path, capsys
):
    s3.client().put_object(Bucket=bucket, Key="in/code/a.jsonl", Body=b'{"text": "one"}\n')
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(InputAccessError) as refused:
        ingest_category(f"s3://{bucket}/in", "code", DataLayout(tmp_path), num_shards=1)
    message = str(refused.value)
    assert message.startswith(f"cannot read s3://{bucket}/in/code: access refused (")
    assert "AWS_* variables or ~/.aws" in message and "\n" not in message
    assert main(["window", f"s3://{bucket}/in/code/a.jsonl", "--category", "code", "--output", str(tmp_path / "w.parquet")]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith(f"longattn: error: cannot read s3://{bucket}/in/code/a.jsonl: access refused") and "\n" not in said
    assert "not-the-secret" not in said + message


def test_no_credential_reaches_logs_metadata_rejects_or_provenance(s3: S3Server, bucket: str, tmp_path: Path):
    import dagster as dg

    from longattn_assets.assets.corpus import raw_corpus
    from longattn_assets.resources import CorpusInput, DataRoot

    client = s3.client()
    client.put_object(Bucket=bucket, Key="in/code/a.jsonl", Body=b'{"text": "one"}\nnot json\n')
    client.put_object(Bucket=bucket, Key="in/code/b.jsonl.gz", Body=gzip.compress(b'{"text": "two"}\n')[:-8])
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [raw_corpus], partition_key="code", instance=instance,
        resources={"data_root": DataRoot(root=str(tmp_path / "data")), "corpus_input": CorpusInput(input_dir=f"s3://{bucket}/in", workers=1)},
    )  # fmt: skip
    assert result.success
    written = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())
    logs = "".join(str(record) for record in instance.all_logs(result.run_id))
    assert b'"reason": "invalid JSON' in written and "2 rejected" in logs
    for secret in (s3.secret_key, s3.access_key):
        assert secret not in logs and secret.encode() not in written


def test_a_url_is_shown_without_user_info_or_query():
    from longattn_assets.corpus.input_file import redact
    from longattn_assets.resources import CorpusInput

    given = "s3://AKIAKEY:s3cr3t@bucket/corpora?X-Amz-Security-Token=t0ken"
    assert CorpusInput(input_dir=given).shown == "s3://bucket/corpora"
    assert redact(f"cannot read {given} (refused)") == "cannot read s3://bucket/corpora (refused)"
