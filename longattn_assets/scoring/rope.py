"""Rotary position embeddings with a model's own rope settings, as transformers applies them.

Frequencies come from transformers' ``ROPE_INIT_FUNCTIONS`` so every rope type the scorer
implements (linear, dynamic, yarn, llama3, longrope) gives the same inverse frequencies and
attention scaling as the model would use; the default type is computed here directly. Two
types depend on the sequence length as transformers applies them in the forward pass:
dynamic NTK beyond ``max_position_embeddings``, and longrope, whose long factors replace the
short ones beyond ``original_max_position_embeddings``. A partial rotary embedding (Phi-3)
rotates the first ``rotary_dim`` dimensions of each head and passes the rest through.

The float32 tables hold correctly rounded values (``exact.correctly_rounded``): the same
bits whichever libm or SIMD routine computed them, whatever table length or thread count.
"""

from __future__ import annotations

import mpmath
import torch

from ..validation import ROPE_TYPES
from .exact import correctly_rounded

SUPPORTED_ROPE_TYPES = set(ROPE_TYPES)
# Rope types whose frequencies depend on the sequence length.
_LENGTH_DEPENDENT = {"dynamic", "longrope"}


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
    # Dynamic NTK and longrope depend on the length: transformers re-derives their
    # frequencies from the current length in the forward pass.
    length = seq_len if rope_type in _LENGTH_DEPENDENT else None
    inv_freq, attention_scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None, seq_len=length)
    return inv_freq.float(), float(attention_scaling)


class RotaryEmbedding:
    """cos/sin tables for positions 0..L-1, cached for the longest length seen per regime."""

    def __init__(
        self,
        head_dim: int,
        theta: float,
        scaling: dict | None,
        max_position_embeddings: int,
    ) -> None:
        self.head_dim = head_dim  # the rotary dimensions (all of a head's unless partial)
        self.theta = theta
        self.scaling = scaling
        self.max_position_embeddings = max_position_embeddings
        self.rope_type = _rope_type(scaling)
        self._cache: dict[tuple[torch.device, str], tuple[torch.Tensor, torch.Tensor]] = {}

    def _tables(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq, scale = inverse_frequencies(
            self.head_dim, self.theta, self.scaling, self.max_position_embeddings, length
        )
        positions = torch.arange(length, dtype=torch.float32)
        freqs = positions[:, None] * inv_freq.float()[None, :]  # float32, as transformers rounds it
        cos = correctly_rounded(torch.cos, mpmath.cos, freqs) * scale
        sin = correctly_rounded(torch.sin, mpmath.sin, freqs) * scale
        return torch.cat((cos, cos), dim=-1).to(device), torch.cat((sin, sin), dim=-1).to(device)

    def _regime(self, length: int) -> str | None:
        """Which frequencies a sequence of ``length`` gets: a name shared by every length
        with the same ones, or None when they are this length's own (dynamic NTK)."""
        if self.rope_type == "dynamic" and length > self.max_position_embeddings:
            return None
        if self.rope_type == "longrope":
            original = self.scaling.get("original_max_position_embeddings", self.max_position_embeddings)
            return "long" if length > original else "short"
        return "base"

    def cos_sin(self, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """fp32 tables of shape [length, head_dim]."""
        regime = self._regime(length)
        if regime is None:
            return self._tables(length, device)
        cached = self._cache.get((device, regime))
        if cached is None or cached[0].shape[0] < length:
            # Positions keep their values in a longer table of the same regime.
            longest = max(length, self.max_position_embeddings) if regime == "base" else length
            cached = self._tables(longest, device)
            self._cache[(device, regime)] = cached
        return cached[0][:length], cached[1][:length]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [..., L, D] by the tables [L, R] (or any shape that broadcasts against
    ``x``'s leading dimensions); with R < D (partial rotary, Phi-3) the last D - R
    dimensions pass through unchanged.

    The numbers of transformers' Llama ``x * cos + rotate_half(x) * sin``, computed half by
    half into one output: the first half is x1 * cos - x2 * sin, which is the same IEEE
    result as x1 * cos + (-x2) * sin (a - b is defined as a + (-b)), the second
    x2 * cos + x1 * sin.
    No concatenated copies, and the caller may keep x in its own layout (the projector
    rotates the rows [L, heads, D] as the projection leaves them).
    """
    rotary = cos.shape[-1]
    half = rotary // 2
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    out = torch.empty_like(x) if rotary == x.shape[-1] else x.clone()
    x1, x2 = x[..., :half], x[..., half:rotary]
    first, second = out[..., :half], out[..., half:rotary]
    torch.mul(x1, cos[..., :half], out=first).sub_(x2 * sin[..., :half])
    torch.mul(x2, cos[..., half:], out=second).add_(x1 * sin[..., half:])
    return out
