"""The streaming statistics equal the straightforward L x L computation."""

import pytest
import torch

from longattn_assets.scoring.statistics import (
    long_range_mask,
    long_range_statistics,
    materialized_statistics,
)


def _assert_close(streamed, reference, rel=1e-5):
    for got, want in zip(streamed, reference, strict=True):
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=rel, atol=1e-12)


@pytest.mark.parametrize("length", [4, 5, 7, 16, 63, 64, 65, 200, 513])
@pytest.mark.parametrize("block_size", [8, 64, 512])
def test_streaming_equals_materialized_with_gqa(length, block_size):
    gen = torch.Generator().manual_seed(length * 1000 + block_size)
    q = torch.randn(6, length, 16, generator=gen) * 2
    k = torch.randn(2, length, 16, generator=gen) * 2
    _assert_close(long_range_statistics(q, k, block_size=block_size), materialized_statistics(q, k))


def test_streaming_equals_materialized_without_gqa():
    gen = torch.Generator().manual_seed(1)
    q, k = torch.randn(3, 300, 32, generator=gen), torch.randn(3, 300, 32, generator=gen)
    _assert_close(long_range_statistics(q, k, block_size=32), materialized_statistics(q, k))


def test_a_late_dominant_key_is_rescaled_exactly():
    # Keys far past the first block score ~100 nats above the rest: the running maximum
    # jumps and all earlier sums must be rescaled, or exp would overflow.
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(2, 256, 8, generator=gen)
    k = torch.randn(1, 256, 8, generator=gen)
    k[:, 150] = q[:, 200:].mean(dim=(0, 1)) * 60
    ds, du = long_range_statistics(q, k, block_size=32)
    assert torch.isfinite(ds).all() and torch.isfinite(du).all()
    _assert_close((ds, du), materialized_statistics(q, k))


def test_windows_shorter_than_four_have_no_long_range_entries():
    for length in (2, 3):
        ds, du = long_range_statistics(torch.randn(2, length, 4), torch.randn(1, length, 4))
        assert ds.tolist() == [0.0, 0.0] and du.tolist() == [0.0, 0.0]


def test_mask_keeps_keys_at_least_a_quarter_back():
    mask = long_range_mask(8)  # m = 6, o = 2
    assert not mask[:2].any()
    assert mask[2].tolist() == [True] + [False] * 7
    assert mask[7].tolist() == [True] * 6 + [False] * 2
    assert int(mask.sum()) == sum(range(1, 7))


def test_uniform_attention_matches_closed_form():
    # Zero queries make every causal row uniform: P[r, c] = 1 / (r + 1).
    length = 12
    q, k = torch.zeros(1, length, 4), torch.randn(1, length, 4)
    offset = length - 3 * (length // 4)
    entries = [1 / (r + 1) for r in range(offset, length) for _ in range(r - offset + 1)]
    ds, du = long_range_statistics(q, k, block_size=4)
    n = length * length
    total, total_sq = sum(entries), sum(e * e for e in entries)
    assert ds.item() == pytest.approx(total / length, rel=1e-6)
    assert du.item() == pytest.approx((total_sq - total * total / n) / (n - 1), rel=1e-6)


def test_rejects_heads_that_do_not_group():
    with pytest.raises(ValueError, match="do not group"):
        long_range_statistics(torch.randn(3, 8, 4), torch.randn(2, 8, 4))
