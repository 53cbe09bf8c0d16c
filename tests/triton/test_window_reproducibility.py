"""The Triton path scores a window the same bits alone, in any batch and in any order.

The kernel runs one window at a time (its grid and partial sums depend on that window's
length only), so batching cannot reach a window's scores; under the interpreter that is
checked bit for bit. Across GPUs or against the CPU path only a tolerance holds (tl.dot
and exp2 are the device's), see docs/reliability.md.
"""

import pytest

from longattn_assets.model.layer0 import load_layer0
from longattn_assets.model.tokenizer import load_tokenizer
from longattn_assets.scoring.scorer import Layer0Scorer
from tests.corpus_fixtures import stdlib_sources
from tests.scoring.score_child import score_bits


@pytest.fixture(scope="module")
def scorer() -> Layer0Scorer:
    return Layer0Scorer(
        load_layer0(None), device="cpu", kernel="triton", bos_token_id=load_tokenizer().bos_token_id
    )


@pytest.fixture(scope="module")
def windows() -> list[list[int]]:
    ids = load_tokenizer().encode_batch([stdlib_sources(1, min_chars=20_000)[0][1]])[0]
    return [ids[:95], ids[200:331], ids[400:417], ids[500:564]]


def test_triton_scores_are_the_same_bits_alone_in_a_batch_and_in_any_order(scorer, windows):
    assert scorer.kernel == "triton"
    alone = [score_bits(scorer.score([w])[0]) for w in windows]
    assert [score_bits(s) for s in scorer.score(windows)] == alone
    backwards = [score_bits(s) for s in scorer.score(windows[::-1])]
    assert backwards == alone[::-1]
