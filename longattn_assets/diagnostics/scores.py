"""The scores of a set of windows (natural or control) and LDS under any heads and alpha."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ..selection.normalize import ColumnStats

Stats = tuple[ColumnStats, ColumnStats]  # of ds and of du


def column_stats(values: np.ndarray) -> ColumnStats:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return ColumnStats(float(np.mean(values)), std, float(np.min(values)), float(np.max(values)))


def normalized(values: np.ndarray, method: str, stats: ColumnStats) -> np.ndarray:
    """N(v) as selection/normalize.py computes it in SQL."""
    if method == "zscore":
        if stats.std is None or stats.std == 0 or not math.isfinite(stats.std):
            return np.zeros(len(values))
        return (values - stats.mean) / stats.std
    if stats.min is None or stats.max == stats.min:
        return np.full(len(values), 0.5)
    return (values - stats.min) / (stats.max - stats.min)


def _matrix(table: pa.Table, column: str) -> np.ndarray:
    values = table.column(column).combine_chunks()
    width = len(values[0]) if len(values) else 0
    flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    return flat.reshape(len(values), width)


class WindowScores:
    """ds and du of each window, per head and as stored (the mean over every head)."""

    def __init__(self, ds: np.ndarray, du: np.ndarray, ds_heads: np.ndarray, du_heads: np.ndarray):
        self.ds, self.du, self.ds_heads, self.du_heads = ds, du, ds_heads, du_heads

    @classmethod
    def of(cls, table: pa.Table) -> WindowScores:
        """From scored_chunks' columns ds, du, ds_heads, du_heads."""
        return cls(
            table.column("ds").to_numpy().astype(float),
            table.column("du").to_numpy().astype(float),
            _matrix(table, "ds_heads"),
            _matrix(table, "du_heads"),
        )

    @property
    def heads(self) -> int:
        return self.ds_heads.shape[1]

    def take(self, rows: np.ndarray) -> WindowScores:
        return WindowScores(self.ds[rows], self.du[rows], self.ds_heads[rows], self.du_heads[rows])

    def mean(self, heads: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
        """ds and du as selection computes them: stored, or the chosen heads summed in order."""
        if not heads:
            return self.ds, self.du
        ds, du = np.zeros(len(self.ds)), np.zeros(len(self.du))
        for h in heads:
            ds, du = ds + self.ds_heads[:, h], du + self.du_heads[:, h]
        return ds / len(heads), du / len(heads)

    def stats(self, heads: Sequence[int] | None) -> Stats:
        ds, du = self.mean(heads)
        return column_stats(ds), column_stats(du)

    def lds(
        self, heads: Sequence[int] | None, alpha: float, method: str, stats: Stats
    ) -> np.ndarray:
        ds, du = self.mean(heads)
        return normalized(ds, method, stats[0]) - alpha * normalized(du, method, stats[1])

    def head_lds(self, alpha: float, method: str, reference: WindowScores) -> np.ndarray:
        """[heads, n]: each head's own LDS, normalized with that head's statistics in ``reference``."""
        return np.vstack(
            [self.lds((h,), alpha, method, reference.stats((h,))) for h in range(self.heads)]
        )
