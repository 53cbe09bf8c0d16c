"""Which statistics kernel a scorer runs on its device: the fused Triton kernel where it
works, otherwise the torch streaming path.

The Triton kernel is tried once, when the scorer is built: with the launch config of the
device (triton_configs.py) on a small random window of the model's shape, and its scores
are compared with the torch path's. If the table has no entry, or compiling, launching or
agreeing fails, the scorer logs one warning and uses the torch path on that device. The
kernel does not specialize on lengths, so this probe compiles the very binary that every
later window runs.

Families: the kernel takes the head dims of its launch table (64, 128) and scales q k^T by
1/sqrt(its head dim). A smaller head (Phi-3's 96) is padded with zeros, which leaves every
dot product as it is, and the model's softmax scale (1/sqrt(head_dim), or Gemma's
``query_pre_attn_scalar``) goes into q. Attention logit soft-capping (Gemma 2) is not in
the kernel, so such a model is scored with the torch kernel, with one warning.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from .statistics import long_range_statistics
from .triton_configs import HEAD_DIMS, device_capability, launch_config

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


def _kernel_head_dim(head_dim: int) -> int:
    """The launch table's smallest head dim that holds ``head_dim`` (itself if none does)."""
    return min((d for d in HEAD_DIMS if d >= head_dim), default=head_dim)


def _fitted(fused: Statistics, head_dim: int, kernel_dim: int, softmax_scale: float | None) -> Statistics:
    """``fused`` on q, k of ``head_dim`` zero-padded to ``kernel_dim``, at the model's softmax scale."""
    if softmax_scale is None:
        factor = math.sqrt(kernel_dim / head_dim)
    else:
        factor = softmax_scale * math.sqrt(kernel_dim)
    pad = kernel_dim - head_dim
    if pad == 0 and factor == 1.0:
        return fused

    def compute(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if pad:
            q, k = torch.nn.functional.pad(q, (0, pad)), torch.nn.functional.pad(k, (0, pad))
        return fused(q * factor if factor != 1.0 else q, k)

    return compute


def choose_statistics_kernel(
    requested: str,
    device: torch.device,
    dtype: torch.dtype,
    *,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
    softmax_scale: float | None = None,
    softcap: float | None = None,
) -> KernelChoice:
    """``requested``: 'torch', 'triton', or 'auto' (Triton on CUDA when it is installed)."""
    reference = KernelChoice(
        "torch",
        functools.partial(
            long_range_statistics, block_size=block_size, softmax_scale=softmax_scale, softcap=softcap
        ),
        "torch",
    )
    if requested == "torch" or (requested == "auto" and device.type != "cuda"):
        return reference
    if softcap is not None:
        logger.warning(
            "the Triton statistics kernel has no attention logit soft-capping (this model caps "
            "at %g); scoring with the torch kernel", softcap,
        )  # fmt: skip
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
        kernel_dim = _kernel_head_dim(head_dim)
        config = launch_config(capability, dtype, kernel_dim)
        fused = _fitted(
            functools.partial(long_range_statistics_triton, **asdict(config)), head_dim, kernel_dim, softmax_scale
        )
        _probe(fused, reference.compute, *_probe_window(device, dtype, num_heads, num_kv_heads, head_dim))
    except Exception as exc:  # noqa: BLE001 - any failure to compile, launch or agree means: not here
        logger.warning(
            "the Triton statistics kernel does not work on %s (%s, %s): %s: %s; "
            "scoring with the torch kernel",
            device, where, dtype, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "",
        )
        return reference
    padded = f" (head dim {head_dim} padded to {kernel_dim})" if kernel_dim != head_dim else ""
    return KernelChoice("triton", fused, f"triton {config} on {where}{padded}")
