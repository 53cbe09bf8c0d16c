"""raw_corpus ingest within a memory budget: the bytes of one in-memory sort, whatever the workers.

The reference below is the ingest this project had before the budget (read every file in
order, hash, sort each shard in memory, drop later copies of a text, write it with
``write_parquet`` and its provenance footer; rejects sorted by source and location),
written out plainly. The
budgeted ingest must give its exact bytes with one worker or several, with or without
spilled runs and buckets.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zstandard

from longattn_assets.consistency import input_record, inputs_fingerprint
from longattn_assets.corpus import sharding
from longattn_assets.corpus.budget import MB, MemoryPlan
from longattn_assets.corpus.ingest import REJECTS, REJECTS_FILE, RawStamp, ingest_category
from longattn_assets.corpus.input_file import DEFAULT_TEXT_FIELDS, content_sha256, local_file
from longattn_assets.corpus.progress import READING, WRITING, IngestProgress
from longattn_assets.corpus.ranges import can_split, line_ranges
from longattn_assets.corpus.records import (
    Reject,
    category_files,
    file_problem,
    is_supported,
    read_file,
)
from longattn_assets.corpus.sharding import RAW_CORPUS_SCHEMA
from longattn_assets.provenance import documents_fingerprint
from longattn_assets.storage import DataLayout, shard_key, write_parquet
from longattn_assets.windows.ids import document_hash, shard_of
from tests.corpus_fixtures import stdlib_sources, write_jsonl

BAD_INPUTS = Path(__file__).resolve().parents[1] / "reliability" / "data" / "bad_inputs" / "code"
SHARDS = 5
# Tiny buffers and buckets: every worker spills several runs per shard, every shard is
# merged from many buckets, and copies of a text meet both inside a run and across runs.
SPILLING = {"spill_bytes": 96 << 10, "bucket_bytes": 64 << 10}


@pytest.fixture(scope="module")
def input_dir(tmp_path_factory) -> Path:
    """Real text in every supported format, copies within and across files, and bad rows."""
    root = tmp_path_factory.mktemp("input")
    folder = root / "code"
    rows = [{"id": name, "text": text} for name, text in stdlib_sources(90, min_chars=800)]
    copies = [{"id": f"copy-{r['id']}", "text": r["text"]} for r in rows[:6]]
    write_jsonl(folder / "a.jsonl", rows[:30] + copies[:2] + rows[:1])
    lines = "".join(json.dumps({"content": r["text"]}) + "\n" for r in rows[30:55] + copies[2:4])
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    lines = "".join(json.dumps(r) + "\n" for r in rows[55:75] + copies[4:])
    (folder / "nested").mkdir()
    (folder / "nested" / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    pq.write_table(pa.Table.from_pylist(rows[75:] + rows[10:12]), folder / "d.parquet")
    shutil.copytree(BAD_INPUTS, folder / "bad")
    return root


def reference_ingest(input_dir: Path, category: str, num_shards: int, root: Path) -> int:
    """Today's in-memory ingest; returns the number of duplicates it dropped."""
    folder = input_dir / category
    listed = [local_file(p, p.relative_to(folder).as_posix()) for p in category_files(folder)]
    hashes = [content_sha256(f) if file_problem(Path(f.url)) is None and is_supported(f.name) else None for f in listed]
    input_files = inputs_fingerprint([input_record(f, h) for f, h in zip(listed, hashes)])
    items = [i for p in category_files(folder) for i in read_file(p, source=p.relative_to(folder).as_posix())]
    rejects = [i for i in items if isinstance(i, Reject)]
    docs = [i for i in items if not isinstance(i, Reject)]
    hashes = [document_hash(d.text) for d in docs]
    table = pa.table(
        {
            "doc_hash": hashes,
            "doc_id": [d.doc_id if d.doc_id is not None else h for d, h in zip(docs, hashes)],
            "text": [d.text for d in docs],
            "source": [d.source for d in docs],
            "location": [d.location for d in docs],
            "n_chars": [len(d.text) for d in docs],
        },
        schema=RAW_CORPUS_SCHEMA,
    )
    shard_index = pa.array([shard_of(h, num_shards) for h in hashes])
    duplicates = 0
    layout = DataLayout(root)
    for shard in range(num_shards):
        part = table.filter(pc.equal(shard_index, shard))
        part = part.sort_by([("doc_hash", "ascending"), ("source", "ascending"), ("location", "ascending")])
        seen: dict[str, tuple[str, int]] = {}  # the first row of each text, which is kept
        keep = []
        for doc_hash, source, location in zip(*(part.column(c).to_pylist() for c in ("doc_hash", "source", "location"))):
            keep.append(doc_hash not in seen)
            if doc_hash in seen:
                kept_source, kept_location = seen[doc_hash]
                reason = f"duplicate text: same document as {kept_source} location {kept_location}, which is kept (doc_hash {doc_hash})"
                rejects.append(Reject(source, location, reason, ""))
                duplicates += 1
            seen.setdefault(doc_hash, (source, location))
        part = part.filter(pa.array(keep, pa.bool_()))
        stamp = RawStamp(category, shard_key(shard), num_shards, DEFAULT_TEXT_FIELDS, input_files)
        path = layout.shard_path("raw_corpus", category, shard_key(shard))
        write_parquet(part, path, footer=stamp(documents_fingerprint(part)))
    lines = [
        json.dumps({"source": r.source, "location": r.location, "reason": r.reason, "excerpt": r.excerpt}, ensure_ascii=False) + "\n"
        for r in sorted(rejects, key=lambda r: (r.source, r.location, r.reason))
    ]
    path = layout.category_file(REJECTS, category, REJECTS_FILE)
    path.parent.mkdir(parents=True)
    path.write_text("".join(lines), encoding="utf-8")
    return duplicates


