"""The decoder layers below the scored one: the hidden states the scored layer reads.

Scoring layer N > 0 (``LONGATTN_LAYER``) needs the output of layers 0..N-1, computed here as
transformers' eager forward pass of each family computes it (model/families.py): norms
before or after attention and MLP (Llama's pre-norm, Gemma's sandwich, OLMo 2's post-norm),
fused or separate projections, q/k norms, RoPE of the layer's own type, causal attention
with its sliding window and soft-capping, and a gated MLP or a mixture of experts.

On the CPU (float32) the result is a function of the window's tokens alone, like the rest of
the scorer: every matrix product is exact (``family_transforms.product``), softmax and
RMSNorm sums have a fixed order, the router's top-k is a stable sort, experts' outputs are
summed in rank order, and exp, tanh and the activations run single-threaded
(``numerics.single_threaded``). Attention goes by blocks of query rows, each against the keys
it can see, so memory stays O(block x L) per head, never L x L.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import torch

from ..model.families import Family, LayerAttention
from ..model.layer0 import Layer0Weights
from ..numerics import single_threaded
from .exact import IntegerRows, fixed_order_sum
from .family_transforms import Operand, columns, operand, product, rms_norm, rows, times
from .rope import RotaryEmbedding, apply_rotary

_BLOCK_ENTRIES = 1 << 24


def _pointwise(function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``function(x)`` single-threaded on the CPU: its vector/scalar split depends on the shape alone."""
    if x.device.type != "cpu" or torch.get_num_threads() == 1:  # already single-threaded
        return function(x)
    with single_threaded():
        return function(x)


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "silu":
        return torch.nn.functional.silu
    return lambda x: torch.nn.functional.gelu(x, approximate="tanh")  # gelu_pytorch_tanh


def softmax(scores: torch.Tensor) -> torch.Tensor:
    """Row softmax in float32 with a fixed-order normalizer (rows of -inf only never occur)."""
    shifted = scores - scores.amax(-1, keepdim=True)
    exps = _pointwise(torch.exp, shifted)
    return exps / fixed_order_sum(exps)[..., None]


