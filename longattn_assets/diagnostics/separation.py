"""How well a score separates natural windows from controls: AUC with bootstrap intervals.

AUC is the probability that a natural window scores higher than a control window (ties
count one half): the Mann-Whitney U statistic divided by n_natural * n_control. 0.5 means
the score cannot tell them apart, 1 that every natural window scores higher.

Windows of one document are not independent, so intervals come from a bootstrap over
documents: each replicate draws documents with replacement and weighs every window (natural
or control) by how often its document was drawn. All scores share the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Separation:
    auc: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"auc": self.auc, "low": self.low, "high": self.high}


def auc(natural: np.ndarray, control: np.ndarray) -> float:
    """P(natural > control) + P(equal) / 2 over all pairs, in O((n + m) log n)."""
    value = weighted_auc(
        np.asarray(natural, float)[None, :],
        np.ones((1, len(natural))),
        np.asarray(control, float)[None, :],
        np.ones((1, len(control))),
    )
    return float(value[0, 0])


def weighted_auc(
    natural: np.ndarray,
    natural_weights: np.ndarray,
    control: np.ndarray,
    control_weights: np.ndarray,
) -> np.ndarray:
    """AUC per score (rows of ``natural``/``control``) and replicate (rows of the weights).

    natural [k, n], control [k, m]; weights [b, n] and [b, m]; returns [b, k], NaN where a
    replicate has no natural or no control window.
    """
    result = np.empty((natural_weights.shape[0], natural.shape[0]))
    natural_total = natural_weights.sum(axis=1)
    control_total = control_weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(natural.shape[0]):
            order = np.argsort(natural[k], kind="stable")
            ordered = natural[k][order]
            below = np.searchsorted(ordered, control[k], side="left")
            through = np.searchsorted(ordered, control[k], side="right")
            cumulative = np.zeros((natural_weights.shape[0], len(ordered) + 1))
            np.cumsum(natural_weights[:, order], axis=1, out=cumulative[:, 1:])
            above = natural_total[:, None] - cumulative[:, through]
            equal = cumulative[:, through] - cumulative[:, below]
            wins = (control_weights * (above + 0.5 * equal)).sum(axis=1)
            result[:, k] = wins / (natural_total * control_total)
    return result


def document_draws(groups: int, replicates: int, seed: int) -> np.ndarray:
    """[replicates, groups]: how often each document is drawn in each replicate."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, groups, size=(replicates, groups))
    return np.stack([np.bincount(row, minlength=groups) for row in picks]).astype(float)


def separations(
    natural: np.ndarray,
    natural_groups: np.ndarray,
    control: np.ndarray,
    control_groups: np.ndarray,
    draws: np.ndarray,
) -> list[Separation]:
    """One :class:`Separation` per score: rows of natural [k, n] against control [k, m].

    ``*_groups`` give each window's document as an index into the columns of ``draws``
    (from :func:`document_draws`); the interval is the central LEVEL of the replicates.
    """
    natural, control = np.atleast_2d(natural), np.atleast_2d(control)
    points = weighted_auc(
        natural, np.ones((1, natural.shape[1])), control, np.ones((1, control.shape[1]))
    )[0]
    replicated = weighted_auc(natural, draws[:, natural_groups], control, draws[:, control_groups])
    tail = (1 - LEVEL) / 2 * 100
    lows = np.nanpercentile(replicated, tail, axis=0)
    highs = np.nanpercentile(replicated, 100 - tail, axis=0)
    return [Separation(float(p), float(lo), float(hi)) for p, lo, hi in zip(points, lows, highs)]


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank."""
    values = np.asarray(values, float)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2  # ranks start + 1 .. end, averaged
    result = np.empty(len(values))
    result[order] = np.repeat(average, ends - starts)
    return result


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson correlation of average ranks); NaN if undefined."""
    if len(x) < 2:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
