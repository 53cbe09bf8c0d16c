"""Arithmetic whose result does not depend on the kernel that computes it.

- :func:`exact_matmul`: a float64 product of integer-valued operands whose every partial sum
  stays below 2**53 is exact, whatever order, blocking, FMA use or thread split the BLAS
  library chooses, so the product is the same on any CPU or GPU. Operands are scaled to
  such integers with one power of two per row (a block floating-point rounding that is
  itself exact arithmetic on the inputs).
- :func:`fixed_order_sum`: a pairwise tree of elementwise additions, whose order is fixed
  by the shape alone (IEEE additions are correctly rounded on every vector unit).
- :func:`correctly_rounded`: float32 values of a transcendental function that are the
  exact value rounded to nearest, so they do not depend on which libm or SIMD routine ran.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

_MANTISSA_BITS = 53


def pow2(exponent: torch.Tensor) -> torch.Tensor:
    """2.0 ** exponent as float64, built from its bits (exact; exponent in [-1022, 1023])."""
    return ((exponent.to(torch.int64) + 1023) << 52).view(torch.float64)


def operand_bits(inner: int) -> tuple[int, int]:
    """Bits of the left and right integer operands so that ``inner`` products sum below 2**53."""
    total = _MANTISSA_BITS - math.ceil(math.log2(max(inner, 2)))
    return (total + 1) // 2, total // 2


@dataclass(frozen=True)
class IntegerRows:
    """``values * scale`` approximates the rows it was made from; ``|values| <= 2**bits``."""

    values: torch.Tensor  # float64 integers [..., n, inner]
    scale: torch.Tensor  # float64 powers of two [..., n, 1]


def integer_rows(x: torch.Tensor, bits: int) -> IntegerRows:
    """Each row of ``x`` rounded to integers of at most ``bits`` bits, relative to its largest entry."""
    x64 = x.double()
    peak = x64.abs().amax(-1, keepdim=True)
    _, exponent = torch.frexp(peak)  # peak < 2**exponent
    shift = bits - exponent.to(torch.int64)
    shift = torch.where(peak > 0, shift, torch.zeros_like(shift))
    return IntegerRows(torch.round(x64 * pow2(shift)), pow2(-shift))


def exact_matmul(left: IntegerRows, right: IntegerRows) -> torch.Tensor:
    """``left @ right^T`` in float64 from exact integer sums, scaled back per row and column."""
    sums = torch.matmul(left.values, right.values.transpose(-1, -2))
    return sums * left.scale * right.scale.transpose(-1, -2)


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
