"""MosaicML Streaming (MDS) shards, written by mosaicml-streaming's own ``MDSWriter``.

Columns: ``input_ids`` (an ndarray, uint16 when the vocabulary fits, else uint32),
``data_id`` and ``category``. LLM Foundry's text loader and ProLong's read ``input_ids``
as a sample's tokens; ``streaming.StreamingDataset(local=...)`` reads the folder.

Loading the library. ``streaming/__init__.py`` imports its vision datasets, which import
torchvision. PyPI's torchvision wheels for torch 2.13 are CUDA builds whose operators link
libtorch_cuda.so, so with the CPU torch this project installs they fail to load
("operator torchvision::nms does not exist"), and PyPI has no CPU build. The MDS writer
and reader need none of the vision part: where torchvision is not installed, the package
is set up as its ``__init__`` would set it up, minus ``streaming.vision`` (its other
modules import as usual); where torchvision is installed (a training machine),
``import streaming`` runs as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa

# streaming's default shard size: part of what the files are, so it is fixed here
MDS_SHARD_BYTES = 1 << 26
INSTALL_HINT = (
    "scripts/install.sh installs it, or: pip install --no-deps mosaicml-streaming==0.13.0 "
    "(its runtime needs are among this project's dependencies)"
)


class MissingLibraryError(ImportError):
    """A library an output format is written with is not installed."""


def streaming_package() -> ModuleType:
    """The ``streaming`` package (mosaicml-streaming), loaded as the module docstring says."""
    if "streaming" in sys.modules:
        return sys.modules["streaming"]
    spec = importlib.util.find_spec("streaming")
    if spec is None or spec.submodule_search_locations is None:
        raise MissingLibraryError(f"the MDS output needs mosaicml-streaming: {INSTALL_HINT}")
    if importlib.util.find_spec("torchvision") is not None:
        try:
            return importlib.import_module("streaming")
        except (ImportError, RuntimeError, OSError) as exc:  # a torchvision built for another torch
            raise MissingLibraryError(
                f"mosaicml-streaming could not be imported ({exc}): its package imports torchvision, which "
                "must be the build for this torch; uninstall torchvision or install the matching one"
            ) from exc
    package = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run
    sys.modules["streaming"] = package
    try:
        base = importlib.import_module("streaming.base")
        version = importlib.import_module("streaming._version")
    except BaseException:
        del sys.modules["streaming"]
        raise
    for name in base.__all__:
        setattr(package, name, getattr(base, name))
    package.__version__ = version.__version__
    return package


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id of the vocabulary fits in it, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


class MdsOutput:
    """Write rows (``input_ids``, ``data_id``, ``category``) as MDS shards into ``folder``."""

    def __init__(self, folder: Path, vocab_size: int):
        self.dtype = token_dtype(vocab_size)
        columns = {"input_ids": f"ndarray:{self.dtype.name}", "data_id": "str", "category": "str"}
        self._writer = streaming_package().MDSWriter(
            out=str(folder), columns=columns, compression=None, size_limit=MDS_SHARD_BYTES
        )
        self.folder = folder

    def write(self, batch: pa.RecordBatch) -> None:
        ids = batch.column("input_ids")
        offsets = ids.offsets.to_numpy()
        values = ids.flatten().to_numpy(zero_copy_only=False).astype(self.dtype)
        base = offsets[0]
        for i, (data_id, category) in enumerate(
            zip(batch.column("data_id").to_pylist(), batch.column("category").to_pylist())
        ):
            sample = values[offsets[i] - base : offsets[i + 1] - base]
            self._writer.write({"input_ids": sample, "data_id": data_id, "category": category})

    def close(self) -> list[Path]:
        self._writer.finish()
        return sorted(p for p in self.folder.iterdir() if p.is_file())
