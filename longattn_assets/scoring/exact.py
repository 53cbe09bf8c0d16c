"""Arithmetic whose result does not depend on the kernel that computes it.

- :func:`scaled_integers` and :func:`exact_product`: each operand row is rounded once to an
  integer of a few bits times a power of two of its own (a block floating-point rounding,
  itself exact arithmetic on the inputs), stored in float64. In a float64 product of two
  such rows every term is (integer * integer) * 2**(s + t) with one s + t for the whole
  dot product, and the bit budget keeps every partial sum of the integers below 2**53:
  every partial sum is exact, so the product is the same whatever order, blocking, FMA use
  or thread split the BLAS library chooses, on any CPU or GPU.
- :func:`fixed_order_sum`: a pairwise tree of elementwise additions, whose order is fixed
  by the shape alone (IEEE additions are correctly rounded on every vector unit).
- :func:`correctly_rounded`: float32 values of a transcendental function that are the
  exact value rounded to nearest, so they do not depend on which libm or SIMD routine ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

_MANTISSA_BITS = 53


def pow2(exponent: torch.Tensor) -> torch.Tensor:
    """2.0 ** exponent as float64, built from its bits (exact; exponent in [-1022, 1023])."""
    return ((exponent.to(torch.int64) + 1023) << 52).view(torch.float64)


def operand_bits(inner: int) -> tuple[int, int]:
    """Bits of the left and right integer operands so that ``inner`` products sum below 2**53."""
    total = _MANTISSA_BITS - math.ceil(math.log2(max(inner, 2)))
    return (total + 1) // 2, total // 2


def scaled_integers(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Each row of ``x`` rounded to ``n * 2**-s``, ``|n| <= 2**bits`` relative to its largest entry (float64).

    For float32 (or narrower) input every value and every product of two such rows stays
    far inside float64's normal range (powers of two between 2**-344 and 2**262), so
    scaling by the powers of two is exact and products of the rows are the exact products
    of the integers, scaled: no separate scale factors are needed after a product.
    """
    peak = x.abs().amax(-1, keepdim=True).double()
    _, exponent = torch.frexp(peak)  # peak < 2**exponent
    shift = bits - exponent.to(torch.int64)
    shift = torch.where(peak > 0, shift, torch.zeros_like(shift))
    # x * 2**shift in float64 (x converted exactly, then scaled exactly), rounded, scaled back.
    return x.to(torch.float64, copy=True).mul_(pow2(shift)).round_().mul_(pow2(-shift))


def exact_product(
    left: torch.Tensor, right: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``left @ right^T`` of :func:`scaled_integers` rows: exact float64 sums, whatever the kernel.

    The bits of ``left`` and ``right`` must come from one :func:`operand_bits` split of
    their inner dimension, so that the integer sums stay below 2**53.
    """
    return torch.matmul(left, right.transpose(-1, -2), out=out)


def fixed_order_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension by halving: zero-padded to a power of two, fixed order."""
    width = x.shape[-1]
    padded = 1 << max(width - 1, 0).bit_length()
    if padded != width:
        x = torch.nn.functional.pad(x, (0, padded - width))
    while x.shape[-1] > 1:
        half = x.shape[-1] // 2
        x = x[..., :half] + x[..., half:]
    return x[..., 0]


def correctly_rounded(
    approx: Callable[[torch.Tensor], torch.Tensor],
    exact: Callable[[float], object],
    x: torch.Tensor,
) -> torch.Tensor:
    """float32 f(x), rounded to nearest from the exact value.

    ``approx`` evaluates f in float64 within one ulp (torch's own cos, sin, pow do); where
    that estimate is too close to a float32 rounding boundary to decide, ``exact(value)``
    (an mpmath expression, evaluated with 200 bits) decides, rounded to 24 bits.
    """
    import mpmath

    estimate = approx(x.double())
    slack = estimate.abs() * 2.0**-50  # four float64 ulps
    low, high = (estimate - slack).float(), (estimate + slack).float()
    result = estimate.float()
    undecided = (low != high).nonzero().flatten().tolist()
    if undecided:
        flat_x, flat_result = x.double().flatten(), result.flatten()
        for i in undecided:
            with mpmath.workprec(200):
                value = exact(float(flat_x[i]))
            with mpmath.workprec(24):
                flat_result[i] = float(+value)
        result = flat_result.view(result.shape)
    return result
