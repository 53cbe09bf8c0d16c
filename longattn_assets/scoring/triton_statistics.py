"""Fused Triton kernel for the long-range attention statistics of DESIGN.md 1.2.

One program handles BLOCK_M query rows of one head and makes a single pass over the
key blocks up to the diagonal, keeping per row, with online rescaling by the running
maximum (base 2, log2(e) folded into the scale):
    l = sum_c exp(s - mx),  a = sum_{c <= r-o} exp(s - mx),  b = sum_{c <= r-o} exp(2(s - mx)).
Row r then contributes mass a / l and squared mass b / l^2. Only Q and K are read; rows
r < o carry no long-range key and are never visited. Partial sums per program go to a
small buffer that torch reduces in float64.

The key loop is split into four ranges so that only the few blocks that straddle a mask
boundary pay for masks: fully long-range blocks, blocks crossing c = r - o, blocks that
only feed the normalizer, and blocks crossing the causal diagonal.
"""

from __future__ import annotations

import math
from dataclasses import astuple

import torch

from .triton_configs import LaunchConfig, device_capability, launch_config

try:
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - exercised only where triton is absent
    raise ImportError(
        "longattn_assets.scoring.triton_statistics needs Triton: "
        "pip install 'longattn_assets[gpu]' (or pip install triton); "
        "use longattn_assets.scoring.statistics for the torch path."
    ) from exc

_LOG2E = 1.4426950408889634
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@triton.jit
def _update(
    row_max, l_i, a_i, b_i, q, k_head, stride_kn, start_n, rows, L, o, qk_scale,
    HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
    MASKED: tl.constexpr, LONG_RANGE: tl.constexpr, UPCAST: tl.constexpr,
):
    cols = start_n + tl.arange(0, BLOCK_N)
    k_ptrs = k_head + cols[None, :] * stride_kn + tl.arange(0, HEAD_DIM)[:, None]
    if MASKED:
        kt = tl.load(k_ptrs, mask=cols[None, :] < L, other=0.0)
    else:
        kt = tl.load(k_ptrs)
    if UPCAST:
        kt = kt.to(tl.float32)
    qk = tl.dot(q, kt, input_precision=DOT_PRECISION)
    if MASKED:
        qk = tl.where(cols[None, :] <= rows[:, None], qk, float("-inf"))
    # qk_scale > 0, so scaling the block maximum equals the maximum of the scaled block.
    new_max = tl.maximum(row_max, tl.max(qk, 1) * qk_scale)
    alpha = tl.exp2(row_max - new_max)
    p = tl.exp2(qk * qk_scale - new_max[:, None])
    row_sum = tl.sum(p, 1)
    l_i = l_i * alpha + row_sum
    a_i = a_i * alpha
    b_i = b_i * (alpha * alpha)
    if LONG_RANGE:
        if MASKED:
            p = tl.where(cols[None, :] <= rows[:, None] - o, p, 0.0)
            row_sum = tl.sum(p, 1)
        a_i += row_sum
        b_i += tl.sum(p * p, 1)
    return new_max, l_i, a_i, b_i


