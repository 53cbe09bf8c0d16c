"""One input file, local or remote: its URL, the version listed, and a byte stream to read it.

An :class:`InputFile` is what listing (:mod:`.sources`) produces and what readers
(:mod:`.records`), the ingest fingerprint and the sensor use, whatever the file lives on: a
local path, or an fsspec URL (``s3://``, ``gs://``, ``hf://``). Its version is, for a local
file, its mtime, ctime and inode (:func:`local_version`), or the object's version id,
generation, ETag or blob id; :meth:`InputFile.open` refuses a file whose version changed
since the listing, so the fingerprint recorded for an ingest always describes the bytes it
read. A remote file is opened by the worker that reads it and read as a stream of byte
ranges, never copied whole.

The version is a cheap identity: a local file's *content* is the sha256 of its bytes
(:class:`ContentDigest`), computed by ingest while it reads the file anyway, and computed
again by a currency check only for a file whose version changed. An object store's version
id, generation or ETag changes with every write, so it stands for a remote file's content.

A URL is only ever shown through :func:`redact` (no user info, no query), and a file is
named in rows and rejects by its path under the category folder, so no credential reaches
logs, metadata, rejects or provenance.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from ..provenance import digest

DEFAULT_TEXT_FIELDS = ("content", "text")
# Bytes fetched per range request of a remote stream (fsspec's default for S3 is 50 MB).
REMOTE_BLOCK_BYTES = 8 << 20
# An object's identity in each backend's listing, most specific first; else its mtime.
_VERSION_KEYS = ("VersionId", "generation", "ETag", "etag", "blob_id", "md5Hash")
_MTIME_KEYS = ("LastModified", "mtime", "updated", "last_modified", "created")
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/\s@]*@", re.IGNORECASE)
_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s?#'\"]*)[?#][^\s'\"]*", re.IGNORECASE)


class InputAccessError(PermissionError):
    """An input location that cannot be listed or read with the credentials found."""


class ChangedInputError(OSError):
    """A file that changed or vanished between its listing and its reading."""


def is_url(where: str | os.PathLike[str]) -> bool:
    text = str(where)
    return "://" in text and urlsplit(text).scheme not in ("", "file")


def location(where: str | os.PathLike[str]) -> str:
    """An input location as ingest uses it: a URL as given (without a trailing slash), else an
    absolute local path."""
    text = str(where)
    if is_url(text):
        return text.rstrip("/")
    return str(Path(text.removeprefix("file://")).expanduser().absolute())


def redact(text: str) -> str:
    """``text`` with the user info and query of every URL in it removed (they may hold secrets)."""
    return _QUERY.sub(r"\1", _USERINFO.sub(r"\1", str(text)))


def text_fields(text_column: str) -> tuple[str, ...]:
    """The fields a row's text is read from: the named one, else ``content`` then ``text``."""
    return (text_column,) if text_column else DEFAULT_TEXT_FIELDS


def filesystem(url: str, fresh: bool = False) -> tuple[Any, str]:
    """(fsspec filesystem, path in it) of ``url``; credentials come from the backend's usual places.

    ``fresh``: a new instance rather than fsspec's cached one (credentials read anew)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **({"skip_instance_cache": True} if fresh else {}))
    except ImportError as exc:  # the scheme's backend (s3fs, gcsfs) is not installed
        raise InputAccessError(f"cannot read {urlsplit(url).scheme}:// inputs: {exc}") from None


def version_of(info: dict[str, Any]) -> str:
    """The version of an object as its filesystem's ``info``/listing describes it."""
    for key in _VERSION_KEYS:
        value = info.get(key)
        if value not in (None, "", "null"):
            return f"{key}={str(value).strip(chr(34))}"
    for key in _MTIME_KEYS:
        if info.get(key) is not None:
            return f"{key}={info[key]}"
    return ""


