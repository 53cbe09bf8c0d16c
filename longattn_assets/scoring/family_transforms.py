"""The per-family steps around the q/k projection of the scored layer (model/families.py).

``Layer0Projector`` turns token ids into queries and keys in four steps; a family changes
what happens before the projection and right after it:

- :meth:`FamilyTransforms.layer_input`: the embeddings times Gemma's scale, then the
  decoder layers below the scored one (``lower_layers.LowerLayers``), giving the hidden
  states the scored layer's input norm (if any) and projections read;
- :meth:`FamilyTransforms.normed_qk`: Qwen3's and Gemma 3's RMSNorm of each head's q and k,
  or OLMo 2's over the whole projection, before RoPE.

On the CPU (float32) every step keeps the scores bit-reproducible the way projections.py
does: products are exact (``exact.exact_matmul``) or single IEEE operations, sums have a
fixed order (``exact.fixed_order_sum``), and transcendental functions run single-threaded
at the pinned CPU capability (``numerics``), so their bits depend on the shapes alone.
"""

from __future__ import annotations

import torch

from ..model.layer0 import Layer0Weights
from .exact import IntegerRows, exact_matmul, fixed_order_sum, integer_rows, operand_bits


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, dtype: torch.dtype) -> torch.Tensor:
    """RMSNorm over the last dimension as transformers computes it, the mean of squares summed
    in a fixed order in float64 and 1/sqrt as two correctly rounded operations."""
    h64 = x.double()
    mean_square = fixed_order_sum(h64 * h64) / x.shape[-1]
    normed = (h64 * (1.0 / torch.sqrt(mean_square + eps))[..., None]).to(dtype)
    return normed if weight is None else weight * normed


Operand = torch.Tensor | IntegerRows


def operand(x: torch.Tensor, inner: int, side: str) -> Operand:
    """``x`` [..., n, inner] made ready to be the left or right factor of products whose sums
    have ``inner`` terms: integer rows (exact products) in float32, ``x`` itself otherwise."""
    if x.dtype != torch.float32:
        return x
    left, right = operand_bits(inner)
    return integer_rows(x, left if side == "left" else right)


def times(left: Operand, right: Operand) -> torch.Tensor:
    """``left @ right^T`` in float32: exact integer sums (any BLAS kernel, any thread split
    gives the same bits) for integer rows, the device's own matmul otherwise."""
    if isinstance(left, torch.Tensor):
        return (left @ right.transpose(-1, -2)).float()
    return exact_matmul(left, right).float()


def rows(x: Operand, start: int, stop: int) -> Operand:
    """Rows [start, stop) of an operand [..., n, inner]."""
    if isinstance(x, torch.Tensor):
        return x[..., start:stop, :]
    return IntegerRows(x.values[..., start:stop, :], x.scale[..., start:stop, :])


def columns(x: Operand, start: int, stop: int) -> Operand:
    """Columns [start, stop) of an operand (each row keeps its scale: still exact)."""
    if isinstance(x, torch.Tensor):
        return x[..., start:stop]
    return IntegerRows(x.values[..., start:stop], x.scale)


def product(left: torch.Tensor, right: Operand) -> torch.Tensor:
    """``left @ right^T`` in float32 (see :func:`times`); ``right`` may be prepared once."""
    inner = left.shape[-1]
    if isinstance(right, torch.Tensor):
        right = operand(right, inner, "right")
    return times(operand(left, inner, "left"), right)


class FamilyTransforms:
    """The family's steps before and after the scored layer's q/k projection, on one device."""

    def __init__(self, weights: Layer0Weights, *, device: torch.device, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.eps = weights.rms_norm_eps
        self.head_dim = weights.head_dim
        self.scope = weights.family.qk_norm
        self.embed_scale = (
            None if weights.embed_scale is None else torch.tensor(weights.embed_scale, dtype=dtype, device=device)
        )
        self.q_norm = None if weights.q_norm is None else weights.q_norm.to(device, dtype)
        self.k_norm = None if weights.k_norm is None else weights.k_norm.to(device, dtype)
        self.lower = None
        if weights.lower_layers:
            from .lower_layers import LowerLayers

            self.lower = LowerLayers(weights, device=device, dtype=dtype)

    def layer_input(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Hidden states [L, H] entering the scored layer, from the token embeddings [L, H]."""
        hidden = embeddings if self.embed_scale is None else embeddings * self.embed_scale
        return hidden if self.lower is None else self.lower(hidden)

    def normed_qk(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q [L, Hq * D] and k [L, Hkv * D] after the family's q/k norms (none: unchanged)."""
        if self.scope is None:
            return q, k
        return self.norm(q, self.q_norm), self.norm(k, self.k_norm)

    def norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """RMSNorm of projected q or k [L, heads * D]: per head, or over the whole row."""
        if self.scope == "projection":
            return rms_norm(x, weight, self.eps, self.dtype)
        heads = x.reshape(*x.shape[:-1], -1, self.head_dim)
        return rms_norm(heads, weight, self.eps, self.dtype).reshape(x.shape)
