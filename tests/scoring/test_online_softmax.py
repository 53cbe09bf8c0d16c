"""The statistics' inner loop runs compiled by TorchScript, with the bits of the Python function."""

import math

import pytest
import torch

from longattn_assets.scoring import online_softmax, statistics
from longattn_assets.scoring.exact import operand_bits, scaled_integers


def test_the_loop_is_compiled_so_workers_do_not_wait_on_the_gil():
    assert isinstance(online_softmax.compiled(), torch.jit.ScriptFunction)


# (rows of the chunk, query position of its first row, block size, soft-cap in log2 units)
CASES = [(48, 300, 64, None), (512, 1000, 512, None), (37, 700, 128, None), (64, 513, 256, 6.0 * math.log2(math.e))]


@pytest.mark.parametrize("n,r0,block,cap", CASES)
def test_compiled_and_python_loops_give_the_same_bits(n, r0, block, cap):
    gen = torch.Generator().manual_seed(n + r0)
    length, dim = r0 + n, 32
    q_bits, k_bits = operand_bits(dim)
    queries = scaled_integers(torch.randn(n, dim, generator=gen) * 3, q_bits)
    keys = scaled_integers(torch.randn(length, dim, generator=gen) * 3, k_bits)
    offset = length - 3 * (length // 4)
    masks = statistics._chunk_masks(n, slice(0, n), r0, n, offset, block, torch.device("cpu"))
    assert any(m is not None for m in masks[2]) and any(m is not None for m in masks[3])

    def run(kernel, product_rows):
        wide, narrow = torch.empty(product_rows * block, dtype=torch.float64), torch.empty(n * block)
        with torch.jit.optimized_execution(False), torch.inference_mode():
            return kernel(queries, keys, wide, narrow, product_rows, *masks, cap)

    # whole-chunk products in Python against the compiled loop's slices of rows (any size)
    python = run(online_softmax.chunk_sums, n)
    assert all(torch.isfinite(s).all() for s in python)
    for rows in (online_softmax.PRODUCT_ROWS, 16, 7):
        compiled = run(online_softmax.compiled(), rows)
        for a, b in zip(python, compiled, strict=True):
            assert torch.equal(a, b), rows


def test_without_torchscript_the_python_loop_runs_and_says_so(monkeypatch, caplog):
    def unavailable(fn):
        raise OSError("could not get source code")

    monkeypatch.setattr(online_softmax, "_compiled", None)
    monkeypatch.setattr(torch.jit, "script", unavailable)
    with caplog.at_level("WARNING", logger="longattn_assets"):
        assert online_softmax.compiled() is online_softmax.chunk_sums
    assert "runs as Python, with the same bits" in caplog.text
    gen = torch.Generator().manual_seed(5)
    q, k = torch.randn(6, 700, 16, generator=gen), torch.randn(2, 700, 16, generator=gen)
    in_python = statistics.long_range_statistics(q, k, block_size=128)
    monkeypatch.undo()  # TorchScript back, and the process's compiled loop (or none yet)
    compiled = statistics.long_range_statistics(q, k, block_size=128)
    assert isinstance(online_softmax._compiled, torch.jit.ScriptFunction)
    assert all(torch.equal(a, b) for a, b in zip(in_python, compiled, strict=True))
