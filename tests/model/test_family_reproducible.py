"""Family steps keep CPU scores bit-reproducible: alone or in any batch, order, thread count, process.

Bit equality, not a tolerance (DESIGN.md, reproducibility). Gemma 3 at its global layer 2
runs everything the families added: the embedding scale, two local layers below it (q/k
norms, sliding attention, gelu MLP, sandwich norms) and q/k RMSNorm per head at the scored
layer; Qwen3-MoE at layer 2 adds the experts' routing and rank-ordered sums.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from longattn_assets.model.layer0 import load_layer0
from longattn_assets.scoring.scorer import Layer0Scorer
from tests.scoring.score_child import score_bits

from .family_child import windows
from .tiny_models import build

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["gemma3_text", "qwen3_moe"])
def model(request, tmp_path_factory) -> tuple[Path, Layer0Scorer, list[str]]:
    folder = build(request.param, tmp_path_factory.mktemp(request.param))
    scorer = Layer0Scorer(load_layer0(str(folder), layer=2), device="cpu", batch_tokens=128, bos_token_id=1)
    alone = [score_bits(scorer.score([w])[0]) for w in windows()]
    return folder, scorer, alone


def _bits(scorer: Layer0Scorer, chosen: list[list[int]]) -> list[str]:
    return [score_bits(s) for s in scorer.score(chosen)]


def test_same_bits_alone_in_batches_and_in_any_order(model):
    _, scorer, alone = model
    for budget in (100, 300, 1 << 20):
        scorer.batch_tokens = budget
        assert _bits(scorer, windows()) == alone, budget
    order = [3, 0, 4, 2, 1]
    assert _bits(scorer, [windows()[i] for i in order]) == [alone[i] for i in order]


def test_same_bits_at_one_two_and_three_threads(model):
    _, scorer, alone = model
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            assert _bits(scorer, windows()) == alone, count
    finally:
        torch.set_num_threads(threads)


def test_same_bits_in_a_fresh_process(model):
    folder, _, alone = model
    done = subprocess.run(
        [sys.executable, "-m", "tests.model.family_child", str(folder), "2"],
        cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
        check=True, timeout=600,
    )  # fmt: skip
    assert json.loads(done.stdout.strip().splitlines()[-1]) == alone
