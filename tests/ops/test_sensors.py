"""The input sensor: a new or changed file requests one raw_corpus run; no change, none."""

import os
from pathlib import Path

import dagster as dg

from longattn_assets.assets.corpus import raw_corpus
from longattn_assets.jobs import ingest_job
from longattn_assets.resources import CorpusInput, DataRoot
from longattn_assets.sensors import input_sensor


def evaluate(sensor: dg.SensorDefinition, input_dir: Path, cursor: str | None):
    resources = {"corpus_input": CorpusInput(input_dir=str(input_dir)), "data_root": DataRoot(root=str(input_dir / "data"))}
    repo = dg.Definitions(assets=[raw_corpus], jobs=[ingest_job], sensors=[sensor], resources=resources).get_repository_def()
    with dg.build_sensor_context(cursor=cursor, resources=resources, repository_def=repo) as context:
        return sensor.evaluate_tick(context)


def test_new_input_file_requests_one_ingest_and_unchanged_files_none(tmp_path: Path):
    sensor = input_sensor("book")
    empty = evaluate(sensor, tmp_path, None)
    assert not empty.run_requests and "no input files" in empty.skip_message

    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "one"}\n')
    first = evaluate(sensor, tmp_path, None)
    assert [r.partition_key for r in first.run_requests] == ["book"]
    assert first.cursor and first.run_requests[0].run_key == f"book@{first.cursor}"

    same = evaluate(sensor, tmp_path, first.cursor)
    assert not same.run_requests and same.cursor in (None, first.cursor)

    (folder / "b.jsonl").write_text('{"text": "two"}\n')
    added = evaluate(sensor, tmp_path, first.cursor)
    assert [r.partition_key for r in added.run_requests] == ["book"]
    assert added.cursor != first.cursor

    stat = (folder / "a.jsonl").stat()
    os.utime(folder / "a.jsonl", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rewritten = evaluate(sensor, tmp_path, added.cursor)
    assert len(rewritten.run_requests) == 1 and rewritten.cursor not in (first.cursor, added.cursor)


def test_other_categories_files_do_not_trigger(tmp_path: Path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "x.jsonl").write_text('{"text": "x"}\n')
    result = evaluate(input_sensor("book"), tmp_path, None)
    assert not result.run_requests


def test_files_ingest_would_skip_do_not_trigger(tmp_path: Path):
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "one"}\n')
    first = evaluate(input_sensor("book"), tmp_path, None)
    (folder / ".partial").mkdir()  # e.g. a copy in progress: ingest never reads hidden folders
    (folder / ".partial" / "b.jsonl").write_text('{"text": "two"}\n')
    again = evaluate(input_sensor("book"), tmp_path, first.cursor)
    assert len(first.run_requests) == 1 and not again.run_requests


def test_only_a_change_of_content_requests_an_ingest(tmp_path: Path):
    """Issue 23 item 2: after an ingest, a touched file (same bytes) requests nothing; an edit
    that keeps size and mtime (as `touch -r` leaves it) requests one ingest."""
    folder = tmp_path / "book"
    folder.mkdir()
    path = folder / "a.jsonl"
    path.write_text('{"text": "one word"}\n')
    first = evaluate(input_sensor("book"), tmp_path, None)
    result = dg.materialize([raw_corpus], partition_key="book", resources={
        "corpus_input": CorpusInput(input_dir=str(tmp_path)), "data_root": DataRoot(root=str(tmp_path / "data"))})
    assert result.success

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = evaluate(input_sensor("book"), tmp_path, first.cursor)
    assert not touched.run_requests and touched.cursor != first.cursor

    stat = path.stat()
    path.write_text('{"text": "two word"}\n')
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    edited = evaluate(input_sensor("book"), tmp_path, touched.cursor)
    assert [r.partition_key for r in edited.run_requests] == ["book"]
