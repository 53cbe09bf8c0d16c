"""The fused kernel against a straightforward float64 materialization of DESIGN.md 1.2."""

import math

import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install 'longattn_assets[gpu]')")

import torch  # noqa: E402

from longattn_assets.scoring.triton_statistics import long_range_statistics_triton  # noqa: E402

SMALL_BLOCKS = {"block_m": 16, "block_n": 16}


def materialized(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head (ds, du) from the full L x L probabilities, in float64."""
    heads, length, head_dim = q.shape
    keys = k.double().repeat_interleave(heads // k.shape[0], dim=0)
    scores = q.double() @ keys.transpose(1, 2) / math.sqrt(head_dim)
    r = torch.arange(length)
    scores = scores.masked_fill(r[None, :] > r[:, None], float("-inf"))
    offset = length - 3 * (length // 4)
    long_range = (r[:, None] >= offset) & (r[None, :] <= r[:, None] - offset)
    masked = (scores.softmax(dim=-1) * long_range).reshape(heads, -1)
    return masked.sum(dim=1) / length, masked.var(dim=1)


def qk(heads: int, kv_heads: int, length: int, head_dim: int, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    # Scale 2 makes attention peaked enough for the variance to differ across heads.
    q = 2 * torch.randn(heads, length, head_dim, generator=gen)
    k = 2 * torch.randn(kv_heads, length, head_dim, generator=gen)
    return q.to(dtype), k.to(dtype)


def assert_matches(got, want, ds_rtol=1e-4, du_rtol=1e-3):
    ds, du = got
    want_ds, want_du = want
    assert ds.dtype == du.dtype == torch.float64
    assert ds.shape == du.shape == want_ds.shape
    torch.testing.assert_close(ds, want_ds, rtol=ds_rtol, atol=0.0)
    torch.testing.assert_close(du, want_du, rtol=du_rtol, atol=0.0)


@pytest.mark.parametrize("length", [5, 17, 64, 130, 200])
@pytest.mark.parametrize("heads,kv_heads", [(4, 2), (2, 2)])
def test_matches_materialized_reference_head_dim_64(length, heads, kv_heads):
    q, k = qk(heads, kv_heads, length, 64, seed=length)
    assert_matches(long_range_statistics_triton(q, k, **SMALL_BLOCKS), materialized(q, k))


@pytest.mark.parametrize("length", [17, 130])
def test_matches_materialized_reference_head_dim_128(length):
    q, k = qk(4, 2, length, 128, seed=length)
    assert_matches(long_range_statistics_triton(q, k, **SMALL_BLOCKS), materialized(q, k))


@pytest.mark.parametrize("block_m,block_n", [(32, 16), (16, 32), (64, 64)])
def test_block_shapes_do_not_change_the_result(block_m, block_n):
    # Other tilings move the mask boundaries to other places in the key loop.
    q, k = qk(2, 1, 150, 64, seed=3)
    got = long_range_statistics_triton(q, k, block_m=block_m, block_n=block_n)
    assert_matches(got, materialized(q, k))


def test_shortest_window_with_a_long_range_key():
    # L = 4: m = 3, o = 1, so rows 1..3 see keys 0..r-1.
    q, k = qk(2, 2, 4, 64, seed=4)
    ds, du = long_range_statistics_triton(q, k, **SMALL_BLOCKS)
    assert_matches((ds, du), materialized(q, k))
    assert (ds > 0).all() and (du > 0).all()


@pytest.mark.parametrize("length", [2, 3])
def test_windows_without_long_range_rows_score_zero(length):
    q, k = qk(2, 2, length, 64)
    ds, du = long_range_statistics_triton(q, k, **SMALL_BLOCKS)
    assert torch.equal(ds, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(du, torch.zeros(2, dtype=torch.float64))


def test_query_rows_before_offset_are_never_read():
    length = 64
    offset = length - 3 * (length // 4)
    q, k = qk(4, 2, length, 64, seed=5)
    clean = long_range_statistics_triton(q, k, **SMALL_BLOCKS)
    poisoned = q.clone()
    poisoned[:, :offset] = float("nan")
    ds, du = long_range_statistics_triton(poisoned, k, **SMALL_BLOCKS)
    assert torch.equal(ds, clean[0]) and torch.equal(du, clean[1])


def test_keys_before_offset_are_read():
    # Rows >= o attend to every earlier key, so the early keys must still matter.
    q, k = qk(2, 2, 64, 64, seed=6)
    clean = long_range_statistics_triton(q, k, **SMALL_BLOCKS)
    changed = k.clone()
    changed[:, :8] *= -1
    assert not torch.equal(long_range_statistics_triton(q, changed, **SMALL_BLOCKS)[0], clean[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_accumulate_in_fp32(dtype):
    q, k = qk(4, 2, 70, 128, seed=7, dtype=dtype)
    # The reference sees the same rounded inputs, so only accumulation error remains.
    assert_matches(long_range_statistics_triton(q, k, block_m=32, block_n=16), materialized(q, k))


def test_rejects_shapes_the_kernel_cannot_tile():
    q, k = qk(3, 2, 16, 64)
    with pytest.raises(ValueError, match="kv heads"):
        long_range_statistics_triton(q, k)
    q, k = qk(2, 2, 16, 48)
    with pytest.raises(ValueError, match="power of two"):
        long_range_statistics_triton(q, k)
    q, k = qk(2, 2, 16, 64)
    with pytest.raises(ValueError, match="share one of"):
        long_range_statistics_triton(q, k.double())
