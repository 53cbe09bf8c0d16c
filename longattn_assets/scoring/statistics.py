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

The scores q k^T are exact float64 products of integer-scaled q and k rows
(``exact.exact_matmul``) rounded once to float32, so no BLAS kernel choice reaches them.

Families other than Llama's change two things (model/families.py): the softmax scale
(Gemma's ``query_pre_attn_scalar``) and attention logit soft-capping (Gemma 2), which maps
each score s to cap * tanh(s / cap) before the causal mask, as transformers' eager path does.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch

from ..numerics import single_threaded
from .exact import IntegerRows, exact_matmul, integer_rows, operand_bits


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


def _row_block_sums(
    q_rows: IntegerRows,
    keys: IntegerRows,
    r0: int,
    b: int,
    length: int,
    offset: int,
    block_size: int,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over query rows [r0, r0 + b) of one kv head's group: (mass / norm, mass_sq / norm^2).

    q_rows holds the group's rows >= offset, [group, L - offset, D]; keys [L, D]; scores are
    in base-2 units, so ``softcap`` (in natural units) is applied as log2(e) * softcap.
    """
    group = q_rows.values.shape[0]
    device = q_rows.values.device
    rows = slice(r0 - offset, r0 - offset + b)
    q_block = IntegerRows(
        q_rows.values[:, rows].reshape(group * b, -1), q_rows.scale[:, rows].reshape(group * b, 1)
    )
    row_index = torch.arange(r0, r0 + b, device=device)
    key_index = torch.arange(block_size, device=device)
    run_max = torch.full((group, b), -math.inf, device=device)
    norm = torch.zeros_like(run_max)
    mass = torch.zeros_like(run_max)
    mass_sq = torch.zeros_like(run_max)
    for c0 in range(0, r0 + b, block_size):
        kb = min(block_size, r0 + b - c0)
        key_block = IntegerRows(keys.values[c0 : c0 + kb], keys.scale[c0 : c0 + kb])
        scores = exact_matmul(q_block, key_block).float().view(group, b, kb)
        if softcap is not None:
            cap = softcap * math.log2(math.e)
            scores.div_(cap).tanh_().mul_(cap)
        cols = key_index[:kb] + c0
        if c0 + kb - 1 > r0:  # the block crosses the causal diagonal
            scores.masked_fill_(cols[None, :] > row_index[:, None], -math.inf)
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
            scores.mul_(cols[None, :] <= (row_index - offset)[:, None])
            block_sum = scores.sum(-1)
        mass.add_(block_sum)
        mass_sq.add_(torch.linalg.vector_norm(scores, dim=-1).square_())
    norm = norm.double()
    return (mass.double() / norm).sum(-1), (mass_sq.double() / (norm * norm)).sum(-1)


@torch.inference_mode()
def long_range_statistics(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    block_size: int = 512,
    softmax_scale: float | None = None,
    softcap: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ds_heads, du_heads), float64 tensors of shape [Hq], computed in fp32 blocks.

    ``softmax_scale`` multiplies q k^T (default 1 / sqrt(D)); ``softcap``, when given, caps
    the scaled scores to softcap * tanh(s / softcap) (Gemma 2).

    The work splits into tasks (kv head, row block), each computed single-threaded, run
    over a pool of ``torch.get_num_threads()`` workers and summed in a fixed order: the
    result is the same bits at any thread count (see ``longattn_assets.numerics``).
    """
    hq, hkv, length, dim = _check_shapes(q, k)
    group = hq // hkv
    offset = _long_range_offset(length)
    total = torch.zeros(hkv, group, dtype=torch.float64, device=q.device)
    total_sq = torch.zeros_like(total)
    if offset >= length:  # L < 4: no long-range entries at all
        return total.reshape(hq), _variance(total, total_sq, length).reshape(hq)

    q_bits, k_bits = operand_bits(dim)
    scale = math.log2(math.e) * softmax_scale if softmax_scale else math.log2(math.e) / math.sqrt(dim)
    rows_q = (q.float() * scale).reshape(hkv, group, length, dim)[:, :, offset:]
    q_rows = [integer_rows(rows_q[h], q_bits) for h in range(hkv)]
    keys = [integer_rows(k[h].float(), k_bits) for h in range(hkv)]
    tasks = [(h, r0) for h in range(hkv) for r0 in range(offset, length, block_size)]

    def run(task: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        h, r0 = task
        b = min(block_size, length - r0)
        return _row_block_sums(q_rows[h], keys[h], r0, b, length, offset, block_size, softcap)

    workers = torch.get_num_threads() if q.device.type == "cpu" else 1
    with single_threaded(), ThreadPoolExecutor(max_workers=workers) as pool:
        partials = list(pool.map(run, tasks))
    for (h, _), (mass, mass_sq) in zip(tasks, partials, strict=True):
        total[h] += mass
        total_sq[h] += mass_sq

    ds = (total / length).reshape(hq)
    return ds, _variance(total, total_sq, length).reshape(hq)


def long_range_mask(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The L x L 0/1 long-range mask of the reference code (bool)."""
    offset = _long_range_offset(length)
    r = torch.arange(length, device=device)[:, None]
    c = torch.arange(length, device=device)[None, :]
    return (r >= offset) & (c <= r - offset)


@torch.inference_mode()
def materialized_statistics(
    q: torch.Tensor, k: torch.Tensor, *, softmax_scale: float | None = None, softcap: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The straightforward O(L^2)-memory reference, one head at a time (tests and benchmarks)."""
    hq, hkv, length, dim = _check_shapes(q, k)
    group = hq // hkv
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    mask = long_range_mask(length, q.device)
    ds, du = [], []
    for h in range(hq):
        scores = q[h].float() @ k[h // group].float().T
        scores = scores * softmax_scale if softmax_scale else scores / math.sqrt(dim)
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        probs = torch.softmax(scores.masked_fill(~causal, -math.inf), dim=-1)
        masked = (probs * mask).double()
        ds.append(masked.sum() / length)
        du.append(masked.var() if masked.numel() > 1 else masked.new_zeros(()))
    return torch.stack(ds), torch.stack(du)
