"""Which statistics kernel a scorer runs on its device: the fused Triton kernel where it
works, otherwise the torch streaming path.

The Triton kernel is tried once, when the scorer is built: with the launch config of the
device (triton_configs.py) on a small random window of the model's shape, and its scores
are compared with the torch path's. If the table has no entry, or compiling, launching or
agreeing fails, the scorer logs one warning and uses the torch path on that device. The
kernel does not specialize on lengths, so this probe compiles the very binary that every
later window runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .statistics import long_range_statistics
from .triton_configs import device_capability, launch_config

logger = logging.getLogger("longattn_assets")

Statistics = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# Long enough for two row blocks and every range of the kernel's key loop.
_PROBE_LENGTH = 300
# Both paths accumulate the same rounded inputs in fp32; they differ by summation order only.
_PROBE_RTOL = 1e-3


@dataclass(frozen=True)
class KernelChoice:
    name: str  # "triton" or "torch"
    compute: Statistics
    description: str  # what runs, for asset metadata


def _probe(fused: Statistics, reference: Statistics, q: torch.Tensor, k: torch.Tensor) -> None:
    """Raise unless ``fused`` runs and agrees with ``reference`` on this window."""
    for name, got, want in zip(("ds", "du"), fused(q, k), reference(q, k), strict=True):
        got, want = got.double().cpu(), want.double().cpu()
        error = ((got - want).abs() / want.abs()).max().item()
        if not error <= _PROBE_RTOL:
            raise RuntimeError(f"{name} differs from the torch kernel's by {error:.1e} relative")


def _probe_window(device: torch.device, dtype: torch.dtype, heads: int, kv_heads: int, head_dim: int):
    gen = torch.Generator().manual_seed(0)
    # Scale 2 makes attention peaked enough for du to differ across heads.
    q = 2 * torch.randn(heads, _PROBE_LENGTH, head_dim, generator=gen)
    k = 2 * torch.randn(kv_heads, _PROBE_LENGTH, head_dim, generator=gen)
    return q.to(device, dtype), k.to(device, dtype)


def choose_statistics_kernel(
    requested: str,
    device: torch.device,
    dtype: torch.dtype,
    *,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
) -> KernelChoice:
    """``requested``: 'torch', 'triton', or 'auto' (Triton on CUDA when it is installed)."""
    reference = KernelChoice(
        "torch", functools.partial(long_range_statistics, block_size=block_size), "torch"
    )
    if requested == "torch" or (requested == "auto" and device.type != "cuda"):
        return reference
    try:
        from .triton_statistics import long_range_statistics_triton
    except ImportError:
        if requested == "triton":
            raise
        logger.info("Triton is not installed; using the torch statistics kernel")
        return reference
    capability = device_capability(device)
    where = f"sm_{capability}" if capability is not None else "Triton's interpreter"
    try:
        config = launch_config(capability, dtype, head_dim)
        fused = functools.partial(long_range_statistics_triton, **asdict(config))
        _probe(fused, reference.compute, *_probe_window(device, dtype, num_heads, num_kv_heads, head_dim))
    except Exception as exc:  # noqa: BLE001 - any failure to compile, launch or agree means: not here
        logger.warning(
            "the Triton statistics kernel does not work on %s (%s, %s): %s: %s; "
            "scoring with the torch kernel",
            device, where, dtype, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
        )
        return reference
    return KernelChoice("triton", fused, f"triton {config} on {where}")
