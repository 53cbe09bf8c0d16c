"""Reading input files: every good row kept, every bad row set aside with its reason."""

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from longattn_assets.corpus.records import Document, Reject, read_file


def split(items):
    docs = [i for i in items if isinstance(i, Document)]
    rejects = [i for i in items if isinstance(i, Reject)]
    return docs, rejects


def test_broken_lines_keep_every_good_line(tmp_path: Path):
    good = [json.dumps({"id": f"d{i}", "content": f"document number {i}"}) for i in range(5)]
    lines = [
        good[0].encode(),
        b'{"content": "unterminated',
        good[1].encode(),
        b'\xff\xfe not utf-8 \xc3',
        good[2].encode(),
        json.dumps({"content": 42}).encode(),
        json.dumps({"text": "   \n\t "}).encode(),
        json.dumps({"title": "no text field"}).encode(),
        json.dumps(["a", "list"]).encode(),
        b'{"content": "lone \\ud800 surrogate"}',
        json.dumps({"id": ["bad"], "content": "id of a wrong type"}).encode(),
        good[3].encode(),
        b"",
        good[4].encode(),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs, rejects = split(list(read_file(path)))
    assert [d.doc_id for d in docs] == ["d0", "d1", "d2", "d3", "d4"]
    assert [d.location for d in docs] == [1, 3, 5, 12, 14]
    reasons = {r.location: r.reason for r in rejects}
    assert set(reasons) == {2, 4, 6, 7, 8, 9, 10, 11}
    assert reasons[2].startswith("invalid JSON")
    assert reasons[4].startswith("invalid UTF-8")
    assert "int, not a string" in reasons[6]
    assert "whitespace" in reasons[7]
    assert "no 'content' or 'text'" in reasons[8]
    assert "list, not an object" in reasons[9]
    assert "surrogate" in reasons[10]
    assert reasons[11].startswith("id is list")
    assert all(r.source == "mixed.jsonl" for r in rejects)


def test_content_is_preferred_and_text_is_accepted(tmp_path: Path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps({"content": "A", "text": "B"}) + "\n" + json.dumps({"text": "C", "id": 7}) + "\n")
    docs, _ = split(list(read_file(path)))
    assert [(d.text, d.doc_id) for d in docs] == [("A", None), ("C", "7")]


def test_compressed_and_parquet_inputs(tmp_path: Path):
    rows = [{"id": "x", "text": "alpha"}, {"id": "y", "text": "beta"}]
    payload = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(payload))
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(payload))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    for name in ("a.jsonl.gz", "a.jsonl.zst", "a.parquet"):
        docs, rejects = split(list(read_file(tmp_path / name)))
        assert [d.text for d in docs] == ["alpha", "beta"], name
        assert rejects == []


def test_truncated_gzip_keeps_lines_before_the_damage(tmp_path: Path):
    payload = "".join(json.dumps({"content": f"row {i} " + "x" * 200}) + "\n" for i in range(200)).encode()
    blob = gzip.compress(payload)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    docs, rejects = split(list(read_file(path)))
    assert 0 < len(docs) < 200
    assert [d.text.split()[1] for d in docs] == [str(i) for i in range(len(docs))]
    assert any("unreadable file" in r.reason or "invalid JSON" in r.reason for r in rejects)


def test_unsupported_file_is_rejected_whole(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    docs, rejects = split(list(read_file(path)))
    assert docs == [] and len(rejects) == 1 and "unsupported" in rejects[0].reason
