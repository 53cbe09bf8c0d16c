"""Layer-0 queries and keys of token windows: embed, RMSNorm, q/k projections, RoPE.

A batch of windows is projected with one matmul over all of its tokens (no padding: the
windows are concatenated), then split back and rotated per window from position 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..model.layer0 import Layer0Weights
from .rope import RotaryEmbedding, apply_rotary


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
        self.norm_weight = weights.input_layernorm.to(self.device, dtype)
        # q and k in one weight so a batch needs a single matmul.
        self.qk_weight = torch.cat([weights.q_proj, weights.k_proj]).to(self.device, dtype)
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
            weights.head_dim,
            weights.rope_theta,
            weights.rope_scaling,
            weights.max_position_embeddings,
        )

    def sequence_length(self, window: Sequence[int]) -> int:
        return len(window) + (1 if self.add_bos else 0)

    def _token_tensor(self, windows: Sequence[Sequence[int]]) -> torch.Tensor:
        pieces = []
        for window in windows:
            if self.add_bos:
                pieces.append(np.array([self.bos_token_id], dtype=np.int64))
            pieces.append(np.asarray(window, dtype=np.int64))
        ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}) for this model")
        return torch.from_numpy(ids).to(self.device)

    def _rms_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        # As LlamaRMSNorm: variance in fp32, weight applied in the compute dtype.
        h32 = hidden.float()
        h32 = h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.norm_weight * h32.to(self.dtype)

    @torch.inference_mode()
    def project(self, windows: Sequence[Sequence[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per window: q [Hq, L, D] and k [Hkv, L, D] after RoPE, L = window length (+1 for BOS)."""
        hidden = self._rms_norm(self.embed[self._token_tensor(windows)])
        qk = hidden @ self.qk_weight.T
        if self.qk_bias is not None:
            qk = qk + self.qk_bias
        q_width = self.num_heads * self.head_dim
        out = []
        start = 0
        for window in windows:
            length = self.sequence_length(window)
            rows = qk[start : start + length]
            start += length
            q = rows[:, :q_width].reshape(length, self.num_heads, self.head_dim).transpose(0, 1)
            k = rows[:, q_width:].reshape(length, self.num_kv_heads, self.head_dim).transpose(0, 1)
            cos, sin = self.rotary.cos_sin(length, self.device)
            out.append(
                (apply_rotary(q, cos, sin).contiguous(), apply_rotary(k, cos, sin).contiguous())
            )
        return out