# Lengths and the GQA group are runtime values, never specialized on (Triton would
# otherwise compile a variant per value class, e.g. L divisible by 16 or a group of 1):
# one binary per (architecture, dtype, head dim, launch config) serves every window,
# so compiling that binary ahead of time (triton_targets.py) checks every launch.
@triton.jit(do_not_specialize=["L", "o", "num_row_blocks", "GROUP"])
def _long_range_partials_kernel(
    Q, K, Out,
    stride_qh, stride_qm, stride_kh, stride_kn,
    L, o, qk_scale, num_row_blocks, GROUP,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):
    head = tl.program_id(0)
    # Axis 1 walks row blocks from the last (most keys) to the first, so the heaviest
    # programs of every head are dispatched first and the light ones fill the tail.
    block = num_row_blocks - 1 - tl.program_id(1)
    start_m = o + block * BLOCK_M
    rows = start_m + tl.arange(0, BLOCK_M)
    q_ptrs = Q + head * stride_qh + rows[:, None] * stride_qm + tl.arange(0, HEAD_DIM)[None, :]
    q = tl.load(q_ptrs, mask=rows[:, None] < L, other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
    k_head = K + (head // GROUP) * stride_kh

    row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    a_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    b_i = tl.zeros([BLOCK_M], dtype=tl.float32)

    last_row = tl.minimum(start_m + BLOCK_M, L) - 1
    # [0, end_full): every key is long-range for every row of the block (c <= start_m - o).
    end_full = ((start_m - o + 1) // BLOCK_N) * BLOCK_N
    # [end_full, end_long): blocks crossing the long-range boundary c = r - o.
    end_long = tl.cdiv(last_row - o + 1, BLOCK_N) * BLOCK_N
    # [end_long, end_plain): below the diagonal for every row, normalizer only.
    end_plain = tl.maximum(end_long, ((start_m + 1) // BLOCK_N) * BLOCK_N)
    for start_n in range(0, end_full, BLOCK_N):
        row_max, l_i, a_i, b_i = _update(
            row_max, l_i, a_i, b_i, q, k_head, stride_kn, start_n, rows, L, o, qk_scale,
            HEAD_DIM, BLOCK_N, DOT_PRECISION, False, True, UPCAST)
    for start_n in range(end_full, end_long, BLOCK_N):
        row_max, l_i, a_i, b_i = _update(
            row_max, l_i, a_i, b_i, q, k_head, stride_kn, start_n, rows, L, o, qk_scale,
            HEAD_DIM, BLOCK_N, DOT_PRECISION, True, True, UPCAST)
    for start_n in range(end_long, end_plain, BLOCK_N):
        row_max, l_i, a_i, b_i = _update(
            row_max, l_i, a_i, b_i, q, k_head, stride_kn, start_n, rows, L, o, qk_scale,
            HEAD_DIM, BLOCK_N, DOT_PRECISION, False, False, UPCAST)
    # The diagonal blocks; when o < BLOCK_N they can also hold long-range keys.
    for start_n in range(end_plain, last_row + 1, BLOCK_N):
        row_max, l_i, a_i, b_i = _update(
            row_max, l_i, a_i, b_i, q, k_head, stride_kn, start_n, rows, L, o, qk_scale,
            HEAD_DIM, BLOCK_N, DOT_PRECISION, True, True, UPCAST)

    valid = rows < L
    mass = tl.where(valid, a_i / l_i, 0.0)
    sq = tl.where(valid, b_i / (l_i * l_i), 0.0)
    out = Out + (head * num_row_blocks + block) * 2
    tl.store(out, tl.sum(mass, 0))
    tl.store(out + 1, tl.sum(sq, 0))


def _is_interpreted() -> bool:
    return type(_long_range_partials_kernel).__name__ == "InterpretedFunction"


def _check_inputs(q: torch.Tensor, k: torch.Tensor) -> None:
    if q.ndim != 3 or k.ndim != 3:
        raise ValueError(f"expected q [Hq, L, D] and k [Hkv, L, D], got {tuple(q.shape)}, {tuple(k.shape)}")
    if q.shape[1:] != k.shape[1:]:
        raise ValueError(f"q and k differ in length or head dim: {tuple(q.shape)} vs {tuple(k.shape)}")
    if q.shape[0] % k.shape[0]:
        raise ValueError(f"{q.shape[0]} query heads do not split over {k.shape[0]} kv heads")
    if q.dtype != k.dtype or q.dtype not in _DTYPES:
        raise ValueError(f"q and k must share one of {_DTYPES}, got {q.dtype}, {k.dtype}")
    if q.device != k.device:
        raise ValueError(f"q on {q.device} but k on {k.device}")
    _check_powers_of_two(head_dim=q.shape[2])
    if q.device.type != "cuda" and not _is_interpreted():
        raise RuntimeError(
            f"tensors on {q.device} need Triton's interpreter: set TRITON_INTERPRET=1 "
            "before triton is first imported"
        )


def _check_powers_of_two(**sizes: int) -> None:
    for name, size in sizes.items():
        if size < 16 or size & (size - 1):
            raise ValueError(f"{name} must be a power of two >= 16 (tl.dot), got {size}")


def _resolve_config(q: torch.Tensor, *given: int | None) -> LaunchConfig:
    """The given tiles, warps and stages; those not given from the table for q's device."""
    if None not in given:
        return LaunchConfig(*given)
    table = launch_config(device_capability(q.device), q.dtype, q.shape[2])
    return LaunchConfig(*(mine or theirs for mine, theirs in zip(given, astuple(table), strict=True)))


def _row_blocks(length: int, config: LaunchConfig) -> int:
    return triton.cdiv(3 * (length // 4), config.block_m)


def kernel_launch(
    q: torch.Tensor | torch.dtype,
    k: torch.Tensor | torch.dtype,
    out: torch.Tensor | torch.dtype,
    *,
    dtype: torch.dtype,
    heads: int,
    kv_heads: int,
    length: int,
    head_dim: int,
    config: LaunchConfig,
) -> tuple[tuple[int, int], tuple, dict]:
    """Grid, arguments and keywords of the kernel on contiguous q [heads, L, D], k [kv_heads, L, D].

    ``q``, ``k`` and ``out`` are the tensors, or just their dtypes for an ahead-of-time
    compile (``JITFunction.warmup`` takes a dtype in place of a tensor).
    """
    long_rows = 3 * (length // 4)
    row_blocks = _row_blocks(length, config)
    args = (
        q, k, out,
        length * head_dim, head_dim, length * head_dim, head_dim,
        length, length - long_rows, _LOG2E / math.sqrt(head_dim), row_blocks, heads // kv_heads,
    )
    meta = {
        "HEAD_DIM": head_dim,
        "BLOCK_M": config.block_m,
        "BLOCK_N": config.block_n,
        "DOT_PRECISION": "ieee" if dtype == torch.float32 else "tf32",
        # The interpreter keeps bf16 as raw uint16 and its tl.dot multiplies those
        # integers; bf16 -> fp32 is exact, so upcasting there gives the same products.
        "UPCAST": dtype == torch.bfloat16 and _is_interpreted(),
        "num_warps": config.num_warps,
        "num_stages": config.num_stages,
    }
    return (heads, row_blocks), args, meta


def long_range_statistics_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head (ds, du) of DESIGN.md 1.2 from RoPE'd q [Hq, L, D] and k [Hkv, L, D].

    Returns two float64 tensors of shape [Hq] on q's device. Accumulation is fp32
    whatever the input dtype (fp32, fp16, bf16); fp32 inputs use IEEE (not TF32) dots.
    Tiles, warps and stages not given come from the launch config table
    (triton_configs.py) for q's device, dtype and head dim.
    """
    _check_inputs(q, k)
    heads, length, head_dim = q.shape
    config = _resolve_config(q, block_m, block_n, num_warps, num_stages)
    _check_powers_of_two(block_m=config.block_m, block_n=config.block_n)
    long_rows = 3 * (length // 4)
    n = float(length) * float(length)
    s1 = torch.zeros(heads, dtype=torch.float64, device=q.device)
    s2 = torch.zeros(heads, dtype=torch.float64, device=q.device)
    if long_rows:
        q, k = q.contiguous(), k.contiguous()
        partials = torch.empty(heads, _row_blocks(length, config), 2, dtype=torch.float32, device=q.device)
        grid, args, meta = kernel_launch(
            q, k, partials, dtype=q.dtype, heads=heads, kv_heads=k.shape[0],
            length=length, head_dim=head_dim, config=config,
        )
        _long_range_partials_kernel[grid](*args, **meta)
        s1, s2 = partials.double().sum(dim=1).unbind(dim=1)
    ds = s1 / length
    # Variance of the L*L entries of P*M (zeros included), unbiased, from sum and sum of squares.
    du = (s2 - s1 * s1 / n) / (n - 1.0)
    return ds, du
