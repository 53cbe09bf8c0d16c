"""Read input files into documents, setting aside every unusable row with its reason.

Supported: JSON lines (``.jsonl``/``.json``/``.ndjson``, plain, ``.gz`` or ``.zst``),
Parquet, and Arrow (``.arrow``: the files of a Hugging Face ``save_to_disk`` dataset). The
text is read from ``content`` (LongAttn's format) or ``text`` (HF/datatrove), or from the
one column configured (``LONGATTN_TEXT_COLUMN``); an ``id`` field, when present, becomes
the document's ``doc_id`` (a whole-number float, as pandas writes an integer column with
gaps, reads as that integer). A bad row never
stops the file: it becomes a :class:`Reject` and reading goes on with the next row.

Every file under an input folder is read or rejected whole with its reason: an empty
file, a dangling symlink, a symlink leaving the input folder, a FIFO, socket or device
(never opened, so it cannot block), a symlinked folder that loops, a pretty-printed JSON
array. Symlinks (to files or folders) are followed while their target lies inside the
input folder. Files are read as streams from :meth:`.input_file.InputFile.open`, local or
remote alike; a file that changed or vanished since it was listed, or that ends before its
listed size, is a reject with the reason.
"""

from __future__ import annotations

import codecs
import json
import math
import os
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

from .input_file import DEFAULT_TEXT_FIELDS, ContentDigest, InputFile, local_file, redact
from .ranges import LineRange

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


def duplicate_reason(doc_hash: str, kept_source: str, kept_location: int) -> str:
    """Why a row is rejected as a copy: the row kept with the same text (file and line or row)."""
    return f"duplicate text: same document as {kept_source} location {kept_location}, which is kept (doc_hash {doc_hash})"


def is_supported(path: Path | str) -> bool:
    name = Path(path).name.lower()
    if name.endswith((".parquet", ".arrow")):
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


def record_to_document(
    record: object, source: str, location: int, raw: bytes | str, fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS
) -> Document | Reject:
    """Validate one parsed record; the text is the first of ``fields`` present (``content``, else ``text``)."""
    if not isinstance(record, dict):
        return Reject(source, location, f"row is a JSON {type(record).__name__}, not an object", _excerpt(raw))
    field = next((f for f in fields if f in record), None)
    if field is None:
        return Reject(source, location, f"no {' or '.join(map(repr, fields))} field", _excerpt(raw))
    text_problem = _text_problem(record[field])
    if text_problem:
        return Reject(source, location, f"{field}: {text_problem}", _excerpt(raw))
    try:
        doc_id = _doc_id(record.get("id"))
    except ValueError as exc:
        return Reject(source, location, str(exc), _excerpt(raw))
    return Document(record[field], doc_id, source, location)


class TruncatedStream(OSError):
    """A file that ends before its compressed stream, or its listed size, does."""


def _raw_chunks(
    file: InputFile, chunk_bytes: int, span: LineRange | None = None, digest: ContentDigest | None = None
) -> Iterator[bytes]:
    """The file's bytes as listed (those of ``span`` only), each fed to ``digest``; a stream
    that ends short of the listed size raises."""
    read = 0
    limit = None if span is None else span.end - span.start  # None: to the end of the file
    with file.open() as handle:
        if span is not None:
            handle.seek(span.start)
        while limit is None or read < limit:
            try:
                chunk = handle.read(chunk_bytes if limit is None else min(chunk_bytes, limit - read))
            except OSError:
                raise
            except Exception as exc:  # a remote backend's own error types (aiohttp, botocore)
                raise OSError(redact(f"{type(exc).__name__}: {exc}")) from exc
            if not chunk:
                break
            read += len(chunk)
            if digest is not None:
                digest.update(chunk)
            yield chunk
    expected = file.size if limit is None else limit
    if read < expected:
        raise TruncatedStream(f"it ended after {read} of its {expected} bytes (cut or replaced while read)")


def _decompressed_chunks(
    file: InputFile, span: LineRange | None = None, chunk_bytes: int = 1 << 20, digest: ContentDigest | None = None
) -> Iterator[bytes]:
    """The file's bytes (those of ``span`` only, in a plain file), decompressed incrementally
    so damage loses only what follows it."""
    name = file.name.lower()
    if name.endswith(".gz"):
        new = partial(zlib.decompressobj, 16 + zlib.MAX_WBITS)
    elif name.endswith(".zst"):
        new = zstandard.ZstdDecompressor().decompressobj
    else:
        new = None
    decompressor = new() if new else None
    for chunk in _raw_chunks(file, chunk_bytes, span, digest):
        if decompressor is None:
            yield chunk
            continue
        while chunk:
            yield decompressor.decompress(chunk)
            chunk = decompressor.unused_data if decompressor.eof else b""
            if chunk:  # concatenated gzip members or zstd frames
                decompressor = new()
    if decompressor is not None and not decompressor.eof:
        raise TruncatedStream(f"compressed stream ends early (truncated {Path(name).suffix} file)")


