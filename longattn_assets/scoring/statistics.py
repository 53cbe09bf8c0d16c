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
exp2 is several times faster than exp on CPUs. Working memory is O(block^2) besides q, k.

The scores q k^T are exact float64 products of integer-scaled q and k rows
(``exact.exact_product``) rounded once to float32, so no BLAS kernel choice reaches them.
The work of a window is a fixed list of tasks (kv head, row block), each one computed
single-threaded, their float64 partial sums added in task order: the bits depend on the
window alone, never on which worker ran which task (``longattn_assets.numerics``).

Inside a task, the rows of the kv head's query group ([group * rows] stacked) go through
the key blocks ``ROW_CHUNK`` rows at a time (a piece, the unit a worker takes), so a
product and the elementwise passes over it stay in a core's cache; the loop over the key
blocks is ``online_softmax.chunk_sums``, compiled by TorchScript so that it runs without
the GIL. Every operation is per row or per element, except where ATen takes the last
``len % 16`` elements of a buffer through its scalar path (``exp2``, see
docs/reliability.md): pieces are a multiple of 16 rows, so the elements that take it are
the ones that would in one [group * rows, block] buffer, and a piece's bits equal the
whole block's.

Families other than Llama's change two things (model/families.py): the softmax scale
(Gemma's ``query_pre_attn_scalar``) and attention logit soft-capping (Gemma 2), which maps
each score s to cap * tanh(s / cap) before the causal mask, as transformers' eager path does.
In log2 units the cap is log2(e) * cap; ``tanh`` takes the same scalar tail as ``exp2``,
so the multiple-of-16 chunks keep its bits too.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Protocol

import torch

from . import online_softmax
from .exact import operand_bits, scaled_integers

# Query rows per piece, a multiple of 16 (see above): their float32 scores of a 512-key block
# are 1 MB; the float64 products are computed ``online_softmax.PRODUCT_ROWS`` rows at a time.
ROW_CHUNK = 512


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


class Operands(Protocol):
    """A window's queries and keys after RoPE, head by head (computed when first asked for)."""

    num_heads: int
    num_kv_heads: int
    length: int
    head_dim: int
    device: torch.device

    def queries(self, heads: slice, start: int) -> torch.Tensor:
        """Query heads ``heads`` at positions ``start`` to L - 1: [L - start, len(heads), D]
        (positions first; any memory layout)."""
        ...

    def keys(self, head: int) -> torch.Tensor:
        """Key head ``head`` at every position: [L, D]."""
        ...


class TensorOperands:
    """:class:`Operands` of q [Hq, L, D] and k [Hkv, L, D] already computed."""

    def __init__(self, q: torch.Tensor, k: torch.Tensor) -> None:
        self.num_heads, self.num_kv_heads, self.length, self.head_dim = _check_shapes(q, k)
        self.device = q.device
        self._q, self._k = q, k

    def queries(self, heads: slice, start: int) -> torch.Tensor:
        return self._q[heads, start:].transpose(0, 1)

    def keys(self, head: int) -> torch.Tensor:
        return self._k[head]


class _Buffers(threading.local):
    """A worker's product buffers (float64 products, float32 scores), reused across blocks."""

    def get(self, wide: int, narrow: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device.type != "cpu":
            return torch.empty(wide, dtype=torch.float64, device=device), torch.empty(narrow, device=device)
        if getattr(self, "wide", None) is None or self.wide.numel() < wide:
            self.wide = torch.empty(wide, dtype=torch.float64)
        if getattr(self, "narrow", None) is None or self.narrow.numel() < narrow:
            self.narrow = torch.empty(narrow)
        return self.wide, self.narrow


_buffers = _Buffers()


@functools.lru_cache(maxsize=32)
def _beyond(rows: int, period: int, width: int, diagonal: int, device: torch.device) -> torch.Tensor:
    """bool [rows, width]: column j > (i % period) + diagonal, for stacked heads of ``period`` rows."""
    one_head = torch.ones(period, width, dtype=torch.bool, device=device).triu_(diagonal + 1)
    return one_head.repeat(rows // period, 1)


def _chunk_masks(
    group_rows: int, rows: slice, r0: int, b: int, offset: int, block_size: int, device: torch.device
) -> tuple[list[int], list[int], list[torch.Tensor | None], list[torch.Tensor | None], list[bool]]:
    """The key blocks of [0, r0 + b) for the stacked rows ``rows`` (query positions
    r0 + i % b) and their masks, as ``online_softmax.chunk_sums`` takes them."""
    start = rows.start % b
    n = rows.stop - rows.start
    first, last = (r0, r0 + b - 1) if start + n > b else (r0 + start, r0 + start + n - 1)
    starts, widths, causal, long_range, counted = [], [], [], [], []
    for c0 in range(0, r0 + b, block_size):
        kb = min(block_size, r0 + b - c0)
        starts.append(c0)
        widths.append(kb)
        crosses = c0 + kb - 1 > first
        causal.append(_beyond(group_rows, b, kb, r0 - c0, device)[rows] if crosses else None)
        counted.append(c0 <= last - offset)
        partly = counted[-1] and c0 + kb - 1 > first - offset
        long_range.append(_beyond(group_rows, b, kb, r0 - offset - c0, device)[rows] if partly else None)
    return starts, widths, causal, long_range, counted


class WindowStatistics:
    """The statistics of one window as fixed tasks, in two stages.

    First :meth:`round_head` for each kv head: its query group's rows past the offset (times
    log2(e) and the softmax scale, default 1 / sqrt(D), in float32) and its keys, rounded once to
    :func:`~.exact.scaled_integers`. Then :meth:`run` for each of that head's
    :meth:`pieces_of`. A task is (kv head, first row of a row block); its [group * rows]
    stacked query rows go through the key blocks in pieces of ``ROW_CHUNK`` rows, each
    piece's rows independent of the others'. :meth:`result` turns each task's row sums into
    its float64 partial sums and adds them in the order of :attr:`tasks`, which depends on
    the shapes alone, so the bits do not depend on which worker ran what, or when.
    """

    def __init__(
        self,
        q: torch.Tensor | Operands,
        k: torch.Tensor | None = None,
        *,
        block_size: int = 512,
        softmax_scale: float | None = None,
        softcap: float | None = None,
    ) -> None:
        """Of q [Hq, L, D] and k [Hkv, L, D], or of one :class:`Operands` (``k`` None)."""
        operands = TensorOperands(q, k) if isinstance(q, torch.Tensor) else q
        if k is not None and not isinstance(q, torch.Tensor):
            raise TypeError("give q and k as tensors, or one Operands without k")
        hq, hkv, length, dim = operands.num_heads, operands.num_kv_heads, operands.length, operands.head_dim
        if hq % hkv:
            raise ValueError(f"{hq} query heads do not group over {hkv} kv heads")
        self.num_heads, self.num_kv_heads, self.length = hq, hkv, length
        self.group = hq // hkv
        self.block_size = block_size
        self.device = operands.device
        self.offset = _long_range_offset(length)
        self._operands = operands
        self._bits = operand_bits(dim)
        self._scale = math.log2(math.e) * softmax_scale if softmax_scale else math.log2(math.e) / math.sqrt(dim)
        self._cap = None if softcap is None else softcap * math.log2(math.e)
        self._q_rows: list[torch.Tensor | None] = [None] * hkv
        self._keys: list[torch.Tensor | None] = [None] * hkv
        self.tasks: list[tuple[int, int]] = []
        if self.offset < length:  # else L < 4: no long-range entries at all
            self.tasks = [(h, r0) for h in range(hkv) for r0 in range(self.offset, length, block_size)]
        # (task, first stacked row): most key blocks first, so a late piece is a small one.
        pieces = [
            (t, c) for t, (_, r0) in enumerate(self.tasks) for c in range(0, self.group * self._rows(r0), ROW_CHUNK)
        ]
        self.pieces = sorted(pieces, key=lambda piece: -self.tasks[piece[0]][1])
        # Per task: norm, mass and mass_sq of each stacked row, filled piece by piece.
        self._sums: list[torch.Tensor | None] = [None] * len(self.tasks)
        self._ran = [False] * len(self.pieces)

    def _rows(self, r0: int) -> int:
        return min(self.block_size, self.length - r0)

    @torch.inference_mode()
    def round_head(self, h: int) -> None:
        """The exact operands of kv head ``h`` (needed before its pieces run)."""
        q_bits, k_bits = self._bits
        heads = slice(h * self.group, (h + 1) * self.group)
        queries = self._operands.queries(heads, self.offset).float() * self._scale
        self._q_rows[h] = scaled_integers(queries, q_bits)  # [L - offset, group, D]
        self._keys[h] = scaled_integers(self._operands.keys(h).float(), k_bits)
        for t, (head, r0) in enumerate(self.tasks):
            if head == h:
                self._sums[t] = torch.empty(3, self.group * self._rows(r0), device=self.device)

    def pieces_of(self, h: int) -> list[int]:
        """Indices (into :attr:`pieces`) of kv head ``h``'s pieces, in the order of :attr:`pieces`."""
        return [i for i, (t, _) in enumerate(self.pieces) if self.tasks[t][0] == h]

    @torch.inference_mode()
    def run(self, index: int) -> None:
        """Piece ``index``: the online-softmax sums of its rows (``online_softmax.chunk_sums``)."""
        t, c = self.pieces[index]
        h, r0 = self.tasks[t]
        q_rows, keys, sums = self._q_rows[h], self._keys[h], self._sums[t]
        if q_rows is None or keys is None or sums is None:
            raise RuntimeError(f"kv head {h} is not rounded yet: run round_head({h}) first")
        b = self._rows(r0)
        start = r0 - self.offset
        rows = slice(c, min(c + ROW_CHUNK, self.group * b))
        if c // b == (rows.stop - 1) // b:  # the rows of one query head: a view, no copy
            first = start + c % b
            queries = q_rows[first : first + rows.stop - c, c // b]
        else:  # rows of two heads, stacked head after head
            queries = q_rows[start : start + b].transpose(0, 1).reshape(self.group * b, -1)[rows]
        masks = _chunk_masks(self.group * b, rows, r0, b, self.offset, self.block_size, self.device)
        product_rows = online_softmax.PRODUCT_ROWS
        n = rows.stop - rows.start
        wide, narrow = _buffers.get(min(n, product_rows) * self.block_size, n * self.block_size, self.device)
        with torch.jit.optimized_execution(False):  # this thread only: no graph rewriting
            kernel = online_softmax.compiled()
            chunk = kernel(queries, keys, wide, narrow, product_rows, *masks, self._cap)
        for total, value in zip(sums, chunk, strict=True):
            total[rows] = value
        self._ran[index] = True

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ds_heads, du_heads) float64 [Hq] from the tasks' row sums, added in task order."""
        total = torch.zeros(self.num_kv_heads, self.group, dtype=torch.float64, device=self.device)
        total_sq = torch.zeros_like(total)
        if not all(self._ran):
            raise RuntimeError(f"{self._ran.count(False)} of {len(self.pieces)} pieces have not run")
        for (h, r0), sums in zip(self.tasks, self._sums, strict=True):
            norm, mass, mass_sq = (s.view(self.group, self._rows(r0)) for s in sums)
            norm = norm.double()
            total[h] += (mass.double() / norm).sum(-1)
            total_sq[h] += (mass_sq.double() / (norm * norm)).sum(-1)
        ds = (total / self.length).reshape(self.num_heads)
        return ds, _variance(total, total_sq, self.length).reshape(self.num_heads)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every stage in order, in the calling thread."""
        for h in range(self.num_kv_heads):
            self.round_head(h)
        for index in range(len(self.pieces)):
            self.run(index)
        return self.result()


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

    On the CPU it runs on one single-threaded worker; the scorer runs the same tasks on
    several (``parallel.py``), with the same bits.
    """
    from ..numerics import SingleThreadedWorkers

    statistics = WindowStatistics(q, k, block_size=block_size, softmax_scale=softmax_scale, softcap=softcap)
    if q.device.type != "cpu":
        return statistics.compute()
    with SingleThreadedWorkers(1) as worker:
        return worker.submit(statistics.compute).result()


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
