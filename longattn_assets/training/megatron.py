"""Megatron-LM's indexed dataset (``<prefix>.bin`` and ``<prefix>.idx``), one document per window.

Written to the format megatron-core reads (``megatron/core/datasets/indexed_dataset.py``,
``_IndexWriter`` and ``IndexedDatasetBuilder``), byte for byte what its builder writes
for the same sequences; the tests compare with the builder and read back with
``IndexedDataset``. The library itself is not needed to write it: importing it loads all
of megatron.core (seconds, and warnings about Transformer Engine and Apex).

``.bin``: every token of every window, in order, in the index's dtype.
``.idx``: ``MMIDIDX\\x00\\x00``, version 1 (<Q), the dtype code (<B), the sequence count and
the document count (<Q each), then int32 sequence lengths, int64 byte offsets of the
sequences and int64 document boundaries (0, 1, ..., n: each window is a document).
The lengths are kept in a file beside the ``.bin`` until the index is written, so memory
does not grow with the window count.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# megatron.core.datasets.indexed_dataset.DType: it has no uint32
DTYPE_CODES = {np.dtype(np.uint16): 8, np.dtype(np.int32): 4}
_CHUNK = 1 << 20


def megatron_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits, else int32 (what Megatron's own preprocessing picks)."""
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.int32)


class MegatronOutput:
    """Write rows' ``input_ids`` as documents of ``<prefix>.bin``/``.idx``."""

    def __init__(self, prefix: Path, vocab_size: int):
        self.dtype = megatron_dtype(vocab_size)
        self.bin_path = prefix.with_name(prefix.name + ".bin")
        self.idx_path = prefix.with_name(prefix.name + ".idx")
        self._lengths_path = prefix.with_name(prefix.name + ".lengths")
        self._bin = open(self.bin_path, "wb")
        self._lengths = open(self._lengths_path, "wb")
        self.count = 0

    def write(self, batch: pa.RecordBatch) -> None:
        ids = batch.column("input_ids")
        self._bin.write(ids.flatten().to_numpy(zero_copy_only=False).astype(self.dtype).tobytes())
        self._lengths.write(np.diff(ids.offsets.to_numpy()).astype(np.int32).tobytes())
        self.count += len(ids)

    def close(self) -> list[Path]:
        self._bin.close()
        self._lengths.close()
        itemsize = np.int64(self.dtype.itemsize)
        with open(self.idx_path, "wb") as idx, open(self._lengths_path, "rb") as lengths:
            idx.write(INDEX_HEADER)
            idx.write(struct.pack("<Q", INDEX_VERSION))
            idx.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            idx.write(struct.pack("<Q", self.count))
            idx.write(struct.pack("<Q", self.count + 1))
            while chunk := lengths.read(4 * _CHUNK):
                idx.write(chunk)
            lengths.seek(0)
            pointer = np.int64(0)
            while chunk := lengths.read(4 * _CHUNK):
                sizes = np.frombuffer(chunk, dtype=np.int32).astype(np.int64) * itemsize
                ends = pointer + np.cumsum(sizes)
                idx.write(np.concatenate(([pointer], ends[:-1])).astype(np.int64).tobytes())
                pointer = ends[-1]
            for start in range(0, self.count + 1, _CHUNK):
                idx.write(np.arange(start, min(start + _CHUNK, self.count + 1), dtype=np.int64).tobytes())
        self._lengths_path.unlink()
        return [self.bin_path, self.idx_path]
