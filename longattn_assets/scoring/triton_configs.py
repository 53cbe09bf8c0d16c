"""Launch configurations of the fused statistics kernel, per GPU architecture.

One entry per (compute capability, dtype, head dim): tile sizes, warps and pipeline
stages. ``tests/triton/test_compile_targets.py`` compiles every entry for its
architecture (no GPU needed) and checks its shared memory, registers and spills against
that architecture's limits, so an entry here is known to launch. The scorer looks up the
entry of the device it runs on. Kept free of Triton so that it imports everywhere.

The entries are chosen to fit, not tuned by timing (no GPU was at hand): 128 x 64 tiles
in three stages for bf16 and fp16; for fp32, whose dots are FMAs on registers, 64 x 32
tiles in two stages (128 x 64 in three needs 128 KB of shared memory at head dim 128,
more than the 99 KB of sm_86 and sm_89, and spills). ``benchmarks/gpu_check.py`` times
the entry against a few alternatives on a real GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LaunchConfig:
    block_m: int
    block_n: int
    num_warps: int
    num_stages: int

    def __str__(self) -> str:
        return f"{self.block_m}x{self.block_n} w{self.num_warps} s{self.num_stages}"


@dataclass(frozen=True)
class Architecture:
    capability: int  # major * 10 + minor, as Triton's GPUTarget takes it
    gpus: str
    # The opt-in maximum of static plus dynamic shared memory of one thread block
    # (cudaDevAttrMaxSharedMemoryPerBlockOptin): the SM's carve-out minus the 1 KB CUDA
    # reserves per block. Sources: NVIDIA's Ampere, Ada, Hopper and Blackwell tuning
    # guides, "Unified Shared Memory/L1/Texture Cache"; docs/gpu.md lists them.
    shared_memory_per_block: int
    registers_per_block: int = 65536
    registers_per_thread: int = 255

    @property
    def name(self) -> str:
        return f"sm_{self.capability}"


KB = 1024
ARCHITECTURES = {
    a.capability: a
    for a in (
        Architecture(80, "A100, A30", 163 * KB),
        Architecture(86, "A10, A40, RTX 3090", 99 * KB),
        Architecture(89, "L4, L40S, RTX 4090", 99 * KB),
        Architecture(90, "H100, H200", 227 * KB),
        Architecture(100, "B200, GB200", 227 * KB),
    )
}
# The architecture whose entries a device the table does not know gets: its 99 KB is the
# smallest per-block shared memory in the table. If they still fail there, the scorer
# falls back to the torch kernel.
PORTABLE_CAPABILITY = 86

DTYPES = (torch.bfloat16, torch.float16, torch.float32)
HEAD_DIMS = (64, 128)

# bf16/fp16 dots run on tensor cores; fp32 dots are IEEE FMAs whose operands sit in
# registers, so fp32 takes smaller tiles and more warps to stay clear of spills.
_HALF_64 = LaunchConfig(block_m=128, block_n=64, num_warps=4, num_stages=3)
_HALF_128 = LaunchConfig(block_m=128, block_n=64, num_warps=8, num_stages=3)
_FP32 = LaunchConfig(block_m=64, block_n=32, num_warps=8, num_stages=2)


def _entries(
    capability: int, fp32_head_dims: tuple[int, ...] = HEAD_DIMS, half_64: LaunchConfig = _HALF_64
) -> dict:
    entries = {}
    for head_dim, half in ((64, half_64), (128, _HALF_128)):
        entries[(capability, torch.bfloat16, head_dim)] = half
        entries[(capability, torch.float16, head_dim)] = half
        if head_dim in fp32_head_dims:
            entries[(capability, torch.float32, head_dim)] = _FP32
    return entries


LAUNCH_CONFIGS: dict[tuple[int, torch.dtype, int], LaunchConfig] = {
    **_entries(80),
    **_entries(86),
    **_entries(89),
    # fp32 at head dim 128 spills on sm_90 and sm_100 in every tiling tried (64x32, 32x32,
    # 64x16; 4 or 8 warps; 1 or 2 stages: 255 registers and 150-380 bytes of local
    # memory per thread, see docs/gpu.md), so the torch kernel scores it there.
    **_entries(90, fp32_head_dims=(64,)),
    # bf16/fp16 at head dim 64 in 4 warps spills 8 bytes per thread on sm_100; 8 warps do not.
    **_entries(100, fp32_head_dims=(64,), half_64=_HALF_128),
}
# Where the table has no entry although the architecture, dtype and head dim are known.
TORCH_ONLY = {
    (90, torch.float32, 128): "fp32 at head dim 128 spills registers on sm_90",
    (100, torch.float32, 128): "fp32 at head dim 128 spills registers on sm_100",
}


def launch_config(capability: int | None, dtype: torch.dtype, head_dim: int) -> LaunchConfig:
    """The table's entry; ``capability`` None (Triton's CPU interpreter) or unknown: sm_86's."""
    if capability not in ARCHITECTURES:
        capability = PORTABLE_CAPABILITY
    key = (capability, dtype, head_dim)
    if key in TORCH_ONLY:
        raise ValueError(f"no validated launch config: {TORCH_ONLY[key]}")
    try:
        return LAUNCH_CONFIGS[key]
    except KeyError:
        raise ValueError(
            f"no validated launch config for {dtype} at head dim {head_dim} "
            f"(the table covers head dims {HEAD_DIMS} in {', '.join(map(str, DTYPES))})"
        ) from None


def device_capability(device: torch.device) -> int | None:
    """Compute capability of a CUDA device as one number (9.0 -> 90); None elsewhere."""
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return major * 10 + minor
