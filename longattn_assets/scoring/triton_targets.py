"""Compile the fused statistics kernel for named GPU architectures on a machine without one.

Every entry of the launch config table (triton_configs.py) is compiled to a cubin for its
architecture through the kernel's own launch path: ``kernel_launch`` builds the same
arguments and keywords as a real launch, and ``JITFunction.warmup`` specializes and
compiles them exactly as a launch would, without running anything. Triton asks its
driver only for the current target, device and stream on that path, so a stand-in driver
that names the target replaces the CUDA driver (which needs libcuda and a GPU).

Each cubin's registers, spills (local memory) and static shared memory are read with the
``cuobjdump`` that ships in the Triton wheel; the dynamic shared memory and tensor memory
come from Triton's metadata. An entry fails when it exceeds its architecture's per-block
limits or spills.

    python -m longattn_assets.scoring.triton_targets [--workers N] [--json out.json]

prints the table and exits 1 when an entry fails. Needs Triton (the ``gpu`` extra) and
must run without TRITON_INTERPRET, which replaces compilation by interpretation.
Compiled kernels are kept in Triton's cache (TRITON_CACHE_DIR, default ~/.triton/cache),
so a second run only reads them back.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch

from .triton_configs import ARCHITECTURES, KB, LAUNCH_CONFIGS, LaunchConfig

# One Llama-3.1-8B window of 32,768 tokens after BOS. Lengths and the head group are not
# specialized on, so any shape compiles to the same binary; these only fill the arguments.
_HEADS, _KV_HEADS, _LENGTH = 32, 8, 32769
_TENSOR_MEMORY_COLUMNS = 512  # sm_100: Triton's own launch check
_RESOURCE_USAGE = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


@dataclass(frozen=True)
class KernelResources:
    """What one compiled entry needs per thread block, against its architecture's limits."""

    capability: int
    dtype: str
    head_dim: int
    config: LaunchConfig
    registers: int  # per thread
    local_bytes: int  # per thread: register spills (and stack arrays, which this kernel has none of)
    static_shared_bytes: int
    dynamic_shared_bytes: int
    tensor_memory_columns: int
    compile_s: float

    @property
    def threads(self) -> int:
        return self.config.num_warps * 32

    @property
    def shared_bytes(self) -> int:
        return self.static_shared_bytes + self.dynamic_shared_bytes

    def problems(self) -> list[str]:
        arch = ARCHITECTURES[self.capability]
        found = []
        if self.shared_bytes > arch.shared_memory_per_block:
            found.append(
                f"{self.shared_bytes / KB:.0f} KB shared memory > {arch.name}'s "
                f"{arch.shared_memory_per_block / KB:.0f} KB per block"
            )
        if self.local_bytes:
            found.append(f"spills {self.local_bytes} bytes per thread to local memory")
        if self.registers > arch.registers_per_thread:
            found.append(f"{self.registers} registers per thread > {arch.registers_per_thread}")
        if self.registers * self.threads > arch.registers_per_block:
            found.append(
                f"{self.registers} registers x {self.threads} threads > "
                f"{arch.registers_per_block} per block"
            )
        if self.tensor_memory_columns > _TENSOR_MEMORY_COLUMNS:
            found.append(f"{self.tensor_memory_columns} tensor memory columns > {_TENSOR_MEMORY_COLUMNS}")
        return found

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> KernelResources:
        return cls(**{**data, "config": LaunchConfig(**data["config"])})


class _TargetDriver:
    """The part of a Triton driver that compiling through ``JITFunction.warmup`` asks for."""

    def __init__(self, target) -> None:
        self.target = target

    def get_current_target(self):
        return self.target

    def get_current_device(self) -> str:
        # The JIT keeps one binder (with its target) and one kernel cache per device key.
        return f"{self.target.backend}:{self.target.arch}"

    def get_current_stream(self, device: str) -> None:
        return None


@contextmanager
def _compiling_for(capability: int) -> Iterator[None]:
    from triton.backends.compiler import GPUTarget
    from triton.runtime.driver import driver

    # DriverConfig has no getter that would not create the default (CUDA) driver.
    previous = driver._active
    driver.set_active(_TargetDriver(GPUTarget("cuda", capability, 32)))
    try:
        yield
    finally:
        driver._active = previous


