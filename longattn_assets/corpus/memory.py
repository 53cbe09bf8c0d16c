"""Give freed memory back to the system, so a worker's resident size follows what it holds.

Arrow buffers are allocated with the C allocator (not mimalloc, which keeps freed pages for
reuse) and glibc is asked to return free heap pages after each large release: a worker
that has freed a spilled buffer or a written row group shrinks to what it still holds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import pyarrow as pa


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def use_system_allocator() -> None:
    """Allocate this process's Arrow buffers with malloc from now on."""
    pa.set_memory_pool(pa.system_memory_pool())


def release_memory() -> None:
    """Return free heap pages to the system (glibc ``malloc_trim``; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
