"""Layer-0 queries and keys of token windows: embed, RMSNorm, q/k projections, RoPE.

A model family's own steps (Gemma's embedding scale, the layers below a scored layer N > 0,
q/k norms, partial rotary) come in through ``family_transforms.FamilyTransforms``: around
the projection, never inside its arithmetic.

Each window is projected on its own, from position 0, so nothing about its neighbours in a
batch (their lengths, the buffer offsets) can reach its numbers. In float32 the arithmetic
is kernel-independent (``exact``): the RMSNorm sum is a fixed-order tree and the q/k
projection an exact float64 product of integer-scaled operands, rounded once to float32.
Half precision (the GPU path) uses the device's own matmul.

At layer 0 everything before RoPE is a function of the token id alone: the embedding, its
scale, the RMSNorm, the exact q/k product, the bias and the q/k norms all work row by row
(:meth:`Layer0Projector._rows`). So the exact path computes it once per distinct token and
keeps it (:class:`TokenTable`): a window then costs a gather and RoPE, where a position
enters (:meth:`Layer0Projector.project_one`). The table belongs to its projector, that is
to one model's weights, family and layer: two models in one process never share one. Above
layer 0 a token's row depends on the tokens before it (the lower layers' attention), so a
window's rows are computed from the window itself, without the table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..model.layer0 import Layer0Weights
from .exact import exact_product, fixed_order_sum, operand_bits, scaled_integers
from .family_transforms import FamilyTransforms
from .rope import RotaryEmbedding, apply_rotary

# Largest table of projected token rows kept (SmolLM2-135M's: 49,152 x 768 float32, 151 MB);
# a model whose table is larger projects each window's distinct tokens instead.
TOKEN_TABLE_BYTES = 1 << 30


class TokenTable:
    """The q/k rows of every token id seen so far, each computed once (safe across threads).

    Valid only while a row is a function of its token id: one projector's, at layer 0."""

    def __init__(self, vocab_size: int, width: int, device: torch.device) -> None:
        self.rows = torch.empty(vocab_size, width, device=device)
        self.known = torch.zeros(vocab_size, dtype=torch.bool, device=device)
        self._lock = threading.Lock()

    def lookup(self, ids: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Rows of ``ids`` (one per id, repeats included); ``compute(distinct ids)`` fills
        the ones not seen before, each row a function of its id alone."""
        with self._lock:
            unseen = ~self.known[ids]
            if bool(unseen.any()):
                missing = torch.unique(ids[unseen])
                self.rows[missing] = compute(missing)
                self.known[missing] = True
        return self.rows.index_select(0, ids)


class WindowRows:
    """One window's q and k before RoPE, [L, Hq + Hkv, D] as the projection leaves them, rotated
    head by head when asked: ``statistics.Operands``. The CPU scorer's workers rotate each kv
    head's query group and keys in that head's own job, and query rows only from the first
    position the statistics read; RoPE is per element, so the numbers are those of rotating
    every row of every head at once (:meth:`Layer0Projector.project_one`)."""

    def __init__(self, rows: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_heads: int, num_kv_heads: int):
        self.rows, self.cos, self.sin = rows, cos, sin
        self.length, _, self.head_dim = rows.shape
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.device = rows.device

    def queries(self, heads: slice, start: int) -> torch.Tensor:
        """Heads ``heads`` of the rows (q heads first, then k heads) from position ``start``,
        after RoPE: [L - start, len(heads), D], positions first."""
        return apply_rotary(self.rows[start:, heads], self.cos[start:, None], self.sin[start:, None])

    def keys(self, head: int) -> torch.Tensor:
        column = self.num_heads + head
        return self.queries(slice(column, column + 1), 0)[:, 0]


class Layer0Projector:
    """Holds layer 0's tensors on one device and turns token windows into (q, k)."""

    def __init__(
        self,
        weights: Layer0Weights,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        add_bos: bool = True,
        bos_token_id: int | None = None,
    ) -> None:
        if add_bos and bos_token_id is None:
            raise ValueError("add_bos is set but no bos_token_id was given")
        self.device = torch.device(device)
        self.dtype = dtype
        self.add_bos = add_bos
        self.bos_token_id = bos_token_id
        self.num_heads = weights.num_heads
        self.num_kv_heads = weights.num_kv_heads
        self.head_dim = weights.head_dim
        self.eps = weights.rms_norm_eps
        self.vocab_size = weights.embed_tokens.shape[0]
        self.embed = weights.embed_tokens.to(self.device, dtype)
        # None: the family has no norm before attention (OLMo 2)
        norm = weights.input_layernorm
        self.norm_weight = None if norm is None else norm.to(self.device, dtype)
        self.transforms = FamilyTransforms(weights, device=self.device, dtype=dtype)
        # q and k in one weight so a batch needs a single matmul.
        self.qk_weight = torch.cat([weights.q_proj, weights.k_proj]).to(self.device, dtype)
        self._input_bits, weight_bits = operand_bits(self.qk_weight.shape[1])
        self._qk_integers: torch.Tensor | None = None
        if dtype == torch.float32:
            self._qk_integers = scaled_integers(self.qk_weight, weight_bits)
        # Rows of token ids alone (exact path, no lower layers): projected once per distinct token.
        self._per_token = self._qk_integers is not None and self.transforms.context_free
        self._table: TokenTable | None = None
        width = self.qk_weight.shape[0]
        if self._per_token and self.vocab_size * width * 4 <= TOKEN_TABLE_BYTES:
            self._table = TokenTable(self.vocab_size, width, self.device)
        self.qk_bias = None
        if weights.q_bias is not None or weights.k_bias is not None:
            zeros_q = torch.zeros(weights.q_proj.shape[0])
            zeros_k = torch.zeros(weights.k_proj.shape[0])
            self.qk_bias = torch.cat(
                [
                    weights.q_bias if weights.q_bias is not None else zeros_q,
                    weights.k_bias if weights.k_bias is not None else zeros_k,
                ]
            ).to(self.device, dtype)
        self.rotary = RotaryEmbedding(
            weights.rotary_dim,
            weights.rope_theta,
            weights.rope_scaling,
            weights.max_position_embeddings,
        )

    def sequence_length(self, window: Sequence[int]) -> int:
        return len(window) + (1 if self.add_bos else 0)

    def _token_tensor(self, window: Sequence[int]) -> torch.Tensor:
        ids = np.asarray(window, dtype=np.int64)
        if self.add_bos:
            ids = np.concatenate([np.array([self.bos_token_id], dtype=np.int64), ids])
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}) for this model")
        return torch.from_numpy(ids).to(self.device)

    def _rms_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        # As LlamaRMSNorm (weight applied in the compute dtype), with the mean of squares
        # summed in a fixed order in float64 and 1/sqrt as two correctly rounded operations.
        h64 = hidden.double()
        mean_square = fixed_order_sum(h64 * h64) / hidden.shape[-1]
        inverse = 1.0 / torch.sqrt(mean_square + self.eps)
        return self.norm_weight * (h64 * inverse[:, None]).to(self.dtype)

    def _qk(self, hidden: torch.Tensor) -> torch.Tensor:
        if self._qk_integers is None:
            return hidden @ self.qk_weight.T
        return exact_product(scaled_integers(hidden, self._input_bits), self._qk_integers).float()

    def _rows(self, ids: torch.Tensor) -> torch.Tensor:
        """q and k before RoPE of the token sequence ``ids``, [n, (Hq + Hkv) * D], after the
        family's steps: embedding scale and lower layers, input norm, projection, bias, q/k norms."""
        hidden = self.transforms.layer_input(self.embed[ids])
        qk = self._qk(hidden if self.norm_weight is None else self._rms_norm(hidden))
        if self.qk_bias is not None:
            qk = qk + self.qk_bias
        if self.transforms.scope is None:
            return qk
        q_width = self.num_heads * self.head_dim
        return torch.cat(self.transforms.normed_qk(qk[:, :q_width], qk[:, q_width:]), dim=-1)

    def _window_rows(self, ids: torch.Tensor) -> torch.Tensor:
        if not self._per_token:  # half precision, or lower layers: the window as a sequence
            return self._rows(ids)
        if self._table is None:
            distinct, where = torch.unique(ids, return_inverse=True)
            return self._rows(distinct)[where]
        return self._table.lookup(ids, self._rows)

    @torch.inference_mode()
    def window_rows(self, window: Sequence[int]) -> WindowRows:
        """The window's q and k before RoPE, rotated head by head when asked (:class:`WindowRows`)."""
        qk = self._window_rows(self._token_tensor(window))
        length = qk.shape[0]
        cos, sin = self.rotary.cos_sin(length, self.device)
        return WindowRows(qk.view(length, -1, self.head_dim), cos, sin, self.num_heads, self.num_kv_heads)

    @torch.inference_mode()
    def project_one(self, window: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """q [Hq, L, D] and k [Hkv, L, D] after RoPE, L = window length (+1 for BOS)."""
        rows = self.window_rows(window)
        q = rows.queries(slice(0, self.num_heads), 0)
        k = rows.queries(slice(self.num_heads, self.num_heads + self.num_kv_heads), 0)
        return q.transpose(0, 1).contiguous(), k.transpose(0, 1).contiguous()

    def project(self, windows: Sequence[Sequence[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`project_one` of each window."""
        return [self.project_one(window) for window in windows]