def output_bytes(root: Path) -> dict[str, bytes]:
    files = sorted((root / "raw_corpus").rglob("*.parquet")) + sorted((root / REJECTS).rglob("*.jsonl"))
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def reference(input_dir: Path, tmp_path_factory) -> tuple[dict[str, bytes], int]:
    root = tmp_path_factory.mktemp("reference")
    duplicates = reference_ingest(input_dir, "code", SHARDS, root)
    return output_bytes(root), duplicates


def plan(workers: int, spill_bytes: int = 256 * MB, bucket_bytes: int = 256 * MB) -> MemoryPlan:
    return MemoryPlan(budget=1 << 30, workers=workers, spill_bytes=spill_bytes, bucket_bytes=bucket_bytes)


def test_shards_and_rejects_are_the_bytes_of_one_in_memory_sort(input_dir, reference, tmp_path):
    expected, duplicates = reference
    stats = ingest_category(input_dir, "code", DataLayout(tmp_path), SHARDS, plan=plan(1))
    assert output_bytes(tmp_path) == expected
    assert len(expected) == SHARDS + 1
    assert stats.duplicates == duplicates >= 8
    assert stats.runs == SHARDS  # nothing spilled but the one final run per shard


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_spilled_runs_and_buckets_give_the_same_bytes_with_any_worker_count(input_dir, reference, tmp_path, workers):
    expected, duplicates = reference
    stats = ingest_category(input_dir, "code", DataLayout(tmp_path), SHARDS, plan=plan(workers, **SPILLING))
    assert output_bytes(tmp_path) == expected
    assert stats.runs >= 4 * SHARDS, "the budget did not force runs to be spilled"
    assert stats.duplicates == duplicates
    assert stats.documents == sum(stats.shard_documents.values())
    assert stats.reject_reasons["duplicate text"] == duplicates
    assert sum(stats.reject_reasons.values()) == stats.rejects == len(
        (tmp_path / REJECTS / "category=code" / REJECTS_FILE).read_text(encoding="utf-8").splitlines()
    )


def test_empty_shards_are_the_bytes_of_an_empty_table(input_dir, tmp_path):
    reference_ingest(input_dir, "code", 300, tmp_path / "reference")
    ingest_category(input_dir, "code", DataLayout(tmp_path / "out"), 300, plan=plan(2))
    files = output_bytes(tmp_path / "out")
    assert files == output_bytes(tmp_path / "reference")
    shards = [data for name, data in files.items() if name.endswith(".parquet")]
    assert sum(pq.read_metadata(pa.BufferReader(data)).num_rows == 0 for data in shards) >= 5


