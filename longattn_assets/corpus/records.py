"""Read input files into documents, setting aside every unusable row with its reason.

Supported: JSON lines (``.jsonl``/``.json``/``.ndjson``, plain, ``.gz`` or ``.zst``) and
Parquet. The text is read from ``content`` (LongAttn's format) or ``text`` (HF/datatrove);
an ``id`` field, when present, becomes the document's ``doc_id`` (a whole-number float,
as pandas writes an integer column with gaps, reads as that integer). A bad row never
stops the file: it becomes a :class:`Reject` and reading goes on with the next row.

Every file under an input folder is read or rejected whole with its reason: an empty
file, a dangling symlink, a symlink leaving the input folder, a FIFO, socket or device
(never opened, so it cannot block), a symlinked folder that loops, a pretty-printed JSON
array. Symlinks (to files or folders) are followed while their target lies inside the
input folder.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import pyarrow.parquet as pq
import zstandard

from .ranges import LineRange

TEXT_FIELDS = ("content", "text")
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSIONS = ("", ".gz", ".zst")
EXCERPT_CHARS = 200
PRETTY_JSON = (
    "a JSON document spread over several lines (pretty-printed): expected one JSON object "
    "per line (JSON Lines); convert it with `jq -c '.[]'`"
)


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
    if text.isascii():  # O(1) in CPython: an ASCII string holds no surrogate
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text has lone surrogates (not valid Unicode)"
    return None


def _doc_id(value: object) -> str | None:
    """The id as text; raises ValueError when it is not a string, an integer or a whole float."""
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"id is {value!r}, not a whole number")
    raise ValueError(f"id is {type(value).__name__}, not a string or integer")


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
    try:
        doc_id = _doc_id(record.get("id"))
    except ValueError as exc:
        return Reject(source, location, str(exc), _excerpt(raw))
    return Document(record[field], doc_id, source, location)


class TruncatedStream(OSError):
    """A compressed file that ends before its stream does."""


def _blocks(handle: BinaryIO, span: LineRange | None, chunk_bytes: int) -> Iterator[bytes]:
    """The file's bytes in chunks: all of them, or those of ``span``."""
    if span is None:
        while chunk := handle.read(chunk_bytes):
            yield chunk
        return
    handle.seek(span.start)
    left = span.end - span.start
    while left > 0 and (chunk := handle.read(min(chunk_bytes, left))):
        left -= len(chunk)
        yield chunk


def _decompressed_chunks(path: Path, span: LineRange | None = None, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """The file's bytes (those of ``span`` only, in a plain file), decompressed incrementally
    so damage loses only what follows it."""
    name = path.name.lower()
    if name.endswith(".gz"):
        new = partial(zlib.decompressobj, 16 + zlib.MAX_WBITS)
    elif name.endswith(".zst"):
        new = zstandard.ZstdDecompressor().decompressobj
    else:
        new = None
    with open(path, "rb") as handle:
        decompressor = new() if new else None
        for chunk in _blocks(handle, span, chunk_bytes):
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


def _lines(path: Path, span: LineRange | None = None) -> Iterator[bytes]:
    pending: list[bytes] = []  # pieces of a line longer than a chunk, joined once
    for chunk in _decompressed_chunks(path, span):
        *complete, tail = chunk.split(b"\n")
        if complete:
            complete[0] = b"".join([*pending, complete[0]])
            pending = []
            yield from complete
        pending.append(tail)
    if last := b"".join(pending):
        yield last


def spread_over_lines(raw: bytes) -> bool:
    """A first line that opens a pretty-printed JSON document rather than holding one row."""
    head = raw.strip()
    return head in (b"[", b"{") or head.startswith(b"[")


def _read_jsonl(path: Path, source: str, span: LineRange | None = None) -> Iterator[Document | Reject]:
    first_line = 1 if span is None else span.first_line
    line_no = first_line - 1
    first = span is None or span.start == 0  # later ranges never hold the opening line (ranges.py)
    try:
        for line_no, raw in enumerate(_lines(path, span), start=first_line):
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]  # editors on Windows save JSONL with a BOM
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Reject(source, line_no, f"invalid UTF-8 at byte {exc.start}", _excerpt(raw))
                continue
            opening, first = first, False
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                if opening and spread_over_lines(raw):
                    yield Reject(source, line_no, PRETTY_JSON, _excerpt(raw))
                    return
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


def file_problem(path: Path, root: Path | None = None) -> str | None:
    """Why ``path`` cannot be read as an input file, or None; it never opens the file.

    With ``root`` (the input folder), a path whose real location lies outside it (through
    a symlink to a file or to a folder above it) is refused.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return "dangling symlink: its target does not exist" if path.is_symlink() else "no such file"
    except OSError as exc:  # ELOOP: a symlink that points at itself
        return f"cannot be read: {exc.strerror}"
    if root is not None and not path.resolve().is_relative_to(root.resolve()):
        return f"symlink to {path.resolve()}, outside the input folder {root}: not followed"
    if stat.S_ISDIR(info.st_mode):
        return "symlinked folder that loops back onto a folder above it: not followed"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, socket or device): not read"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    return None


def read_file(
    path: Path, source: str | None = None, root: Path | None = None, span: LineRange | None = None
) -> Iterator[Document | Reject]:
    """Documents and rejects of one input file, in file order; ``source`` names it in ids.

    A file that cannot be read (see :func:`file_problem`) or holds no row at all is one
    reject, so every file ends up read or rejected with a reason. ``span``: read only
    these lines of a plain JSON-lines file (:mod:`.ranges`), as reading it whole would.
    """
    source = source or path.name
    problem = file_problem(path, root)
    if problem:
        if span is None or span.start == 0:  # one reject for the file, from its first range
            yield Reject(source, 0, problem, "")
        return
    if path.name.lower().endswith(".parquet"):
        items = _read_parquet(path, source)
    elif is_supported(path):
        items = _read_jsonl(path, source, span)
    else:
        yield Reject(source, 0, "unsupported file type (expected .jsonl[.gz|.zst] or .parquet)", "")
        return
    empty = True
    for item in items:
        empty = False
        yield item
    if empty and span is None:  # a file is cut into ranges only when it holds a row
        yield Reject(source, 0, "no rows (only blank lines)", "")


def category_files(folder: Path) -> list[Path]:
    """Every entry under ``folder`` that ingest reads or rejects, sorted by path.

    Hidden files and folders are skipped. A symlinked folder is descended when its target
    lies inside ``folder`` and is not a folder above it; anything else that is not a
    folder (files, FIFOs, dangling symlinks, symlinked folders not descended) is listed,
    and :func:`read_file` reads it or rejects it with the reason.
    """
    root = folder.resolve()
    found: list[Path] = []

    def walk(directory: Path, above: frozenset[Path]) -> None:
        for entry in os.scandir(directory):
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir():
                target = path.resolve()
                if target.is_relative_to(root) and target not in above:
                    walk(path, above | {target})
                    continue
            found.append(path)

    walk(folder, frozenset({root}))
    return sorted(found)
