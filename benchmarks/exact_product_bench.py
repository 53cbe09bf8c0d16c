"""Which exact q k^T product is cheapest on this CPU: float64 GEMM vs split pieces vs int8 GEMMs.

    python benchmarks/exact_product_bench.py [--rows 512] [--keys 512] [--repeats 200]

One block of the statistics: ``rows`` query rows times ``keys`` key rows, head_dim 64, the
operands rounded as the scorer rounds them (24- and 23-bit integers times a power of two
per row, ``exact.scaled_integers``), single-threaded. Each way computes the exact sums and
rounds them to float32 as the statistics need them; every exact way is checked to give the
float64 GEMM's bits. Times are ns per score, CPU time of the one thread (best of 5 runs of
``repeats`` blocks), so a loaded machine changes them less than it would wall times.

- float32 GEMM: not exact (the float32 path's product), the floor to compare against;
- float64 GEMM: the scorer's way (47-bit integer products summed below 2**53);
- float32 pieces: each operand split into 3 pieces of <= 9 bits, so that a piece product
  summed over 64 stays below 2**24 and float32 accumulates it exactly: 9 float32 GEMMs,
  combined in float64;
- int8 GEMMs (``torch._int_mm``, VNNI/AMX where the CPU has them): each operand split into 4
  signed 8-bit digits; the products of equal digit weight share one GEMM along a longer
  inner dimension (int32 sums below 2**22): 7 GEMMs, combined in float64.
bf16 pieces are not listed: torch's CPU bf16 matmul returns bf16, which rounds a piece's
22-bit sum, so no exact combination exists through it.
"""

from __future__ import annotations

import argparse
import time

import torch

import longattn_assets  # noqa: F401 - the scorer's ATen capability (AVX2) for the elementwise ops
from longattn_assets.scoring.exact import exact_product, operand_bits, pow2, scaled_integers


def _integers(rows: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(integers as int64, 2**-shift as float64 [n, 1]) of scaled-integer rows."""
    _, exponent = torch.frexp(rows.abs().amax(-1, keepdim=True))
    shift = bits - exponent.to(torch.int64)
    return (rows * pow2(shift)).to(torch.int64), pow2(-shift)


def _digits(n: torch.Tensor, count: int, base_bits: int, signed: bool) -> list[torch.Tensor]:
    """``n`` as ``count`` digits of ``base_bits`` bits, least significant first (balanced if signed)."""
    digits, rest = [], n.clone()
    base = 1 << base_bits
    for _ in range(count):
        digit = torch.remainder(rest, base)
        if signed:
            digit = torch.where(digit >= base // 2, digit - base, digit)
        digits.append(digit)
        rest = (rest - digit) // base
    if rest.abs().max() != 0:
        raise ValueError("operand does not fit the digits")
    return digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--keys", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    q_bits, k_bits = operand_bits(64)
    q = scaled_integers(torch.randn(args.rows, 64, generator=gen) * 3, q_bits)
    k = scaled_integers(torch.randn(args.keys, 64, generator=gen) * 3, k_bits)
    q32, k32 = q.float(), k.float()
    wide, narrow = torch.empty(args.rows, args.keys, dtype=torch.float64), torch.empty(args.rows, args.keys)

    def float64() -> torch.Tensor:
        return narrow.copy_(exact_product(q, k, out=wide))

    (nq, sq), (nk, sk) = _integers(q, q_bits), _integers(k, k_bits)
    scale = sq * sk.T
    q9 = [d.float() for d in _digits(nq, 3, 9, signed=True)]
    k9 = [d.float() for d in _digits(nk, 3, 9, signed=True)]

    # Added from the largest weight down: every partial sum is then a multiple of the
    # weight just added and stays within float64's 53 bits, so the combination is exact.
    pairs9 = sorted(((i, j) for i in range(3) for j in range(3)), key=lambda p: -sum(p))

    def float32_pieces() -> torch.Tensor:
        total = torch.zeros(args.rows, args.keys, dtype=torch.float64)
        for i, j in pairs9:
            total.add_((q9[i] @ k9[j].T).double(), alpha=2.0 ** (9 * (i + j)))
        return narrow.copy_(total.mul_(scale))

    q8 = [d.to(torch.int8) for d in _digits(nq, 4, 8, signed=True)]
    k8 = [d.to(torch.int8) for d in _digits(nk, 4, 8, signed=True)]
    grouped = []
    for w in reversed(range(7)):
        pairs = [(i, w - i) for i in range(4) if 0 <= w - i < 4]
        grouped.append((w, torch.cat([q8[i] for i, _ in pairs], 1), torch.cat([k8[j] for _, j in pairs], 1).T.contiguous()))

    def int8() -> torch.Tensor:
        total = torch.zeros(args.rows, args.keys, dtype=torch.float64)
        for w, a, b in grouped:
            total.add_(torch._int_mm(a, b).double(), alpha=2.0 ** (8 * w))
        return narrow.copy_(total.mul_(scale))

    ways = {
        "float32 GEMM (not exact)": (lambda: torch.mm(q32, k32.T, out=narrow), lambda: torch.mm(q32, k32.T, out=narrow)),
        "float64 GEMM": (lambda: exact_product(q, k, out=wide), float64),
        "float32 pieces (9 GEMMs)": (lambda: [a @ b.T for a in q9 for b in k9], float32_pieces),
        "int8 GEMMs (7)": (lambda: [torch._int_mm(a, b) for _, a, b in grouped], int8),
    }
    reference = float64().clone()
    print(f"one {args.rows} x {args.keys} block, head_dim 64, 1 thread, ATen {torch.backends.cpu.get_cpu_capability()}")
    print("| product | exact, same bits | products ns/score | to float32 scores ns/score |")
    print("|---|---|---|---|")
    for name, (products, scores) in ways.items():
        same = "no" if "not exact" in name else ("yes" if torch.equal(scores(), reference) else "DIFFERS")
        print(f"| {name} | {same} | {_ns(products, args):.2f} | {_ns(scores, args):.2f} |")


def _ns(fn, args) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        for _ in range(args.repeats):
            fn()
        best = min(best, (time.thread_time() - start) / args.repeats)
    return best * 1e9 / (args.rows * args.keys)


if __name__ == "__main__":
    main()