def _cubin_usage(cubin: bytes) -> tuple[int, int, int, int]:
    """(registers, stack, static shared, local) bytes of the cubin's one kernel."""
    from triton import knobs

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        report = subprocess.run(
            [knobs.nvidia.cuobjdump.path, "--dump-resource-usage", path],
            check=True, capture_output=True, text=True,
        ).stdout
    usage = _RESOURCE_USAGE.search(report)
    if usage is None:
        raise RuntimeError(f"no resource usage in cuobjdump's report:\n{report}")
    registers, stack, shared, local = map(int, usage.groups())
    return registers, stack, shared, local


def compile_entry(capability: int, dtype_name: str, head_dim: int, config: LaunchConfig) -> KernelResources:
    """Compile one table entry for its architecture and read what it needs."""
    from .triton_statistics import _long_range_partials_kernel, kernel_launch

    if type(_long_range_partials_kernel).__name__ != "JITFunction":
        raise RuntimeError("TRITON_INTERPRET is set: the kernel is interpreted, not compiled")
    dtype = getattr(torch, dtype_name)
    start = time.perf_counter()
    grid, args, meta = kernel_launch(
        dtype, dtype, torch.float32, dtype=dtype, heads=_HEADS, kv_heads=_KV_HEADS,
        length=_LENGTH, head_dim=head_dim, config=config,
    )
    with _compiling_for(capability):
        kernel = _long_range_partials_kernel.warmup(*args, grid=grid, **meta)
    registers, stack, static_shared, local = _cubin_usage(kernel.asm["cubin"])
    return KernelResources(
        capability=capability,
        dtype=dtype_name,
        head_dim=head_dim,
        config=config,
        registers=registers,
        local_bytes=local + stack,
        static_shared_bytes=static_shared,
        dynamic_shared_bytes=kernel.metadata.shared,
        tensor_memory_columns=getattr(kernel.metadata, "tmem_size", None) or 0,
        compile_s=time.perf_counter() - start,
    )


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def compile_table(workers: int | None = None) -> list[KernelResources]:
    """Every entry of LAUNCH_CONFIGS, compiled in ``workers`` processes (default: one per CPU)."""
    jobs = [(cap, _dtype_name(dtype), head_dim, config) for (cap, dtype, head_dim), config in LAUNCH_CONFIGS.items()]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return [compile_entry(*job) for job in jobs]
    # spawn: the workers start clean instead of inheriting this process's thread pools.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(compile_entry, *zip(*jobs, strict=True)))


def format_table(results: Sequence[KernelResources]) -> str:
    lines = [
        "| arch | GPUs | dtype | head dim | config | registers/thread | spill bytes "
        "| shared KB (limit) | compile s | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        arch = ARCHITECTURES[r.capability]
        result = "; ".join(r.problems()) or "fits"
        lines.append(
            f"| {arch.name} | {arch.gpus} | {r.dtype} | {r.head_dim} | {r.config} | {r.registers} "
            f"| {r.local_bytes} | {r.shared_bytes / KB:.0f} ({arch.shared_memory_per_block / KB:.0f}) "
            f"| {r.compile_s:.1f} | {result} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="compile processes (default: CPUs)")
    parser.add_argument("--json", help="also write the resources of every entry to this file")
    args = parser.parse_args(argv)
    try:
        import triton
    except ModuleNotFoundError:
        print(
            "triton_targets compiles the Triton kernel and needs Triton, which the plain install "
            "leaves out: .venv/bin/pip install 'triton>=3.0' (scripts/install.sh --dev installs it)",
            file=sys.stderr,
        )
        return 2

    start = time.perf_counter()
    results = compile_table(args.workers)
    print(f"triton {triton.__version__}: {len(results)} launch configs compiled "
          f"in {time.perf_counter() - start:.1f} s\n")
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([r.to_json() for r in results], f, indent=1)
    return 1 if any(r.problems() for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
