"""The CPU scorer on several workers: same bits at any worker count, every worker busy on
one window, errors and out-of-memory retries as with one; workers run torch single-threaded."""

import threading
import time

import pytest
import torch

from longattn_assets.numerics import SingleThreadedWorkers
from longattn_assets.scoring import parallel
from longattn_assets.scoring.scorer import Layer0Scorer
from longattn_assets.scoring.statistics import WindowStatistics

from .score_child import score_bits


def _scorer(weights, tokenizer, workers: int, batch_tokens: int = 4096) -> Layer0Scorer:
    return Layer0Scorer(
        weights, device="cpu", batch_tokens=batch_tokens, bos_token_id=tokenizer.bos_token_id, workers=workers
    )


@pytest.fixture(scope="module")
def windows(text_ids) -> list[list[int]]:
    # Lengths off every multiple of the block (512) and of the task row chunk, one of them
    # long enough for 21 tasks, so several workers share a window.
    spans = ((0, 700), (900, 63), (2000, 2500), (5000, 5), (7000, 300), (100, 1031))
    return [text_ids[s : s + n] for s, n in spans]


@pytest.fixture(scope="module")
def one_worker(smollm2_weights, smollm2_tokenizer, windows) -> list[str]:
    return [score_bits(s) for s in _scorer(smollm2_weights, smollm2_tokenizer, 1).score(windows)]


def test_same_bits_with_one_two_and_three_workers(smollm2_weights, smollm2_tokenizer, windows, one_worker):
    for workers in (2, 3):
        scorer = _scorer(smollm2_weights, smollm2_tokenizer, workers)
        assert [score_bits(s) for s in scorer.score(windows)] == one_worker, workers
        alone = [score_bits(scorer.score([w])[0]) for w in windows]
        assert alone == one_worker, workers


def test_workers_compute_on_one_torch_thread_whatever_the_caller_sets():
    caller = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with SingleThreadedWorkers(2) as workers:
            assert torch.get_num_threads() == 2  # the caller's count is given back
            torch.set_num_threads(3)
            counts = [workers.submit(torch.get_num_threads).result() for _ in range(4)]
        assert counts == [1, 1, 1, 1]
    finally:
        torch.set_num_threads(caller)


def test_one_window_is_split_over_every_worker(smollm2_weights, smollm2_tokenizer, windows, monkeypatch):
    names = set()
    run = WindowStatistics.run

    def slow_run(self, index):  # long enough that an idle worker always takes the next task
        names.add(threading.current_thread().name)
        time.sleep(0.05)
        run(self, index)

    monkeypatch.setattr(WindowStatistics, "run", slow_run)
    scorer = _scorer(smollm2_weights, smollm2_tokenizer, 2)
    scorer.score([windows[2]])
    assert len(names) == 2


def test_out_of_memory_in_a_worker_splits_the_batch_as_before(
    smollm2_weights, smollm2_tokenizer, windows, one_worker, monkeypatch
):
    round_head = WindowStatistics.round_head
    raised = []

    def first_fails(self, h):
        if not raised:
            raised.append(h)
            raise torch.OutOfMemoryError("out of memory (injected in a worker)")
        round_head(self, h)

    monkeypatch.setattr(WindowStatistics, "round_head", first_fails)
    scorer = _scorer(smollm2_weights, smollm2_tokenizer, 2, batch_tokens=1 << 20)
    assert [score_bits(s) for s in scorer.score(windows)] == one_worker
    assert raised


def test_a_failing_job_fails_the_batch_and_the_workers_serve_the_next(smollm2_weights, smollm2_tokenizer, windows):
    scorer = _scorer(smollm2_weights, smollm2_tokenizer, 2)

    def prepare(window):
        if len(window) == 5:
            raise ValueError("broken window")
        return scorer._prepare(window)

    with pytest.raises(ValueError, match="broken window"):
        parallel.score_windows(windows, prepare, scorer._cpu_workers())
    heads = parallel.score_windows(windows[:2], scorer._prepare, scorer._cpu_workers())
    assert len(heads) == 2
