"""AUC and its bootstrap over documents, against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from longattn_assets.diagnostics.separation import (
    auc,
    document_draws,
    ranks,
    separations,
    spearman,
    weighted_auc,
)


def mann_whitney_auc(natural, control) -> float:
    """The definition: over all pairs, 1 when the natural window scores higher, 1/2 on a tie."""
    wins = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in natural for y in control)
    return wins / (len(natural) * len(control))


@pytest.mark.parametrize("seed", range(5))
def test_auc_is_the_mann_whitney_statistic_ties_included(seed):
    rng = np.random.default_rng(seed)
    natural = rng.integers(0, 12, size=int(rng.integers(1, 60))).astype(float)
    control = rng.integers(0, 12, size=int(rng.integers(1, 60))).astype(float)
    # Both sum the same halves and integers, then divide once: the same double.
    assert auc(natural, control) == mann_whitney_auc(natural, control)


def test_auc_agrees_with_scipy_mann_whitney_u():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    natural, control = rng.normal(0.3, 1, 300), rng.normal(0, 1, 200)
    u = stats.mannwhitneyu(natural, control).statistic
    assert auc(natural, control) == pytest.approx(u / (300 * 200), rel=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0, 2.0])
def test_known_separation_of_two_normals(shift):
    """Natural ~ N(shift, 1), control ~ N(0, 1): AUC = Phi(shift / sqrt 2)."""
    rng = np.random.default_rng(11)
    n = 4000
    natural, control = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    expected = 0.5 * (1 + math.erf(shift / 2))  # Phi(shift / sqrt 2)
    # Standard error of an AUC from 4000 + 4000 samples is below 0.0065: 4 of them.
    assert auc(natural, control) == pytest.approx(expected, abs=0.026)
    groups = np.arange(n)  # every window its own document
    draws = document_draws(n, 200, seed=1)
    (found,) = separations(natural[None], groups, control[None], groups, draws)
    assert found.low <= expected <= found.high
    assert found.high - found.low < 0.05


def test_a_bootstrap_replicate_is_the_auc_of_the_drawn_windows():
    """Weighting by draw counts equals repeating each window that often."""
    rng = np.random.default_rng(3)
    natural, control = rng.integers(0, 8, 40).astype(float), rng.integers(0, 8, 30).astype(float)
    nat_doc, ctl_doc = rng.integers(0, 9, 40), rng.integers(0, 9, 30)
    draws = document_draws(9, 50, seed=5)
    replicated = weighted_auc(natural[None], draws[:, nat_doc], control[None], draws[:, ctl_doc])[
        :, 0
    ]
    for b in range(50):
        nat = np.repeat(natural, draws[b, nat_doc].astype(int))
        ctl = np.repeat(control, draws[b, ctl_doc].astype(int))
        if len(nat) and len(ctl):
            assert replicated[b] == pytest.approx(mann_whitney_auc(nat, ctl), rel=1e-12)
        else:
            assert np.isnan(replicated[b])


def test_intervals_over_documents_are_wider_when_windows_of_a_document_agree():
    """Ten documents of 100 identical windows carry ten windows' worth of evidence, not 1000."""
    rng = np.random.default_rng(0)
    doc_means = rng.normal(0.2, 1, 10)
    natural = np.repeat(doc_means, 100)
    control = rng.normal(0, 1, 1000)
    draws_docs = document_draws(20, 300, seed=2)
    clustered = separations(
        natural[None],
        np.repeat(np.arange(10), 100),
        control[None],
        np.repeat(np.arange(10, 20), 100),
        draws_docs,
    )[0]
    independent = separations(
        natural[None],
        np.arange(1000),
        control[None],
        np.arange(1000, 2000),
        document_draws(2000, 300, seed=2),
    )[0]
    assert clustered.auc == independent.auc
    assert clustered.high - clustered.low > 3 * (independent.high - independent.low)


def test_draws_are_deterministic_and_draw_as_many_documents_as_there_are():
    first, again = document_draws(7, 20, seed=9), document_draws(7, 20, seed=9)
    assert np.array_equal(first, again)
    assert (first.sum(axis=1) == 7).all()


def test_ranks_average_ties_and_spearman_matches_its_definition():
    values = np.array([3.0, 1.0, 3.0, 2.0, 3.0])
    assert ranks(values).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    rng = np.random.default_rng(4)
    x = rng.integers(0, 5, 50).astype(float)
    y = x + rng.normal(0, 2, 50)
    rx, ry = ranks(x), ranks(y)
    pearson = ((rx - rx.mean()) * (ry - ry.mean())).sum() / math.sqrt(
        ((rx - rx.mean()) ** 2).sum() * ((ry - ry.mean()) ** 2).sum()
    )
    assert spearman(x, y) == pytest.approx(pearson, rel=1e-12)
    assert math.isnan(spearman(np.ones(5), y[:5]))
