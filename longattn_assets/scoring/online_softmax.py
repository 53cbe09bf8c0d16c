"""The inner loop of the statistics: one chunk of query rows through every key block.

:func:`chunk_sums` is the online softmax of ``statistics.py`` for one chunk of stacked query
rows: per key block the exact float64 product (``exact.exact_product``: a ``matmul`` of
integer-scaled rows) rounded once to float32, the soft-cap, the causal mask, the running
max and the rescaled sums of exp and exp^2 over the long-range prefix. It is about twenty
ATen calls per 512 x 512 block; made from Python, each call holds the GIL while it is
dispatched, and workers running side by side (``parallel.py``) wait on each other for it:
on two cores that cost 8-12 % of a 2,048-token window's time.

So the function is compiled once per process by TorchScript (:func:`compiled`), whose
interpreter runs the whole loop in C++ without the GIL. The interpreter calls the same ATen
operators, with the same arguments, in the same order, on the calling thread (whose torch
thread count the worker fixed at one), and ``statistics`` runs it with the graph executor's
optimizations off (``torch.jit.optimized_execution(False)``, a per-thread setting): no
fusion, no rewriting of the graph. The bits are therefore those of the plain Python
function, which is what runs where TorchScript cannot compile it (a torch without it, or
sources that are not on disk); ``tests/scoring/test_online_softmax.py`` checks both agree
bit for bit.
``torch.jit.script`` warns that it is deprecated (torch 2.5+); it is kept for this one
function because nothing else in torch runs a sequence of eager ATen calls without the GIL
and without changing their arithmetic (``torch.compile`` generates its own kernels).
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Callable
from typing import List, Optional, Tuple  # noqa: UP035 - TorchScript reads these annotations

import torch

logger = logging.getLogger("longattn_assets")

Sums = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # noqa: UP006


# Query rows per float64 product: a [128, 512] block is 512 KB, so it and the float32 scores
# of a 512-row piece (1 MB) stay in a core's L2 together. Rows of a product are independent
# and exact, so this changes no bit (it was 8-10 % faster than whole-piece products).
PRODUCT_ROWS = 128


def chunk_sums(
    chunk: torch.Tensor,
    keys: torch.Tensor,
    wide: torch.Tensor,
    narrow: torch.Tensor,
    product_rows: int,
    starts: List[int],  # noqa: UP006
    widths: List[int],  # noqa: UP006
    causal: List[Optional[torch.Tensor]],  # noqa: UP006, UP045
    long_range: List[Optional[torch.Tensor]],  # noqa: UP006, UP045
    counted: List[bool],  # noqa: UP006
    cap: Optional[float],  # noqa: UP045
) -> Sums:
    """(norm, mass, mass_sq) float32 [n] of the ``n`` query rows ``chunk`` over key blocks.

    Block ``i`` is ``keys[starts[i] : starts[i] + widths[i]]``; ``causal[i]`` (bool [n,
    width] or None) marks its entries past the causal diagonal; ``counted[i]`` says whether
    any of its keys is long-range for a row of the chunk, and ``long_range[i]`` then marks
    the entries that are not (None: all are). ``narrow`` is a float32 buffer of at least
    ``n * max(widths)`` elements, ``wide`` a float64 one of ``product_rows * max(widths)``:
    each block's product is computed ``product_rows`` rows at a time into ``wide`` and
    rounded into ``narrow``. Scores are in log2 units; ``cap`` is the soft-cap in those
    units, or None.
    """
    n = chunk.shape[0]
    run_max = torch.full([n], -math.inf, device=chunk.device)
    norm = torch.zeros_like(run_max)
    mass = torch.zeros_like(run_max)
    mass_sq = torch.zeros_like(run_max)
    for i in range(len(starts)):
        c0 = starts[i]
        width = widths[i]
        scores = narrow[: n * width].view(n, width)
        # The exact product of the scaled integer rows (exact.exact_product), rounded once.
        block_keys = keys[c0 : c0 + width].transpose(-1, -2)
        for r in range(0, n, product_rows):
            m = min(product_rows, n - r)
            product = wide[: m * width].view(m, width)
            torch.matmul(chunk[r : r + m], block_keys, out=product)
            scores[r : r + m].copy_(product)
        if cap is not None:
            scores.div_(cap).tanh_().mul_(cap)
        beyond = causal[i]
        if beyond is not None:  # the block crosses the causal diagonal: keep c <= r
            scores.masked_fill_(beyond, -math.inf)
        new_max = torch.maximum(run_max, scores.amax(-1))
        alpha = torch.exp2(run_max - new_max)
        run_max = new_max
        scores.sub_(new_max.unsqueeze(1)).exp2_()
        block_sum = scores.sum(-1)
        norm.mul_(alpha).add_(block_sum)
        mass.mul_(alpha)
        mass_sq.mul_(alpha * alpha)
        if not counted[i]:  # no key of this block is long-range for any row
            continue
        short = long_range[i]
        if short is not None:  # partly long-range: keep c <= r - o (others become +0)
            scores.masked_fill_(short, 0.0)
            block_sum = scores.sum(-1)
        mass.add_(block_sum)
        mass_sq.add_(torch.linalg.vector_norm(scores, dim=-1).square_())
    return norm, mass, mass_sq


_lock = threading.Lock()
_compiled: Callable[..., Sums] | None = None


def compiled() -> Callable[..., Sums]:
    """:func:`chunk_sums` compiled by TorchScript, once per process; the Python function
    itself (same bits, GIL held between calls) where TorchScript cannot compile it."""
    global _compiled
    with _lock:
        if _compiled is None:
            _compiled = _compile()
        return _compiled


def _compile() -> Callable[..., Sums]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # see the module's docstring
            return torch.jit.script(chunk_sums)
    except Exception as exc:  # noqa: BLE001 - any failure: the same function, run by Python
        logger.warning(
            "TorchScript could not compile the statistics loop (%s: %s); it runs as Python, with "
            "the same bits, but workers on several cores wait on each other for the GIL",
            type(exc).__name__,
            exc,
        )
        return chunk_sums
