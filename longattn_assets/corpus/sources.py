"""Where a category's input files are: a local folder or an fsspec URL, listed alike.

An input location (``LONGATTN_INPUT_DIR``, ``--input-dir``) holds one sub-folder, or
sub-prefix, per category: a local path, ``s3://bucket/prefix``, ``gs://bucket/prefix`` or
``hf://datasets/org/name/folder``. :class:`InputLocation` lists a category's files as
:class:`~.input_file.InputFile` (URL, size, version), which ingest reads, fingerprints and
the sensor watches, whatever the backend.

A Hugging Face ``save_to_disk`` folder under a category is read through its ``.arrow``
files; its ``state.json``, ``dataset_info.json`` and a ``dataset_dict.json`` above it are
metadata, not rows. An ``hf://datasets/...`` location read with ``HF_HUB_OFFLINE=1`` is the
dataset's snapshot in the local Hugging Face cache.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from .input_file import (
    InputAccessError,
    InputFile,
    filesystem,
    is_url,
    local_file,
    location,
    redact,
    version_of,
)
from .records import category_files

_DATASET_STATE, _DATASET_INFO, _DATASET_DICT = "state.json", "dataset_info.json", "dataset_dict.json"
_CREDENTIALS = (
    "credentials are read from each backend's usual places: AWS_* variables or ~/.aws for s3://, "
    "GOOGLE_APPLICATION_CREDENTIALS or gcloud for gs://, HF_TOKEN or `hf auth login` for hf://"
)


def without_dataset_metadata(names: list[str]) -> list[str]:
    """``names`` (paths under a category folder) without the metadata files of save_to_disk datasets."""
    present = set(names)
    datasets = {
        posixpath.dirname(n)
        for n in names
        if posixpath.basename(n) == _DATASET_STATE and posixpath.join(posixpath.dirname(n), _DATASET_INFO) in present
    }
    skipped = {posixpath.join(d, m) for d in datasets for m in (_DATASET_STATE, _DATASET_INFO)}
    skipped |= {posixpath.join(posixpath.dirname(d), _DATASET_DICT) for d in datasets}
    return [n for n in names if n not in skipped]


def _hub_snapshot(url: str) -> tuple[Path, Path] | None:
    """(local folder, repository cache folder) of an ``hf://datasets/`` URL when the Hub is
    offline (``HF_HUB_OFFLINE``), else None: the files then stream from the Hub."""
    parts = urlsplit(url)
    if parts.scheme != "hf":
        return None
    from huggingface_hub import constants, snapshot_download

    if not constants.HF_HUB_OFFLINE:
        return None
    segments = [parts.netloc, *PurePosixPath(parts.path).parts[1:]]
    if len(segments) < 3 or segments[0] != "datasets":
        raise InputAccessError(f"{redact(url)}: expected hf://datasets/<org>/<name>[@revision][/folder]")
    repo, _, revision = f"{segments[1]}/{segments[2]}".partition("@")
    try:
        snapshot = snapshot_download(repo, repo_type="dataset", revision=revision or None, local_files_only=True)
    except Exception as exc:  # LocalEntryNotFoundError and kin: not in the cache
        raise InputAccessError(
            f"dataset {repo} is not in the local Hugging Face cache ({type(exc).__name__}) and HF_HUB_OFFLINE is set"
        ) from None
    # A snapshot's files are symlinks into the repository's blobs/: the repository folder bounds them.
    return Path(snapshot).joinpath(*segments[3:]), Path(snapshot).parent.parent


def named_file(where: str | os.PathLike[str]) -> InputFile:
    """A single file named on a command line: a local path (named by its absolute path) or a
    URL (named by its redacted URL)."""
    if not is_url(where):
        return local_file(Path(where))
    fs, path = filesystem(str(where), fresh=True)
    try:
        info = fs.info(path)
    except PermissionError as exc:
        raise InputLocation.refused(exc, redact(str(where))) from None
    return InputFile(str(where), redact(str(where)), int(info.get("size") or 0), version_of(info))


class InputLocation:
    """An input location (local folder or URL) with one sub-folder per category."""

    def __init__(self, where: str | os.PathLike[str]):
        self.url = location(where)
        self.shown = redact(self.url)  # what logs and errors may say
        self._local: Path | None = None if is_url(self.url) else Path(self.url)
        self._boundary: Path | None = None
        if snapshot := _hub_snapshot(self.url):
            self._local, self._boundary = snapshot
        self._fs: tuple[Any, str] | None = None

    def _remote(self) -> tuple[Any, str]:
        # A fresh filesystem, not fsspec's cached one: a long-lived sensor sees rotated
        # credentials, and no listing cache hides a new object.
        if self._fs is None:
            self._fs = filesystem(self.url, fresh=True)
        return self._fs

    @staticmethod
    def refused(exc: PermissionError, what: str) -> InputAccessError:
        """The one-line error of a location the credentials found may not read."""
        reason = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else type(exc).__name__
        return InputAccessError(f"cannot read {what}: access refused ({reason}); {_CREDENTIALS}")

    def category_location(self, category: str) -> str:
        """Where ``category``'s files are, as shown to people."""
        return str(self._local / category) if self._local is not None else f"{self.shown}/{category}"

    def folders(self) -> list[str]:
        """The names of the sub-folders (the categories present), hidden ones excluded."""
        if self._local is not None:
            if not self._local.is_dir():
                return []
            return sorted(p.name for p in self._local.iterdir() if p.is_dir() and not p.name.startswith("."))
        fs, root = self._remote()
        try:
            entries = fs.ls(root, detail=True)
        except FileNotFoundError:
            return []
        except PermissionError as exc:
            raise self.refused(exc, self.shown) from None
        names = (posixpath.basename(e["name"].rstrip("/")) for e in entries if e.get("type") == "directory")
        return sorted(n for n in names if not n.startswith("."))

    def files(self, category: str) -> list[InputFile]:
        """Every file of ``category`` that ingest reads or rejects, sorted by name; empty if none."""
        if self._local is not None:
            folder = self._local / category
            if not folder.is_dir():
                return []
            listed = {p.relative_to(folder).as_posix(): p for p in category_files(folder)}
            boundary = self._boundary or folder
            return [local_file(listed[n], n, boundary) for n in without_dataset_metadata(sorted(listed))]
        fs, root = self._remote()
        prefix = f"{root.rstrip('/')}/{category}"
        try:
            found: dict[str, dict[str, Any]] = fs.find(prefix, detail=True, withdirs=False)
        except FileNotFoundError:
            return []
        except PermissionError as exc:
            raise self.refused(exc, self.category_location(category)) from None
        listed = {}
        for path, info in found.items():
            name = path[len(prefix) :].strip("/")
            hidden = any(part.startswith(".") for part in name.split("/"))
            if name and not hidden and not path.endswith("/") and info.get("type") != "directory":
                listed[name] = info
        return [
            InputFile(f"{self.url}/{category}/{n}", n, int(listed[n].get("size") or 0), version_of(listed[n]))
            for n in without_dataset_metadata(sorted(listed))
        ]
