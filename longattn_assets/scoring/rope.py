"""Rotary position embeddings with a model's own rope settings, as transformers applies them.

Frequencies come from transformers' ``ROPE_INIT_FUNCTIONS`` so every rope type it supports
(linear, dynamic, yarn, llama3) gives the same inverse frequencies and attention
scaling as the model would use; the default type is computed here directly.

The float32 tables hold correctly rounded values (``exact.correctly_rounded``): the same
bits whichever libm or SIMD routine computed them, whatever table length or thread count.
"""

from __future__ import annotations

import mpmath
import torch

from .exact import correctly_rounded

SUPPORTED_ROPE_TYPES = {"default", "linear", "dynamic", "yarn", "llama3"}


def _rope_type(scaling: dict | None) -> str:
    if not scaling:
        return "default"
    return scaling.get("rope_type", scaling.get("type", "default"))


def inverse_frequencies(
    head_dim: int,
    theta: float,
    scaling: dict | None,
    max_position_embeddings: int,
    seq_len: int,
) -> tuple[torch.Tensor, float]:
    """(inv_freq [head_dim // 2], attention_scaling) for a sequence of ``seq_len`` positions."""
    rope_type = _rope_type(scaling)
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise ValueError(f"rope type {rope_type!r} is not one of {sorted(SUPPORTED_ROPE_TYPES)}")
    if rope_type == "default":
        exponents = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
        inv_freq = correctly_rounded(
            lambda e: theta ** (-e), lambda e: mpmath.power(theta, -mpmath.mpf(e)), exponents
        )
        return inv_freq, 1.0

    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = {k: v for k, v in scaling.items() if k != "type"}
    params.update(rope_type=rope_type, rope_theta=theta)
    config = LlamaConfig(
        hidden_size=head_dim,
        num_attention_heads=1,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        rope_parameters=params,
    )
    # Only dynamic NTK depends on the length: transformers re-derives its frequencies
    # from the current length in the forward pass once it exceeds the trained context.
    length = seq_len if rope_type == "dynamic" else None
    inv_freq, attention_scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None, seq_len=length)
    return inv_freq.float(), float(attention_scaling)


class RotaryEmbedding:
    """cos/sin tables for positions 0..L-1, cached for the longest length seen."""

    def __init__(
        self,
        head_dim: int,
        theta: float,
        scaling: dict | None,
        max_position_embeddings: int,
    ) -> None:
        self.head_dim = head_dim
        self.theta = theta
        self.scaling = scaling
        self.max_position_embeddings = max_position_embeddings
        self.length_dependent = _rope_type(scaling) == "dynamic"
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _tables(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq, scale = inverse_frequencies(
            self.head_dim, self.theta, self.scaling, self.max_position_embeddings, length
        )
        positions = torch.arange(length, dtype=torch.float32)
        freqs = positions[:, None] * inv_freq.float()[None, :]  # float32, as transformers rounds it
        cos = correctly_rounded(torch.cos, mpmath.cos, freqs) * scale
        sin = correctly_rounded(torch.sin, mpmath.sin, freqs) * scale
        return torch.cat((cos, cos), dim=-1).to(device), torch.cat((sin, sin), dim=-1).to(device)

    def cos_sin(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 tables of shape [length, head_dim]."""
        if self.length_dependent and length > self.max_position_embeddings:
            return self._tables(length, device)
        cached = self._cache.get(device)
        if cached is None or cached[0].shape[0] < length:
            cached = self._tables(max(length, self.max_position_embeddings), device)
            self._cache[device] = cached
        return cached[0][:length], cached[1][:length]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [..., L, D] by the tables [L, D] (Llama's rotate_half convention)."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)
