"""The fused kernel scores every family: q and k after the family's norms and RoPE, Gemma's
softmax scale folded into q; Gemma 2's soft-capping (not in the kernel) falls back to the
torch kernel with one warning. Triton runs here through its interpreter (conftest.py)."""

import logging

import numpy as np
import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install 'longattn_assets[gpu]')")

import torch  # noqa: E402

from longattn_assets.model.layer0 import load_layer0  # noqa: E402
from longattn_assets.scoring.kernel_choice import choose_statistics_kernel  # noqa: E402
from longattn_assets.scoring.scorer import Layer0Scorer  # noqa: E402
from longattn_assets.scoring.statistics import long_range_statistics  # noqa: E402
from tests.model.tiny_models import build, text_window  # noqa: E402


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "longattn_assets"]


def test_a_head_smaller_than_the_launch_table_s_is_zero_padded():
    # Phi-3's head dim is 96, the tiny models' 16: padded to 128 or 64, no dot product changes.
    choice = choose_statistics_kernel(
        "triton", torch.device("cpu"), torch.float32, num_heads=4, num_kv_heads=2, head_dim=48, block_size=64,
    )  # fmt: skip
    assert choice.name == "triton" and choice.description.endswith("(head dim 48 padded to 64)")
    gen = torch.Generator().manual_seed(4)
    q, k = 2 * torch.randn(4, 150, 48, generator=gen), 2 * torch.randn(2, 150, 48, generator=gen)
    torch.testing.assert_close(choice.compute(q, k), long_range_statistics(q, k), rtol=1e-4, atol=0.0)


def test_a_softmax_scale_other_than_one_over_sqrt_head_dim_reaches_the_kernel():
    scale = 24**-0.5  # Gemma's query_pre_attn_scalar 24 with head_dim 16
    choice = choose_statistics_kernel(
        "triton", torch.device("cpu"), torch.float32, num_heads=4, num_kv_heads=2, head_dim=16,
        block_size=64, softmax_scale=scale,
    )  # fmt: skip
    assert choice.name == "triton"
    gen = torch.Generator().manual_seed(3)
    q, k = 2 * torch.randn(4, 150, 16, generator=gen), 2 * torch.randn(2, 150, 16, generator=gen)
    want = long_range_statistics(q, k, softmax_scale=scale)
    torch.testing.assert_close(choice.compute(q, k), want, rtol=1e-4, atol=0.0)
    assert not torch.allclose(long_range_statistics(q, k)[0], want[0], rtol=1e-3)


@pytest.mark.parametrize("family,layer", [("gemma3_text", 2), ("qwen3", 1), ("phi3", 1)])
def test_the_fused_kernel_scores_a_family_like_the_torch_kernel(tmp_path, family, layer, caplog):
    weights = load_layer0(str(build(family, tmp_path / family)), layer=layer)
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        fused = Layer0Scorer(weights, device="cpu", kernel="triton", bos_token_id=1)
    reference = Layer0Scorer(weights, device="cpu", kernel="torch", bos_token_id=1)
    assert fused.kernel == "triton" and _warnings(caplog) == []
    windows = [text_window(99), text_window(60, 400)]
    for got, want in zip(fused.score(windows), reference.score(windows), strict=True):
        np.testing.assert_allclose(got.ds_heads, want.ds_heads, rtol=1e-4)
        np.testing.assert_allclose(got.du_heads, want.du_heads, rtol=1e-3)


def test_soft_capping_falls_back_to_the_torch_kernel_with_one_warning(tmp_path, caplog):
    weights = load_layer0(str(build("gemma2", tmp_path / "gemma2")), layer=1)
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        scorer = Layer0Scorer(weights, device="cpu", kernel="triton", bos_token_id=1)
        scorer.score([text_window(99), text_window(60, 400)])  # no further warning per window
    assert scorer.kernel == "torch"
    (warning,) = _warnings(caplog)
    assert "no attention logit soft-capping (this model caps at 6)" in warning
