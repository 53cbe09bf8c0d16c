"""Give each concurrent scoring process its own accelerator.

A step that asks for ``auto`` or ``cuda`` takes the first free device from the visible
ones by holding an exclusive lock file for it (``flock``, released by the kernel even if
the process dies), and waits while all are taken. The Dagster pool ``gpu`` bounds how
many steps run; the locks make sure two of them never share one GPU by accident.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def visible_accelerators() -> list[str]:
    import torch

    return (
        [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )


def _try_lock(path: Path) -> int | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _lock_name(device: str) -> str:
    return device.replace(":", "-") + ".lock"


@contextmanager
def claim_device(
    requested: str,
    lock_dir: Path,
    candidates: Sequence[str] | None = None,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
) -> Iterator[str]:
    """Yield a device string held exclusively (for accelerators) until the block exits.

    ``cpu`` is never locked. ``cuda:N`` locks that device (waiting if another process
    holds it). ``auto`` and ``cuda`` take any free visible accelerator, or the CPU when
    there is none.
    """
    if requested == "cpu":
        yield "cpu"
        return
    pool = list(candidates) if candidates is not None else visible_accelerators()
    if requested not in ("auto", "cuda"):
        pool = [requested]
    elif not pool:
        if requested == "cuda":
            raise RuntimeError("device 'cuda' requested but no CUDA device is visible")
        yield "cpu"
        return
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for device in pool:
            fd = _try_lock(lock_dir / _lock_name(device))
            if fd is not None:
                try:
                    yield device
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                    os.close(fd)
                return
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"no free device among {pool} after {timeout_s}s")
        time.sleep(poll_s)
