"""Cut a large plain JSON-lines file into byte ranges that workers read in parallel.

A file is the unit of work of ingest's readers, so a category held in a few huge files
would be read by a few workers. A plain (uncompressed) JSON-lines file larger than a
range is cut at line starts into ranges of about ``range_bytes``: each range holds whole
lines, and knows the number of its first line, so a document or a reject read from it
carries the location (line number) that reading the whole file gives. Compressed files,
Parquet and Arrow files, and remote files (cutting them would read them twice) are read
whole.

A file is left whole when cutting it could change what reading it gives: when its first
non-blank line opens a pretty-printed JSON document (the whole file is one reject then)
or when it holds no non-blank line at all (one "no rows" reject).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import IO

from .input_file import ContentDigest, InputFile

# About the bytes of one range: small enough to spread a file over the workers and to
# balance them at the end, large enough that a range's fixed costs do not count.
RANGE_BYTES = 64 << 20
_BLOCK = 8 << 20
_PLAIN_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass(frozen=True)
class LineRange:
    """Bytes ``[start, end)`` of a file: whole lines, the first of them line ``first_line``."""

    start: int
    end: int
    first_line: int


def can_split(file: InputFile) -> bool:
    return file.is_local and file.name.lower().endswith(_PLAIN_SUFFIXES)


def _next_line_start(handle: IO[bytes], position: int, size: int) -> int:
    """The first line start at or after ``position`` (``size`` when no line starts there)."""
    if position <= 0:
        return 0
    handle.seek(position - 1)
    offset = position - 1
    while block := handle.read(1 << 16):
        found = block.find(b"\n")
        if found >= 0:
            return offset + found + 1
        offset += len(block)
    return size


def _opens_pretty_json(handle: IO[bytes]) -> bool | None:
    """Whether the line the reader takes as the file's opening one (the first non-blank line
    that is valid UTF-8, after a BOM) looks like the start of a pretty-printed document;
    None when there is no such line."""
    from .records import spread_over_lines

    handle.seek(0)
    pending, number = b"", 0
    while True:
        block = handle.read(1 << 16)
        pending += block
        lines = pending.split(b"\n") if block else [pending, b""]
        for line in lines[:-1]:
            number += 1
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]
            if not line.strip():
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                continue
            return spread_over_lines(line)
        if not block:
            return None
        pending = lines[-1]
        if len(pending) > _BLOCK and pending.strip():
            return True  # a first line longer than a block: not worth deciding, read whole


def line_ranges(
    file: InputFile, range_bytes: int = RANGE_BYTES, digest: ContentDigest | None = None
) -> list[LineRange] | None:
    """The ranges to read ``file`` in, or None to read it whole (see the module's docstring).

    Cutting reads the whole file once to number its lines; ``digest`` is fed those bytes (the
    file's content hash, which the workers reading ranges cannot compute)."""
    size = file.size
    if not can_split(file) or size <= range_bytes:
        return None
    try:
        with file.open() as handle:
            if _opens_pretty_json(handle) is not False:
                return None
            starts = sorted({_next_line_start(handle, k * range_bytes, size) for k in range(size // range_bytes + 1)})
            starts = [s for s in starts if s < size]
            ranges = []
            handle.seek(0)
            line = 1
            for start, end in zip(starts, [*starts[1:], size]):
                ranges.append(LineRange(start, end, line))
                remaining = end - start
                while remaining:
                    block = handle.read(min(_BLOCK, remaining))
                    if not block:  # the file shrank while it was planned: read it whole
                        return None
                    line += block.count(b"\n")
                    remaining -= len(block)
                    if digest is not None:
                        digest.update(block)
    except OSError:
        return None  # the reader rejects the file with the reason
    return ranges if len(ranges) > 1 else None