def _row_block(heads: int, length: int) -> int:
    """Query rows per block: all heads' scores of a block stay within ~16 M entries."""
    return max(16, min(length, _BLOCK_ENTRIES // max(1, heads * length)))


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float,
    softcap: float | None,
    window: int | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Causal attention output [L, Hq * D] of q [Hq, L, D] over k, v [Hkv, L, D]; a query
    sees the keys at most ``window`` positions back, itself included (transformers' sliding
    window: key > query - window)."""
    heads, length, dim = q.shape
    kv_heads = k.shape[0]
    group = heads // kv_heads
    # Queries and keys are scaled per row, values (as rows of v^T) per dimension over all
    # keys, once; each block's product then sums at most ``length`` terms of them. The query
    # heads of a kv head are stacked, so keys and values are never repeated.
    queries = operand(q.reshape(kv_heads, group, length, dim), dim, "left")
    keys = operand(k, dim, "right")
    values = operand(v.transpose(1, 2).contiguous(), length, "right")
    out = torch.empty(kv_heads, group, length, dim, dtype=dtype, device=q.device)
    block = _row_block(heads, length)
    for r0 in range(0, length, block):
        r1 = min(length, r0 + block)
        c0 = 0 if window is None else max(0, r0 - window + 1)
        stacked = _stack(rows(queries, r0, r1), kv_heads)  # [Hkv, group * b, D]
        scores = times(stacked, rows(keys, c0, r1)).view(kv_heads, group, r1 - r0, r1 - c0) * scale
        if softcap is not None:
            scores = _pointwise(torch.tanh, scores / softcap) * softcap
        row = torch.arange(r0, r1, device=q.device)[:, None]
        col = torch.arange(c0, r1, device=q.device)[None, :]
        hidden = col > row
        if window is not None:
            hidden |= col <= row - window
        probs = softmax(scores.masked_fill(hidden, -math.inf)).to(dtype).view(kv_heads, -1, r1 - c0)
        mixed = times(operand(probs, length, "left"), columns(values, c0, r1))
        out[:, :, r0:r1] = mixed.view(kv_heads, group, r1 - r0, dim).to(dtype)
    return out.reshape(heads, length, dim).transpose(0, 1).reshape(length, heads * dim)


def _stack(x: Operand, kv_heads: int) -> Operand:
    """[Hkv, group, b, D] -> [Hkv, group * b, D], for tensors and integer rows alike."""
    if isinstance(x, torch.Tensor):
        return x.reshape(kv_heads, -1, x.shape[-1])
    return IntegerRows(x.values.reshape(kv_heads, -1, x.values.shape[-1]), x.scale.reshape(kv_heads, -1, 1))


class LowerLayers:
    """Runs the layers below the scored one on one device: hidden states in, hidden states out."""

    def __init__(self, weights: Layer0Weights, *, device: torch.device, dtype: torch.dtype) -> None:
        self.family: Family = weights.family
        self.dtype = dtype
        self.eps = weights.rms_norm_eps
        self.activation = _activation(self.family.activation)
        # Weight matrices are made ready for exact products once (float64 integer rows on the
        # CPU: twice the float32 bytes), vectors stay as they are.
        self.layers = [
            (layer.attention, {role: self._ready(t.to(device, dtype)) for role, t in layer.tensors.items()})
            for layer in weights.lower_layers
        ]
        self.scale = self.family.softmax_scale or self.family.head_dim**-0.5
        self.rotary: dict[str, RotaryEmbedding] = {}
        for attention, _ in self.layers:
            self._rotary(attention)

    @staticmethod
    def _ready(tensor: torch.Tensor) -> Operand:
        return operand(tensor, tensor.shape[1], "right") if tensor.dim() == 2 else tensor

    def _rotary(self, attention: LayerAttention) -> RotaryEmbedding:
        key = json.dumps([attention.rope_theta, attention.rope_scaling], sort_keys=True)
        if key not in self.rotary:
            self.rotary[key] = RotaryEmbedding(
                self.family.rotary_dim, attention.rope_theta, attention.rope_scaling,
                self.family.max_position_embeddings,
            )  # fmt: skip
        return self.rotary[key]

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        for attention, tensors in self.layers:
            hidden = self._layer(attention, tensors, hidden)
        return hidden

    def _norm(self, tensors: dict, role: str, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, tensors[role], self.eps, self.dtype) if role in tensors else x

    def _linear(self, tensors: dict, role: str, x: torch.Tensor) -> torch.Tensor:
        y = product(x, tensors[role]).to(self.dtype)
        bias = tensors.get(f"{role}_bias")
        return y if bias is None else y + bias

    def _layer(self, attention: LayerAttention, tensors: dict, hidden: torch.Tensor) -> torch.Tensor:
        x = self._norm(tensors, "pre_attention", hidden)
        hidden = hidden + self._norm(tensors, "post_attention", self._attention(attention, tensors, x))
        x = self._norm(tensors, "pre_mlp", hidden)
        mlp = self._experts(tensors, x) if "router" in tensors else self._mlp(tensors, x, "")
        return hidden + self._norm(tensors, "post_mlp", mlp)

    def _qk_norm(self, tensors: dict, role: str, x: torch.Tensor) -> torch.Tensor:
        if self.family.qk_norm is None:
            return x
        if self.family.qk_norm == "projection":
            return rms_norm(x, tensors[role], self.eps, self.dtype)
        heads = x.reshape(x.shape[0], -1, self.family.head_dim)
        return rms_norm(heads, tensors[role], self.eps, self.dtype).reshape(x.shape)

    def _attention(self, attention: LayerAttention, tensors: dict, x: torch.Tensor) -> torch.Tensor:
        family, length = self.family, x.shape[0]
        q = self._qk_norm(tensors, "q_norm", self._linear(tensors, "q", x))
        k = self._qk_norm(tensors, "k_norm", self._linear(tensors, "k", x))
        v = self._linear(tensors, "v", x)
        q, k, v = (
            t.reshape(length, -1, family.head_dim).transpose(0, 1) for t in (q, k, v)
        )  # fmt: skip
        cos, sin = self._rotary(attention).cos_sin(length, x.device)
        out = attend(
            apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v,
            scale=self.scale, softcap=family.softcap, window=attention.sliding_window, dtype=self.dtype,
        )  # fmt: skip
        return self._linear(tensors, "o", out)

    def _mlp(self, tensors: dict, x: torch.Tensor, prefix: str) -> torch.Tensor:
        gate = _pointwise(self.activation, self._linear(tensors, f"{prefix}gate", x))
        return self._linear(tensors, f"{prefix}down", gate * self._linear(tensors, f"{prefix}up", x))

    def _experts(self, tensors: dict, x: torch.Tensor) -> torch.Tensor:
        """Mixtral's and Qwen3-MoE's sparse MLP: each token's top-k experts by router softmax,
        weighted (renormalized over the k where the family does), summed in rank order."""
        probs = softmax(product(x, tensors["router"]))
        top = self.family.experts_per_token
        weights, chosen = torch.sort(probs, dim=-1, descending=True, stable=True)
        weights, chosen = weights[:, :top], chosen[:, :top]
        if self.family.normalize_expert_weights:
            weights = weights / fixed_order_sum(weights)[:, None]
        by_rank = torch.zeros(x.shape[0], top, x.shape[1], dtype=self.dtype, device=x.device)
        for expert in range(self.family.num_experts):
            token, rank = (chosen == expert).nonzero(as_tuple=True)
            if token.numel():
                out = self._mlp(tensors, x[token], f"expert{expert}.")
                by_rank[token, rank] = out * weights[token, rank, None].to(self.dtype)
        return fixed_order_sum(by_rank.transpose(1, 2))

