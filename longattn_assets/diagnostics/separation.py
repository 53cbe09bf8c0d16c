"""How well a score separates natural windows from controls: AUC with bootstrap intervals.

AUC is the probability that a natural window scores higher than a control window (ties
count one half): the Mann-Whitney U statistic divided by n_natural * n_control. 0.5 means
the score cannot tell them apart, 1 that every natural window scores higher.

Within a part of the split (split.py) only pairs across its two halves count: the natural
windows of one half against the controls cut from the other half's documents, so no
control holds text of a document whose windows it is compared with.

Windows of one document are not independent, so intervals come from a bootstrap over
documents: each replicate draws documents with replacement and weighs every natural window
by how often its document was drawn, and every control by the mean of that over the
documents it is made of (a concatenated control belongs to all of its pieces' documents)
times how often the control itself is drawn: the controls are a random sample of those
their documents allow, and redrawing them puts that chance into the interval too. All
scores share the same draws.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Separation:
    auc: float
    low: float
    high: float
    draws: tuple[float, ...] = ()  # the AUC with the controls of each independent draw alone

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"auc": self.auc, "low": self.low, "high": self.high}
        if self.draws:
            found["draws"] = [_finite(d) for d in self.draws]
            found["spread"] = _finite(max(self.draws) - min(self.draws))
        return found


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


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
    pairs = natural_weights.sum(axis=1) * control_weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _wins(natural, natural_weights, control, control_weights) / pairs[:, None]


def _wins(
    natural: np.ndarray,
    natural_weights: np.ndarray,
    control: np.ndarray,
    control_weights: np.ndarray,
) -> np.ndarray:
    """[b, k]: the weighted count of (natural, control) pairs the natural window wins."""
    result = np.empty((natural_weights.shape[0], natural.shape[0]))
    natural_total = natural_weights.sum(axis=1)
    for k in range(natural.shape[0]):
        order = np.argsort(natural[k], kind="stable")
        ordered = natural[k][order]
        below = np.searchsorted(ordered, control[k], side="left")
        through = np.searchsorted(ordered, control[k], side="right")
        cumulative = np.zeros((natural_weights.shape[0], len(ordered) + 1))
        np.cumsum(natural_weights[:, order], axis=1, out=cumulative[:, 1:])
        above = natural_total[:, None] - cumulative[:, through]
        equal = cumulative[:, through] - cumulative[:, below]
        result[:, k] = (control_weights * (above + 0.5 * equal)).sum(axis=1)
    return result


def paired_auc(
    natural: np.ndarray,
    natural_half: np.ndarray,
    natural_weights: np.ndarray,
    control: np.ndarray,
    control_half: np.ndarray,
    control_weights: np.ndarray,
) -> np.ndarray:
    """[b, k]: AUC over the pairs whose natural window and control lie in different halves."""
    wins = np.zeros((natural_weights.shape[0], natural.shape[0]))
    pairs = np.zeros(natural_weights.shape[0])
    for half in (0, 1):
        n, c = natural_half == half, control_half == 1 - half
        if n.any() and c.any():
            wins += _wins(
                natural[:, n], natural_weights[:, n], control[:, c], control_weights[:, c]
            )
            pairs += natural_weights[:, n].sum(axis=1) * control_weights[:, c].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / pairs[:, None]


def document_draws(groups: int, replicates: int, seed: int) -> np.ndarray:
    """[replicates, groups]: how often each document is drawn in each replicate."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, groups, size=(replicates, groups))
    return np.stack([np.bincount(row, minlength=groups) for row in picks]).astype(float)


def control_counts(controls: int, replicates: int, seed: int) -> np.ndarray:
    """[replicates, controls]: how often each control is drawn in each replicate."""
    return document_draws(controls, replicates, seed)


@dataclass(frozen=True)
class Comparison:
    """Natural windows and controls of one part, with what the bootstrap needs of them.

    ``*_half``: each window's half; ``natural_groups``: each natural window's document as a
    column of ``draws`` (from :func:`document_draws`); ``control_members`` [m, documents]:
    each control's documents, every row summing to 1; ``control_draw``: its draw;
    ``control_counts`` [replicates, m]: how often each control is drawn in each replicate
    (from :func:`control_counts`).
    """

    natural_half: np.ndarray
    natural_groups: np.ndarray
    control_half: np.ndarray
    control_members: np.ndarray
    control_draw: np.ndarray
    draws: np.ndarray
    control_counts: np.ndarray

    def auc(
        self, natural: np.ndarray, control: np.ndarray, use: np.ndarray | None = None
    ) -> np.ndarray:
        """[k] point AUCs of rows natural [k, n] vs control [k, m] (the controls ``use`` picks)."""
        use = np.ones(control.shape[1], bool) if use is None else use
        return paired_auc(
            natural, self.natural_half, np.ones((1, natural.shape[1])),
            control[:, use], self.control_half[use], np.ones((1, int(use.sum()))),
        )[0]  # fmt: skip

    def control_weights(self) -> np.ndarray:
        """[replicates, m]: each control's weight, the mean draw count of its documents times
        the control's own count."""
        return (self.draws @ self.control_members.T) * self.control_counts

    def separations(self, natural: np.ndarray, control: np.ndarray) -> list[Separation]:
        """One :class:`Separation` per row; its interval is the central LEVEL of the replicates."""
        natural, control = np.atleast_2d(natural), np.atleast_2d(control)
        points = self.auc(natural, control)
        per_draw = [
            self.auc(natural, control, self.control_draw == d) for d in np.unique(self.control_draw)
        ]
        replicated = paired_auc(
            natural, self.natural_half, self.draws[:, self.natural_groups],
            control, self.control_half, self.control_weights(),
        )  # fmt: skip
        tail = (1 - LEVEL) / 2 * 100
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a score no replicate can judge: NaN
            lows = np.nanpercentile(replicated, tail, axis=0)
            highs = np.nanpercentile(replicated, 100 - tail, axis=0)
        return [
            Separation(float(p), float(lo), float(hi), tuple(float(d[i]) for d in per_draw))
            for i, (p, lo, hi) in enumerate(zip(points, lows, highs))
        ]


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
