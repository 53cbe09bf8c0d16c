"""One place that makes the CPU scores a function of their inputs only (DESIGN.md, reproducibility).

Three things decide the bits of a floating-point result besides its inputs: the order of a
reduction, the implementation of a transcendental function, and (for a library call) which
kernel the library picks for this CPU, shape, alignment and thread count. The scorer keeps
each of them fixed (docs/reliability.md, "Reproducible scores", gives the argument):

- matrix products are exact: operands are scaled to integers (a power of two per row) and
  multiplied in float64 with every partial sum below 2**53, so any BLAS kernel, blocking,
  FMA use or thread split gives the same exact sums (``scoring.exact``);
- sums the scorer needs in a fixed order are pairwise trees of elementwise IEEE additions
  (:func:`fixed_order_sum`);
- ATen's vectorized kernels (exp2, row sums) run at one CPU capability, AVX2, on every x86
  CPU, and single-threaded inside each scoring task, so their lane order and their
  vector/scalar tails depend on the tensor shapes alone (:func:`pin_cpu_capability`,
  :func:`check_cpu_numerics`, :class:`SingleThreadedWorkers`, :func:`single_threaded`).

``pin_cpu_capability`` runs when the package is imported, before anything starts torch:
ATen reads ``ATEN_CPU_CAPABILITY`` once, at its first vectorized kernel.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

PINNED_CAPABILITY = "avx2"


class NumericsError(RuntimeError):
    """The process computes with another CPU capability than the pinned one."""


def pin_cpu_capability() -> None:
    """Ask ATen for its AVX2 kernels on every x86 CPU (AVX-512 ones would order lanes differently)."""
    os.environ.setdefault("ATEN_CPU_CAPABILITY", PINNED_CAPABILITY)


def check_cpu_numerics() -> None:
    """Refuse to score on an x86 CPU path whose vectorized kernels are not the pinned AVX2 ones.

    Other architectures (ARM) are outside the cross-CPU promise and are not checked.
    """
    import torch

    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return
    active = torch.backends.cpu.get_cpu_capability()
    if active != PINNED_CAPABILITY.upper():
        raise NumericsError(
            f"torch computes with its {active} kernels, not {PINNED_CAPABILITY.upper()}: CPU scores "
            f"would not be bit-identical across machines. Set ATEN_CPU_CAPABILITY={PINNED_CAPABILITY} "
            "before torch starts (importing longattn_assets first does it), on an x86 CPU with AVX2."
        )


class SingleThreadedWorkers:
    """Threads that each run torch's CPU ops on one thread: how the scorer uses several cores.

    ``torch.set_num_threads`` is per thread in ATen's OpenMP backend (it sets the calling
    thread's OpenMP and MKL thread counts, and the count a thread takes when it first runs
    an op). Each worker sets itself to one thread when it starts, so a kernel's vector/scalar
    split and lane order follow from its shapes alone, whatever the caller's thread count
    before or after; the caller's own count is given back once every worker has started.
    Work is submitted as whole tasks whose results do not depend on the worker that runs them.
    """

    def __init__(self, workers: int) -> None:
        import torch

        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.pid = os.getpid()  # a forked child has none of these threads
        caller = torch.get_num_threads()
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="longattn-worker", initializer=_one_torch_thread
        )
        started = threading.Barrier(workers)
        list(self._executor.map(lambda _: started.wait(), range(workers)))
        torch.set_num_threads(caller)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._executor.submit(fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SingleThreadedWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
    if torch.get_num_threads() != 1:
        raise NumericsError("a scoring worker could not set torch to one thread")


_THREADS_LOCK = threading.Lock()


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch's CPU ops on one thread in the calling thread for the block: for steps run
    outside the workers (the lower layers' pointwise functions, when a caller projects a
    window itself), whose vector/scalar split must depend on the shapes alone."""
    import torch

    with _THREADS_LOCK:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity, as Slurm or taskset set it)."""
    return len(os.sched_getaffinity(0))