def test_shards_of_many_rows_merged_from_many_buckets_keep_the_bytes(tmp_path):
    """Megabytes in thousands of rows per shard: pages end where the writer's 1024-row batches do."""
    paragraphs = [p for _, text in stdlib_sources(400) for p in text.split("\n\n")]
    rows = [{"text": p} for p in paragraphs]  # blank ones are rejects, repeated ones duplicates
    write_jsonl(tmp_path / "input" / "code" / "first.jsonl", rows[: len(rows) // 2])
    write_jsonl(tmp_path / "input" / "code" / "second.jsonl", rows[len(rows) // 2 :])
    duplicates = reference_ingest(tmp_path / "input", "code", 2, tmp_path / "reference")
    few_runs = plan(2, spill_bytes=2 * MB, bucket_bytes=512 << 10)
    stats = ingest_category(tmp_path / "input", "code", DataLayout(tmp_path / "out"), 2, plan=few_runs)
    assert output_bytes(tmp_path / "out") == output_bytes(tmp_path / "reference")
    assert min(stats.shard_documents.values()) > 8 * 1024 and stats.duplicates == duplicates > 500


def test_row_groups_are_cut_by_the_rows_alone(input_dir, reference, tmp_path, monkeypatch):
    monkeypatch.setattr(sharding, "ROW_GROUP_TEXT_BYTES", 60_000)
    roots = [tmp_path / "spilled", tmp_path / "in-memory"]
    ingest_category(input_dir, "code", DataLayout(roots[0]), SHARDS, plan=plan(1, **SPILLING))
    ingest_category(input_dir, "code", DataLayout(roots[1]), SHARDS, plan=plan(1))
    assert output_bytes(roots[0]) == output_bytes(roots[1])
    expected_rows = 0
    for name, data in reference[0].items():
        if name.endswith(".parquet"):
            expected_rows += pq.read_metadata(pa.BufferReader(data)).num_rows
            assert pq.read_table(roots[0] / name).equals(pq.read_table(pa.BufferReader(data)))
    groups = [
        (meta.num_row_groups, [pq.ParquetFile(p).read_row_group(i).column("text") for i in range(meta.num_row_groups)])
        for p in sorted((roots[0] / "raw_corpus").rglob("*.parquet"))
        for meta in [pq.read_metadata(p)]
    ]
    assert sum(n for n, _ in groups) > 2 * SHARDS
    for _, columns in groups:
        for text in columns:
            sizes = pc.binary_length(text).to_pylist()
            assert len(sizes) == 1 or sum(sizes) <= 60_000
    assert sum(len(c) for _, columns in groups for c in columns) == expected_rows


def test_progress_counts_every_file_and_byte_then_every_shard(input_dir, tmp_path):
    snapshots: list[IngestProgress] = []
    ingest_category(input_dir, "code", DataLayout(tmp_path), SHARDS, snapshots.append, plan=plan(2, **SPILLING))
    files = category_files(input_dir / "code")
    reading = [s for s in snapshots if s.step == READING]
    writing = [s for s in snapshots if s.step == WRITING]
    assert [s.files_done for s in reading] == list(range(1, len(files) + 1))
    assert reading[-1].bytes_done == reading[-1].bytes_total == sum(p.stat().st_size for p in files)
    assert [s.bytes_done for s in reading] == sorted(s.bytes_done for s in reading)
    assert [s.shards_done for s in writing] == list(range(SHARDS + 1))
    assert writing[-1].eta_s == 0.0 and reading[-1].eta_s == 0.0
    assert reading[-1].rate_mb_s > 0
    assert "files" in reading[0].message() and reading[0].as_metadata()["files_total"] == len(files)


def _plain_files(input_dir: Path) -> list[Path]:
    return [p for p in category_files(input_dir / "code") if can_split(local_file(p, p.name))]


@pytest.mark.parametrize("range_bytes", [1, 7, 300, 4096])
def test_ranges_of_a_file_read_one_after_another_give_what_reading_it_whole_gives(input_dir, range_bytes):
    """Locations (line numbers), BOM, blank lines, bad rows: the same items, in the same order."""
    split = []
    for path in _plain_files(input_dir):
        whole = list(read_file(path, source=path.name))
        spans = line_ranges(local_file(path, path.name), range_bytes)
        if spans is None:
            continue
        split.append(path.name)
        assert spans[0].start == 0 and spans[-1].end == path.stat().st_size
        assert all(a.end == b.start for a, b in zip(spans, spans[1:]))
        data = path.read_bytes()
        assert all(data[s.start - 1 : s.start] == b"\n" for s in spans[1:])  # ranges start at line starts
        assert [s.first_line for s in spans] == [data[: s.start].count(b"\n") + 1 for s in spans]
        assert [i for s in spans for i in read_file(path, source=path.name, span=s)] == whole
    assert "a.jsonl" in split and (range_bytes > 7 or len(split) >= 8), split


def test_files_whose_reading_depends_on_their_first_line_are_read_whole(tmp_path):
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps([{"text": "a" * 50}, {"text": "b" * 50}], indent=2))
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(b"\n   \n" * 100)
    gz = tmp_path / "rows.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"text": "x"}\n' * 100))
    broken_then_pretty = tmp_path / "broken.jsonl"
    broken_then_pretty.write_bytes(b"\xff\xfe\n[\n" + b'{"text": "x"},\n' * 100 + b"]\n")
    for path in (pretty, blank, gz, broken_then_pretty):
        assert line_ranges(local_file(path, path.name), 16) is None, path.name
    rows = tmp_path / "rows.jsonl"
    rows.write_bytes(b'\xef\xbb\xbf{"text": "first"}\n' + b'{"text": "x"}\n' * 100)
    assert len(line_ranges(local_file(rows, rows.name), 16)) > 50


@pytest.mark.parametrize("workers", [2, 3])
def test_files_read_as_ranges_by_several_workers_give_the_same_bytes(input_dir, reference, tmp_path, workers):
    expected, duplicates = reference
    snapshots: list[IngestProgress] = []
    stats = ingest_category(
        input_dir, "code", DataLayout(tmp_path), SHARDS, snapshots.append, plan=plan(workers, **SPILLING), range_bytes=2048
    )
    assert output_bytes(tmp_path) == expected
    assert stats.duplicates == duplicates
    reading = [s for s in snapshots if s.step == READING]
    files = category_files(input_dir / "code")
    assert len(reading) > len(files)  # more tasks than files: some files were cut
    assert reading[-1].files_done == reading[-1].files_total == len(files)
    assert reading[-1].bytes_done == sum(p.stat().st_size for p in files)


def test_a_file_gone_after_it_was_cut_is_one_reject(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"text": "x"}\n' * 100)
    spans = line_ranges(local_file(path, path.name), 64)
    path.unlink()
    items = [i for s in spans for i in read_file(path, source="rows.jsonl", span=s)]
    assert items == [Reject("rows.jsonl", 0, "no such file", "")]


@pytest.mark.parametrize("spill_bytes", [256 * MB, 1])
def test_a_duplicate_text_reject_names_the_row_that_is_kept(tmp_path: Path, spill_bytes: int):
    """The first copy by file, then line, is kept; every other copy's reject says which row that
    is, whether the copies met in one reader's buffer (everything in one buffer) or only when
    the shard was written (spill_bytes=1: every row a run of its own)."""
    (_, text), (_, other) = stdlib_sources(2, min_chars=2_000)
    write_jsonl(tmp_path / "in" / "code" / "b.jsonl", [{"text": text}, {"text": other}, {"text": text}])
    write_jsonl(tmp_path / "in" / "code" / "a.jsonl", [{"text": other}, {"text": text}])
    stats = ingest_category(tmp_path / "in", "code", DataLayout(tmp_path / "out"), 2,
                            plan=plan(1, spill_bytes=spill_bytes))  # fmt: skip
    assert stats.duplicates == 3
    rejects = [json.loads(line) for line in (tmp_path / "out" / REJECTS / "category=code" / REJECTS_FILE).read_text().splitlines()]
    named = {(r["source"], r["location"]): r["reason"].split(", which")[0] for r in rejects}
    assert named == {
        ("b.jsonl", 1): "duplicate text: same document as a.jsonl location 2",
        ("b.jsonl", 2): "duplicate text: same document as a.jsonl location 1",
        ("b.jsonl", 3): "duplicate text: same document as a.jsonl location 2",
    }
