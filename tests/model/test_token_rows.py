"""Projected rows are kept per token id only where a row is a function of its id: layer 0.

At layer 0 every family step before RoPE works row by row (embedding scale, input norm,
projection, bias, q/k norms), so the scorer's token table holds them. Above layer 0 the
layers below the scored one mix each token with the ones before it: a token's q and k
differ from window to window, so each window is projected from its own tokens. Either way,
windows that share tokens, scored together by one scorer on two workers, score bit for bit
what the uncached reference gives: each window projected alone, as one sequence, by a
fresh projector (the arithmetic before the token table).
"""

from __future__ import annotations

import numpy as np
import pytest

from longattn_assets.model.layer0 import load_layer0
from longattn_assets.scoring.projections import Layer0Projector
from longattn_assets.scoring.scorer import Layer0Scorer
from longattn_assets.scoring.statistics import long_range_statistics

from .tiny_models import build, text_window

# Layer 0 with q/k norms (Qwen3 per head, OLMo 2 over the projection, without an input
# norm), fused qkv and partial rotary (Phi-3); above 0 each of them and Gemma 2's
# soft-capping over a local layer.
CASES = [("qwen3", 0), ("qwen3", 2), ("olmo2", 0), ("olmo2", 2), ("phi3", 0), ("phi3", 1), ("gemma2", 1)]
WINDOWS = ((95, 0), (120, 40), (60, 70))  # (length, start): overlapping spans, shared tokens


def _uncached(weights, window: list[int]) -> tuple[np.ndarray, np.ndarray]:
    projector = Layer0Projector(weights, bos_token_id=1)
    projector._per_token = False  # the whole window as one sequence: no table, no distinct tokens
    ds, du = long_range_statistics(
        *projector.project_one(window), softmax_scale=weights.softmax_scale, softcap=weights.softcap
    )
    return ds.numpy(), du.numpy()


@pytest.mark.parametrize("family,layer", CASES, ids=str)
def test_scores_equal_the_uncached_reference_at_every_layer(family, layer, tmp_path):
    weights = load_layer0(str(build(family, tmp_path)), layer=layer)
    scorer = Layer0Scorer(weights, device="cpu", bos_token_id=1, workers=2)
    assert (scorer.projector._table is None) == (layer > 0)
    windows = [text_window(length, start) for length, start in WINDOWS]
    for window, score in zip(windows, scorer.score(windows), strict=True):
        ds, du = _uncached(weights, window)
        assert score.ds_heads.tobytes() == ds.astype(np.float32).tobytes()
        assert score.du_heads.tobytes() == du.astype(np.float32).tobytes()
        assert (score.ds, score.du) == (float(ds.mean()), float(du.mean()))