def local_version(info: os.stat_result) -> str:
    """A local file's version: ``mtime.ctime.inode`` in nanoseconds.

    Restoring a file's mtime after an edit (``touch -r``, ``cp -p``, ``rsync -t``, ``tar``)
    cannot restore its ctime, which the kernel sets on every change, so an edit that keeps
    size and mtime still shows; a copy or a ``chmod`` shows too, and is then found unchanged
    by its content hash.
    """
    return f"{info.st_mtime_ns}.{info.st_ctime_ns}.{info.st_ino}"


@dataclass(frozen=True)
class InputFile:
    """One file a category's ingest reads: where it is and which version of it was listed."""

    url: str = field(repr=False)  # an absolute local path or a URL, as the user gave it: never shown
    name: str  # its path under the category folder: the rows' source
    size: int
    version: str
    boundary: str | None = None  # local files: the folder symlinks may not lead out of

    @property
    def is_local(self) -> bool:
        return not is_url(self.url)

    def open(self) -> IO[bytes]:
        """The file as a byte stream, checked to be the version listed (else ChangedInputError)."""
        if self.is_local:
            handle: IO[bytes] = open(self.url, "rb")
            now = local_version(os.fstat(handle.fileno()))
        else:
            fs, path = filesystem(self.url)
            try:
                handle = fs.open(path, "rb", block_size=REMOTE_BLOCK_BYTES)
                now = version_of(getattr(handle, "details", None) or fs.info(path))
            except FileNotFoundError:
                raise ChangedInputError(f"{self.name} was removed after it was listed") from None
        if now != self.version:
            handle.close()
            raise ChangedInputError(f"{self.name} changed after it was listed ({self.version}, now {now})")
        return handle


def local_file(path: Path, name: str | None = None, boundary: Path | None = None) -> InputFile:
    """The :class:`InputFile` of a local path (named by its absolute path unless ``name``). An
    entry that cannot be stat'ed is listed all the same: its reader rejects it with the reason."""
    try:
        info = path.stat() if path.exists() else path.lstat()  # a dangling symlink is a reject
        size, version = info.st_size, local_version(info)
    except OSError:
        size, version = 0, ""
    return InputFile(str(path), name or path.absolute().as_posix(), size, version, str(boundary) if boundary else None)


_HASH_BLOCK = 8 << 20


class ContentDigest:
    """sha256 of a local file's bytes, fed by its reader as the bytes stream past.

    :func:`.records.read_file` feeds it what it reads from the start of the file and marks
    the file readable; :meth:`hexdigest` hashes whatever the reader did not read (a reader
    stopped by damage, or Parquet's and Arrow's readers, which seek), so the result is the
    hash of the whole file either way. None for a file that could not be read.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.offset = 0
        self.readable = False

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.offset += len(chunk)

    def hexdigest(self, file: InputFile) -> str | None:
        if not self.readable or not file.is_local:
            return None
        try:
            with file.open() as handle:
                handle.seek(self.offset)
                while block := handle.read(_HASH_BLOCK):
                    self.update(block)
        except OSError:
            return None
        return self._hash.hexdigest()


def content_sha256(file: InputFile) -> str | None:
    """The sha256 of a local file's bytes as it is now (None: not a local regular file, or unreadable)."""
    try:
        if not file.is_local or not stat.S_ISREG(os.stat(file.url).st_mode):
            return None  # never open a FIFO or a device: it could block
    except OSError:
        return None
    digest = ContentDigest()
    digest.readable = True
    return digest.hexdigest(file)


def files_fingerprint(files: Iterable[InputFile], fields: tuple[str, ...] = DEFAULT_TEXT_FIELDS) -> str:
    """Hash of (name, size, version) of ``files``, and of the text field when not the default:
    changes when a file is added, removed or rewritten, or another column becomes the text."""
    entries = [f"{f.name}\t{f.size}\t{f.version}" for f in files]
    if fields != DEFAULT_TEXT_FIELDS:
        entries.append(f"text field\t{','.join(fields)}")
    return digest(entries)
