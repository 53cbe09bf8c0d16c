"""The scorer with kernel='triton' (run by Triton's interpreter here) scores like the torch path."""

import logging

import numpy as np
import pytest

pytest.importorskip("triton", reason="Triton is not installed (pip install 'longattn_assets[gpu]')")

import torch  # noqa: E402
from triton.runtime.errors import OutOfResources  # noqa: E402

from longattn_assets.model.layer0 import load_layer0  # noqa: E402
from longattn_assets.model.tokenizer import load_tokenizer  # noqa: E402
from longattn_assets.scoring import triton_statistics  # noqa: E402
from longattn_assets.scoring.scorer import Layer0Scorer  # noqa: E402
from longattn_assets.scoring.triton_configs import LAUNCH_CONFIGS, PORTABLE_CAPABILITY  # noqa: E402
from tests.corpus_fixtures import stdlib_sources  # noqa: E402


@pytest.fixture(scope="module")
def windows() -> list[list[int]]:
    ids = load_tokenizer().encode_batch([stdlib_sources(1, min_chars=20_000)[0][1]])[0]
    return [ids[:95], ids[200:331]]


def scorers(kernel: str = "triton") -> tuple[Layer0Scorer, Layer0Scorer]:
    weights = load_layer0(None)
    bos = load_tokenizer().bos_token_id
    return (
        Layer0Scorer(weights, device="cpu", kernel=kernel, bos_token_id=bos),
        Layer0Scorer(weights, device="cpu", kernel="torch", bos_token_id=bos),
    )


def test_triton_kernel_through_the_scorer_matches_the_torch_kernel(windows):
    fused, reference = scorers()
    assert fused.kernel == "triton" and reference.kernel == "torch"
    config = LAUNCH_CONFIGS[(PORTABLE_CAPABILITY, torch.float32, fused.weights.head_dim)]
    assert fused.kernel_description == f"triton {config} on Triton's interpreter"
    for got, want in zip(fused.score(windows), reference.score(windows), strict=True):
        np.testing.assert_allclose(got.ds_heads, want.ds_heads, rtol=1e-4)
        np.testing.assert_allclose(got.du_heads, want.du_heads, rtol=1e-3)
        assert got.ds == pytest.approx(want.ds, rel=1e-4)


def test_a_kernel_that_cannot_launch_leaves_the_scorer_on_the_torch_path(windows, monkeypatch, caplog):
    def out_of_shared_memory(*args, **kwargs):
        raise OutOfResources(131072, 101376, "shared memory")

    monkeypatch.setattr(triton_statistics, "long_range_statistics_triton", out_of_shared_memory)
    with caplog.at_level(logging.WARNING, logger="longattn_assets"):
        fallen_back, reference = scorers()
        scores = fallen_back.score(windows)  # no further warning per window or batch
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [logging.WARNING]
    assert (fallen_back.kernel, fallen_back.kernel_description) == ("torch", "torch")
    for got, want in zip(scores, reference.score(windows), strict=True):
        assert np.array_equal(got.ds_heads, want.ds_heads) and np.array_equal(got.du_heads, want.du_heads)
