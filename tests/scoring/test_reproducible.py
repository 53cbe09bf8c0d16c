"""A window's scores are the same bits alone, in any batch, order, thread count and process.

Bit equality, not a tolerance: DESIGN.md promises the same bytes. The recorded bits of the
evidence windows (shard arxiv|00000 of the bundled sample, from the nondeterministic-scores
report) tie this machine to every other x86 CPU that runs the suite.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from longattn_assets.numerics import NumericsError
from longattn_assets.scoring.scorer import Layer0Scorer

from .conftest import attention_oracle
from .score_child import evidence_windows, score_bits

REPO = Path(__file__).resolve().parents[2]
RECORDED = json.loads((Path(__file__).parent / "data" / "evidence_scores.json").read_text())


@pytest.fixture(scope="module")
def scorer(smollm2_weights, smollm2_tokenizer):
    return Layer0Scorer(
        smollm2_weights, device="cpu", batch_tokens=4096, bos_token_id=smollm2_tokenizer.bos_token_id
    )


@pytest.fixture(scope="module")
def evidence() -> list[list[int]]:
    return evidence_windows()


@pytest.fixture(scope="module")
def windows(text_ids, evidence):
    spans = ((0, 700), (900, 63), (2000, 1500), (5000, 5), (7000, 300))
    return [text_ids[s : s + n] for s, n in spans] + evidence


@pytest.fixture(scope="module")
def alone(scorer, windows) -> list[str]:
    return [score_bits(scorer.score([w])[0]) for w in windows]


def _bits(scorer, windows) -> list[str]:
    return [score_bits(s) for s in scorer.score(windows)]


def test_same_bits_alone_and_in_batches_of_any_size(scorer, windows, alone):
    for budget in (2100, 4096, 1 << 20):
        scorer.batch_tokens = budget
        try:
            assert _bits(scorer, windows) == alone, budget
        finally:
            scorer.batch_tokens = 4096


def test_same_bits_in_any_order(scorer, windows, alone):
    order = [3, 6, 0, 7, 2, 5, 1, 4]
    assert _bits(scorer, [windows[i] for i in order]) == [alone[i] for i in order]


def test_same_bits_at_one_and_two_threads(scorer, windows, alone):
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            assert _bits(scorer, windows) == alone, count
    finally:
        torch.set_num_threads(threads)


def test_same_bits_after_other_work_in_the_process(scorer, windows, alone, text_ids):
    scorer.score([text_ids[:8300], text_ids[100:4200], text_ids[9:20]])  # regrows RoPE tables
    assert _bits(scorer, windows) == alone


def test_evidence_windows_give_the_recorded_bits_and_agree_with_eager_attention(
    scorer, evidence, smollm2_hf_model
):
    assert _bits(scorer, evidence) == list(RECORDED["scores"].values())
    for window, score in zip(evidence, scorer.score(evidence), strict=True):
        ds, du = attention_oracle(smollm2_hf_model, [scorer.projector.bos_token_id, *window])
        np.testing.assert_allclose(score.ds_heads, ds.numpy(), rtol=1e-4, atol=0)
        np.testing.assert_allclose(score.du_heads, du.numpy(), rtol=1e-4, atol=0)


def _child(cache: Path, *args: str, **env: str) -> dict:
    environment = dict(os.environ, LONGATTN_CACHE_DIR=str(cache), **env)
    done = subprocess.run(
        [sys.executable, "-m", "tests.scoring.score_child", *args],
        cwd=REPO, env=environment, capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fresh_cache_building_and_warm_processes_give_the_recorded_bits(tmp_path):
    # The first child converts the GGUF into an empty cache, at one thread, with MKL held to
    # its oldest code path (its float32 matmul kernels round differently: checked below);
    # the second reads that cache and has scored windows of other lengths first.
    fresh = _child(tmp_path, MKL_CBWR="COMPATIBLE", OMP_NUM_THREADS="1")
    warm = _child(tmp_path, "--warm")
    recorded = list(RECORDED["scores"].values())
    assert fresh["scores"] == recorded
    assert warm["scores"] == recorded
    assert fresh["matmul"] != warm["matmul"]


def test_scorer_refuses_a_cpu_capability_other_than_avx2(smollm2_weights, monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    with pytest.raises(NumericsError, match="ATEN_CPU_CAPABILITY=avx2"):
        Layer0Scorer(smollm2_weights, device="cpu", bos_token_id=1)