def _lines(file: InputFile, span: LineRange | None = None, digest: ContentDigest | None = None) -> Iterator[bytes]:
    pending: list[bytes] = []  # pieces of a line longer than a chunk, joined once
    for chunk in _decompressed_chunks(file, span, digest=digest):
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


def _read_jsonl(
    file: InputFile,
    source: str,
    fields: tuple[str, ...],
    span: LineRange | None = None,
    digest: ContentDigest | None = None,
) -> Iterator[Document | Reject]:
    first_line = 1 if span is None else span.first_line
    line_no = first_line - 1
    first = span is None or span.start == 0  # later ranges never hold the opening line (ranges.py)
    try:
        for line_no, raw in enumerate(_lines(file, span, digest), start=first_line):
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
            yield record_to_document(record, source, line_no, raw, fields)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        yield Reject(source, line_no + 1, f"unreadable file after line {line_no}: {exc}", "")


def _parquet_batches(handle: IO[bytes], fields: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    parquet = pq.ParquetFile(handle)  # reads the footer, then each row group's byte ranges
    columns = [c for c in ("id", *fields) if c in parquet.schema_arrow.names]
    yield from parquet.iter_batches(batch_size=1024, columns=columns or None)


def _arrow_batches(handle: IO[bytes], fields: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    """Batches of an Arrow IPC stream (as ``datasets`` writes) or IPC file."""
    random_access = handle.read(6) == b"ARROW1"
    handle.seek(0)
    reader = pa.ipc.open_file(handle) if random_access else pa.ipc.open_stream(handle)
    columns = [c for c in ("id", *fields) if c in reader.schema.names] or reader.schema.names
    batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) if random_access else reader
    for batch in batches:
        yield batch.select(columns)


def _read_columnar(
    file: InputFile, source: str, fields: tuple[str, ...], kind: str, batches: Callable[..., Iterator[pa.RecordBatch]]
) -> Iterator[Document | Reject]:
    row = 0
    try:
        with file.open() as handle:
            for batch in batches(handle, fields):
                for record in batch.to_pylist():
                    row += 1
                    yield record_to_document(record, source, row, repr(record)[:EXCERPT_CHARS], fields)
    except Exception as exc:  # pyarrow and remote backends raise several types for damaged files
        yield Reject(source, row + 1, redact(f"unreadable {kind} after row {row}: {exc}"), "")


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
        return _folder_problem(path)
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, socket or device): not read"
    if info.st_size == 0:
        return "empty file (0 bytes)"
    return None


def _folder_problem(path: Path) -> str:
    """Why a folder listed as an entry (:func:`category_files` descends every other one) is not read."""
    if path.is_symlink():
        return "symlinked folder that loops back onto a folder above it: not followed"
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        return f"folder that cannot be listed ({exc.strerror}): none of its files are read"
    return "a folder, not a file"


def read_file(
    file: InputFile | Path,
    source: str | None = None,
    fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS,
    span: LineRange | None = None,
    digest: ContentDigest | None = None,
) -> Iterator[Document | Reject]:
    """Documents and rejects of one input file, in file order; ``source`` names it in ids
    (default: the InputFile's name, a path's file name).

    A file that cannot be read (see :func:`file_problem`), is empty or holds no row at all
    is one reject, so every file ends up read or rejected with a reason. ``span``: read only
    these lines of a plain JSON-lines file (:mod:`.ranges`), as reading it whole would.
    ``digest`` (whole files only) is fed the bytes read, for the file's content hash.
    """
    if isinstance(file, Path):
        file = local_file(file, file.name)
    source = source or file.name
    if file.is_local:
        problem = file_problem(Path(file.url), Path(file.boundary) if file.boundary else None)
    else:
        problem = "empty file (0 bytes)" if file.size == 0 else None
    if problem:
        if span is None or span.start == 0:  # one reject for the file, from its first range
            yield Reject(source, 0, problem, "")
        return
    name = file.name.lower()
    if digest is not None:
        digest.readable = is_supported(name)
    if name.endswith(".parquet"):
        items = _read_columnar(file, source, fields, "Parquet", _parquet_batches)
    elif name.endswith(".arrow"):
        items = _read_columnar(file, source, fields, "Arrow", _arrow_batches)
    elif is_supported(name):
        items = _read_jsonl(file, source, fields, span, None if span else digest)
    else:
        yield Reject(source, 0, "unsupported file type (expected .jsonl[.gz|.zst], .parquet or .arrow)", "")
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
    and :func:`read_file` reads it or rejects it with the reason. So is a sub-folder that
    cannot be listed (no read permission): one reject says why its files are missing.
    """
    root = folder.resolve()
    found: list[Path] = []

    def walk(directory: Path, above: frozenset[Path]) -> None:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = Path(entry.path)
                if entry.is_dir():
                    target = path.resolve()
                    if target.is_relative_to(root) and target not in above and _listable(path):
                        walk(path, above | {target})
                        continue
                found.append(path)

    walk(folder, frozenset({root}))
    return sorted(found)


def _listable(path: Path) -> bool:
    try:
        with os.scandir(path):
            return True
    except OSError:
        return False
