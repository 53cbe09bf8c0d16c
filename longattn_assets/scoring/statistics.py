"""Long-range attention statistics of one window without materializing the L x L matrix.

For each head, P = softmax(q k^T / sqrt(D) + causal mask) and the long-range mask keeps
the entries M[r, c] = 1 iff r >= o and c <= r - o, with m = 3 * (L // 4) and o = L - m.
ds = sum(P * M) / L and du is the unbiased variance of all L * L entries of P * M
(zeros included), so both follow from two sums over the masked entries: of P and of P^2.

Only query rows r >= o hold masked entries, so the other rows are never computed. For the
rest, keys are visited in blocks with an online softmax (running max, rescaled sums): per
row the normalizer over all causal keys, and over the masked prefix c <= r - o the sums
of exp and exp^2. Row blocks start at o, so the masked prefix ends inside exactly one key
block per row block. Exponentials are taken base 2 with log2(e) folded into q because
exp2 is several times faster than exp on CPUs. All query heads that share a kv head are
stacked into one matmul; working memory is O(heads * block^2) besides q and k.
"""

from __future__ import annotations

import math

import torch


def _long_range_offset(length: int) -> int:
    return length - 3 * (length // 4)


def _variance(total: torch.Tensor, total_sq: torch.Tensor, length: int) -> torch.Tensor:
    n = length * length
    if n < 2:
        return torch.zeros_like(total)
    return (total_sq - total * total / n) / (n - 1)


def _check_shapes(q: torch.Tensor, k: torch.Tensor) -> tuple[int, int, int, int]:
    if q.dim() != 3 or k.dim() != 3 or q.shape[1:] != k.shape[1:]:
        raise ValueError(
            f"expected q [Hq, L, D] and k [Hkv, L, D], got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    hq, length, dim = q.shape
    hkv = k.shape[0]
    if hq % hkv:
        raise ValueError(f"{hq} query heads do not group over {hkv} kv heads")
    return hq, hkv, length, dim


@torch.inference_mode()
def long_range_statistics(
    q: torch.Tensor, k: torch.Tensor, *, block_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ds_heads, du_heads), float64 tensors of shape [Hq], computed in fp32 blocks."""
    hq, hkv, length, dim = _check_shapes(q, k)
    group = hq // hkv
    offset = _long_range_offset(length)
    total = torch.zeros(hkv, group, dtype=torch.float64, device=q.device)
    total_sq = torch.zeros_like(total)
    if offset >= length:  # L < 4: no long-range entries at all
        return total.reshape(hq), _variance(total, total_sq, length).reshape(hq)

    scale = math.log2(math.e) / math.sqrt(dim)
    rows_q = (q.float() * scale).reshape(hkv, group, length, dim)[:, :, offset:]
    keys = k.float()
    buffer = torch.empty(
        hkv * group * block_size * block_size, dtype=torch.float32, device=q.device
    )
    key_index = torch.arange(block_size, device=q.device)

    for r0 in range(offset, length, block_size):
        b = min(block_size, length - r0)
        q_block = rows_q[:, :, r0 - offset : r0 - offset + b].reshape(hkv, group * b, dim)
        row_index = torch.arange(r0, r0 + b, device=q.device)
        run_max = torch.full((hkv, group * b), -math.inf, device=q.device)
        norm = torch.zeros_like(run_max)
        mass = torch.zeros_like(run_max)
        mass_sq = torch.zeros_like(run_max)
        for c0 in range(0, r0 + b, block_size):
            kb = min(block_size, r0 + b - c0)
            scores = buffer[: hkv * group * b * kb].view(hkv, group * b, kb)
            torch.bmm(q_block, keys[:, c0 : c0 + kb].transpose(1, 2), out=scores)
            cols = key_index[:kb] + c0
            if c0 + kb - 1 > r0:  # the block crosses the causal diagonal
                causal = cols[None, :] > row_index[:, None]
                scores.view(hkv, group, b, kb).masked_fill_(causal, -math.inf)
            new_max = torch.maximum(run_max, scores.amax(-1))
            alpha = torch.exp2(run_max - new_max)
            run_max = new_max
            scores.sub_(new_max[..., None]).exp2_()
            block_sum = scores.sum(-1)
            norm.mul_(alpha).add_(block_sum)
            mass.mul_(alpha)
            mass_sq.mul_(alpha * alpha)
            if c0 > r0 + b - 1 - offset:  # no key of this block is long-range for any row
                continue
            if c0 + kb - 1 > r0 - offset:  # partly long-range: keep c <= r - o
                far = cols[None, :] <= (row_index - offset)[:, None]
                scores.view(hkv, group, b, kb).mul_(far)
                block_sum = scores.sum(-1)
            mass.add_(block_sum)
            mass_sq.add_(torch.linalg.vector_norm(scores, dim=-1).square_())
        norm = norm.double()
        total += (mass.double() / norm).view(hkv, group, b).sum(-1)
        total_sq += (mass_sq.double() / (norm * norm)).view(hkv, group, b).sum(-1)

    ds = (total / length).reshape(hq)
    return ds, _variance(total, total_sq, length).reshape(hq)


def long_range_mask(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The L x L 0/1 long-range mask of the reference code (bool)."""
    offset = _long_range_offset(length)
    r = torch.arange(length, device=device)[:, None]
    c = torch.arange(length, device=device)[None, :]
    return (r >= offset) & (c <= r - offset)


@torch.inference_mode()
def materialized_statistics(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The straightforward O(L^2)-memory reference, one head at a time (tests and benchmarks)."""
    hq, hkv, length, dim = _check_shapes(q, k)
    group = hq // hkv
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    mask = long_range_mask(length, q.device)
    ds, du = [], []
    for h in range(hq):
        scores = (q[h].float() @ k[h // group].float().T) / math.sqrt(dim)
        probs = torch.softmax(scores.masked_fill(~causal, -math.inf), dim=-1)
        masked = (probs * mask).double()
        ds.append(masked.sum() / length)
        du.append(masked.var() if masked.numel() > 1 else masked.new_zeros(()))
    return torch.stack(ds), torch.stack(du)
