"""Batching never changes a window's score; out-of-memory batches are split and retried."""

import numpy as np
import pytest
import torch

from longattn_assets.scoring.scorer import Layer0Scorer


@pytest.fixture(scope="module")
def scorer(smollm2_weights, smollm2_tokenizer):
    return Layer0Scorer(
        smollm2_weights,
        device="cpu",
        batch_tokens=4096,
        bos_token_id=smollm2_tokenizer.bos_token_id,
    )


@pytest.fixture(scope="module")
def mixed_windows(text_ids):
    return [
        text_ids[s : s + n] for s, n in ((0, 700), (900, 63), (2000, 1500), (5000, 5), (7000, 300))
    ]


def _same(a, b):
    # Bit equality: a window's scores do not depend on its batch (docs/reliability.md).
    assert a.ds == b.ds and a.du == b.du
    assert a.ds_heads.tobytes() == b.ds_heads.tobytes()
    assert a.du_heads.tobytes() == b.du_heads.tobytes()


def test_window_scores_the_same_alone_and_in_a_mixed_batch(scorer, mixed_windows):
    batched = scorer.score(mixed_windows)
    assert len(batched) == len(mixed_windows)
    for window, together in zip(mixed_windows, batched, strict=True):
        _same(scorer.score([window])[0], together)


def test_token_budget_groups_consecutive_windows(scorer, mixed_windows):
    batches = list(scorer._batches(mixed_windows))
    assert [i for batch in batches for i in batch] == list(range(len(mixed_windows)))
    for batch in batches:
        tokens = sum(len(mixed_windows[i]) + 1 for i in batch)
        assert len(batch) == 1 or tokens <= scorer.batch_tokens
    assert len(batches) < len(mixed_windows)


def test_scores_are_means_of_float64_heads(scorer, mixed_windows):
    score = scorer.score(mixed_windows[:1])[0]
    assert score.ds_heads.dtype == np.float32 and score.ds_heads.shape == (9,)
    assert 0 < score.ds < 1 and score.du > 0


def test_out_of_memory_batches_are_split_down_to_one_window(scorer, mixed_windows, monkeypatch):
    expected = scorer.score(mixed_windows)
    real = Layer0Scorer._score_batch
    sizes = []

    def tight_memory(self, windows):
        sizes.append(len(windows))
        if len(windows) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, windows)

    monkeypatch.setattr(Layer0Scorer, "_score_batch", tight_memory)
    for got, want in zip(scorer.score(mixed_windows), expected, strict=True):
        _same(got, want)
    assert max(sizes) > 1 and sizes.count(1) == len(mixed_windows)


def test_out_of_memory_on_a_single_window_is_raised(scorer, monkeypatch):
    def no_memory(self, windows):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: out of memory")

    monkeypatch.setattr(Layer0Scorer, "_score_batch", no_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        scorer.score([[1, 2, 3]])


def test_other_errors_are_not_retried(scorer, monkeypatch):
    calls = []

    def broken(self, windows):
        calls.append(len(windows))
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(Layer0Scorer, "_score_batch", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        scorer.score([[1, 2], [3, 4]])
    assert calls == [2]


def test_bos_can_be_left_out(smollm2_weights, text_ids):
    without = Layer0Scorer(smollm2_weights, device="cpu", add_bos=False)
    assert without.projector.sequence_length(text_ids[:100]) == 100
    assert without.score([text_ids[:100]])[0].ds > 0


def test_out_of_vocabulary_ids_are_refused(scorer):
    with pytest.raises(ValueError, match="token ids must lie"):
        scorer.score([[5, 49152]])


def test_cpu_refuses_half_precision_and_triton(smollm2_weights, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # tests/triton sets it for its own tests
    with pytest.raises(ValueError, match="float32"):
        Layer0Scorer(smollm2_weights, device="cpu", dtype=torch.bfloat16, bos_token_id=1)
    with pytest.raises(ValueError, match="CUDA"):
        Layer0Scorer(smollm2_weights, device="cpu", kernel="triton", bos_token_id=1)
