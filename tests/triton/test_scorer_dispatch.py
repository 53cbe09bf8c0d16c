"""The scorer with kernel='triton' (run by Triton's interpreter here) scores like the torch path."""

import numpy as np
import pytest

from longattn_assets.model.layer0 import load_layer0
from longattn_assets.model.tokenizer import load_tokenizer
from longattn_assets.scoring.scorer import Layer0Scorer
from tests.corpus_fixtures import stdlib_sources


@pytest.fixture(scope="module")
def windows() -> list[list[int]]:
    ids = load_tokenizer().encode_batch([stdlib_sources(1, min_chars=20_000)[0][1]])[0]
    return [ids[:95], ids[200:331]]


def test_triton_kernel_through_the_scorer_matches_the_torch_kernel(windows):
    weights = load_layer0(None)
    bos = load_tokenizer().bos_token_id
    fused = Layer0Scorer(weights, device="cpu", kernel="triton", bos_token_id=bos)
    reference = Layer0Scorer(weights, device="cpu", kernel="torch", bos_token_id=bos)
    assert fused.kernel == "triton" and reference.kernel == "torch"
    for got, want in zip(fused.score(windows), reference.score(windows), strict=True):
        np.testing.assert_allclose(got.ds_heads, want.ds_heads, rtol=1e-4)
        np.testing.assert_allclose(got.du_heads, want.du_heads, rtol=1e-3)
        assert got.ds == pytest.approx(want.ds, rel=1e-4)
