"""Read input files into documents, setting aside every unusable row with its reason.

Supported: JSON lines (``.jsonl``/``.json``/``.ndjson``, plain, ``.gz`` or ``.zst``) and
Parquet. The text is read from ``content`` (LongAttn's format) or ``text`` (HF/datatrove);
an ``id`` field, when present, becomes the document's ``doc_id``. A bad row never stops
the file: it becomes a :class:`Reject` and reading goes on with the next row.
"""

from __future__ import annotations

import codecs
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq
import zstandard

TEXT_FIELDS = ("content", "text")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSIONS = ("", ".gz", ".zst")
EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Document:
    text: str
    doc_id: str | None
    source: str
    location: int


@dataclass(frozen=True)
class Reject:
    source: str
    location: int
    reason: str
    excerpt: str


def is_supported(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return True
    return any(name.endswith(s + c) for s in JSONL_SUFFIXES for c in COMPRESSIONS)


def _excerpt(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    return raw[:EXCERPT_CHARS]


def _text_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return f"text is {type(text).__name__}, not a string"
    if not text.strip():
        return "empty or whitespace-only text"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text has lone surrogates (not valid Unicode)"
    return None


def _id_problem(value: object) -> str | None:
    if value is None or isinstance(value, (str, int)) and not isinstance(value, bool):
        return None
    return f"id is {type(value).__name__}, not a string or integer"


def record_to_document(record: object, source: str, location: int, raw: bytes | str) -> Document | Reject:
    """Validate one parsed record; the text field is ``content`` if present, else ``text``."""
    if not isinstance(record, dict):
        return Reject(source, location, f"row is a JSON {type(record).__name__}, not an object", _excerpt(raw))
    field = next((f for f in TEXT_FIELDS if f in record), None)
    if field is None:
        return Reject(source, location, "no 'content' or 'text' field", _excerpt(raw))
    text_problem = _text_problem(record[field])
    if text_problem:
        return Reject(source, location, f"{field}: {text_problem}", _excerpt(raw))
    id_problem = _id_problem(record.get("id"))
    if id_problem:
        return Reject(source, location, id_problem, _excerpt(raw))
    doc_id = record.get("id")
    return Document(record[field], None if doc_id is None else str(doc_id), source, location)


class TruncatedStream(OSError):
    """A compressed file that ends before its stream does."""


def _decompressed_chunks(path: Path, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The file's bytes, decompressed incrementally so damage loses only what follows it."""
    name = path.name.lower()
    if name.endswith(".gz"):
        new = partial(zlib.decompressobj, 16 + zlib.MAX_WBITS)
    elif name.endswith(".zst"):
        new = zstandard.ZstdDecompressor().decompressobj
    else:
        new = None
    with open(path, "rb") as handle:
        decompressor = new() if new else None
        while chunk := handle.read(chunk_bytes):
            if decompressor is None:
                yield chunk
                continue
            while chunk:
                yield decompressor.decompress(chunk)
                chunk = decompressor.unused_data if decompressor.eof else b""
                if chunk:  # concatenated gzip members or zstd frames
                    decompressor = new()
        if decompressor is not None and not decompressor.eof:
            raise TruncatedStream(f"compressed stream ends early (truncated {path.suffix} file)")


def _lines(path: Path) -> Iterator[bytes]:
    pending: list[bytes] = []  # pieces of a line longer than a chunk, joined once
    for chunk in _decompressed_chunks(path):
        *complete, tail = chunk.split(b"\n")
        if complete:
            complete[0] = b"".join([*pending, complete[0]])
            pending = []
            yield from complete
        pending.append(tail)
    if last := b"".join(pending):
        yield last


def _read_jsonl(path: Path, source: str) -> Iterator[Document | Reject]:
    line_no = 0
    try:
        for line_no, raw in enumerate(_lines(path), start=1):
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]  # editors on Windows save JSONL with a BOM
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Reject(source, line_no, f"invalid UTF-8 at byte {exc.start}", _excerpt(raw))
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                yield Reject(source, line_no, f"invalid JSON: {exc}", _excerpt(raw))
                continue
            yield record_to_document(record, source, line_no, raw)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        yield Reject(source, line_no + 1, f"unreadable file after line {line_no}: {exc}", "")


def _read_parquet(path: Path, source: str) -> Iterator[Document | Reject]:
    row = 0
    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        columns = [c for c in ("id", *TEXT_FIELDS) if c in names]
        for batch in parquet.iter_batches(batch_size=1024, columns=columns or None):
            for record in batch.to_pylist():
                row += 1
                yield record_to_document(record, source, row, repr(record)[:EXCERPT_CHARS])
    except Exception as exc:  # pyarrow raises several types for corrupt files
        yield Reject(source, row + 1, f"unreadable Parquet after row {row}: {exc}", "")


def read_file(path: Path, source: str | None = None) -> Iterator[Document | Reject]:
    """Documents and rejects of one input file, in file order; ``source`` names it in ids."""
    source = source or path.name
    if path.name.lower().endswith(".parquet"):
        yield from _read_parquet(path, source)
    elif is_supported(path):
        yield from _read_jsonl(path, source)
    else:
        yield Reject(source, 0, "unsupported file type (expected .jsonl[.gz|.zst] or .parquet)", "")


def category_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` (recursively, hidden files skipped), sorted by path."""
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
