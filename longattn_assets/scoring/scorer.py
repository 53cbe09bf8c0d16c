"""Score token windows with layer-0 long-range attention statistics (DESIGN.md 1.2).

Windows are grouped by a token budget (the unit of progress and of the out-of-memory
fallback); each window is then projected and scored on its own, so no window ever sees
another's tokens, padding or buffer offsets. On the CPU a batch's windows are scored on
``workers`` single-threaded workers (``parallel.py``), and the scores are the same bits in
any batch, order, worker or thread count, process state and x86 CPU
(``longattn_assets.numerics``).
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..model.families import LocalLayerError
from ..model.layer0 import Layer0Weights
from ..numerics import SingleThreadedWorkers, check_cpu_numerics, default_workers
from .kernel_choice import choose_statistics_kernel
from .parallel import score_windows
from .projections import Layer0Projector
from .statistics import WindowStatistics

logger = logging.getLogger("longattn_assets")

StatisticsKernel = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class WindowScore:
    ds: float
    du: float
    ds_heads: np.ndarray  # float32 [Hq]
    du_heads: np.ndarray  # float32 [Hq]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


def _triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc)
    )


class Layer0Scorer:
    """Turns windows of token ids into :class:`WindowScore` s on one device."""

    def __init__(
        self,
        weights: Layer0Weights,
        *,
        device: str = "auto",
        dtype: torch.dtype | None = None,
        block_size: int = 512,
        batch_tokens: int = 65536,
        add_bos: bool = True,
        bos_token_id: int | None = None,
        kernel: str = "auto",
        workers: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = dtype or torch.float32
        if self.device.type == "cpu" and self.dtype != torch.float32:
            raise ValueError("the CPU scorer computes in float32 only")
        if self.device.type == "cpu":
            check_cpu_numerics()
        if kernel not in {"auto", "torch", "triton"}:
            raise ValueError(f"kernel must be 'auto', 'torch' or 'triton', not {kernel!r}")
        if kernel == "triton" and self.device.type != "cuda" and not _triton_interpreted():
            raise ValueError(
                "the triton kernel needs a CUDA device (or TRITON_INTERPRET=1, Triton's CPU interpreter)"
            )
        self.workers = default_workers() if workers is None else workers
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        self._pool: SingleThreadedWorkers | None = None
        self.block_size = block_size
        self.batch_tokens = batch_tokens
        self.weights = weights
        self.fingerprint = weights.fingerprint
        self.projector = Layer0Projector(
            weights,
            device=self.device,
            dtype=self.dtype,
            add_bos=add_bos,
            bos_token_id=bos_token_id,
        )
        choice = choose_statistics_kernel(
            kernel,
            self.device,
            self.dtype,
            num_heads=weights.num_heads,
            num_kv_heads=weights.num_kv_heads,
            head_dim=weights.head_dim,
            block_size=block_size,
            softmax_scale=weights.softmax_scale,
            softcap=weights.softcap,
        )
        self.kernel, self.kernel_description = choice.name, choice.description
        self._statistics: StatisticsKernel = choice.compute
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _batches(self, windows: Sequence[Sequence[int]]) -> Iterator[list[int]]:
        """Indices of consecutive windows whose tokens fit the budget (at least one each)."""
        batch: list[int] = []
        tokens = 0
        for index, window in enumerate(windows):
            length = self.projector.sequence_length(window)
            if batch and tokens + length > self.batch_tokens:
                yield batch
                batch, tokens = [], 0
            batch.append(index)
            tokens += length
        if batch:
            yield batch

    def _check_length(self, window: Sequence[int]) -> None:
        problem = self.weights.family.local_layer_problem(self.projector.sequence_length(window))
        if problem is not None:
            raise LocalLayerError(problem)

    def _prepare(self, window: Sequence[int]) -> WindowStatistics:
        return WindowStatistics(
            self.projector.window_rows(window),
            block_size=self.block_size,
            softmax_scale=self.weights.softmax_scale,
            softcap=self.weights.softcap,
        )

    def _cpu_workers(self) -> SingleThreadedWorkers:
        if self._pool is None or self._pool.pid != os.getpid():
            self._pool = SingleThreadedWorkers(self.workers)
        return self._pool

    def _score_batch(self, windows: list[Sequence[int]]) -> list[WindowScore]:
        if self.device.type == "cpu" and self.kernel == "torch":
            heads = score_windows(windows, self._prepare, self._cpu_workers())
        else:
            heads = [self._statistics(*self.projector.project_one(window)) for window in windows]
        scores = []
        for ds_heads, du_heads in heads:
            ds_heads, du_heads = ds_heads.double().cpu(), du_heads.double().cpu()
            scores.append(
                WindowScore(
                    ds=float(ds_heads.mean()),
                    du=float(du_heads.mean()),
                    ds_heads=ds_heads.numpy().astype(np.float32),
                    du_heads=du_heads.numpy().astype(np.float32),
                )
            )
        return scores

    def _score_with_fallback(self, windows: list[Sequence[int]]) -> list[WindowScore]:
        """Score a batch; on out-of-memory split it in half and retry, down to one window."""
        try:
            return self._score_batch(windows)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_out_of_memory(exc) or len(windows) == 1:
                raise
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        half = len(windows) // 2
        logger.warning("out of memory on a batch of %d windows; retrying in halves", len(windows))
        return self._score_with_fallback(windows[:half]) + self._score_with_fallback(windows[half:])

    def score(
        self,
        windows: Sequence[Sequence[int]],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[WindowScore]:
        """One :class:`WindowScore` per window, in order; ``progress(done, total)`` per batch."""
        for window in windows:
            self._check_length(window)
        scores: list[WindowScore] = []
        for batch in self._batches(windows):
            scores.extend(self._score_with_fallback([windows[i] for i in batch]))
            if progress is not None:
                progress(len(scores), len(windows))
        return scores

    def peak_memory_bytes(self) -> int:
        """Peak device memory since construction (CUDA) or the process's peak RSS (CPU)."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
