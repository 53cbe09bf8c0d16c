"""AUC and its bootstrap over documents, against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from longattn_assets.diagnostics.separation import (
    Comparison,
    auc,
    control_counts,
    document_draws,
    paired_auc,
    ranks,
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
    (found,) = _unpaired(
        natural, np.arange(n), control, np.arange(n, 2 * n), 200, seed=1
    ).separations(natural[None], control[None])  # every window its own document
    assert found.low <= expected <= found.high
    assert found.high - found.low < 0.05


def _unpaired(
    natural,
    natural_docs,
    control,
    control_docs,
    replicates,
    seed,
    control_draw=None,
    fixed_controls=False,
) -> Comparison:
    """Every natural window in half 0, every control in half 1 (one document each): all pairs count."""
    documents = int(max(natural_docs.max(), control_docs.max())) + 1
    members = np.zeros((len(control), documents))
    members[np.arange(len(control)), control_docs] = 1
    return Comparison(
        natural_half=np.zeros(len(natural), np.int64), natural_groups=natural_docs,
        control_half=np.ones(len(control), np.int64), control_members=members,
        control_draw=np.zeros(len(control), np.int64) if control_draw is None else control_draw,
        draws=document_draws(documents, replicates, seed),
        control_counts=np.ones((replicates, len(control))) if fixed_controls else control_counts(len(control), replicates, seed),
    )  # fmt: skip


def test_only_pairs_across_the_two_halves_count():
    rng = np.random.default_rng(8)
    natural, control = rng.normal(0.3, 1, 50), rng.normal(0, 1, 40)
    natural_half, control_half = rng.integers(0, 2, 50), rng.integers(0, 2, 40)
    weights_n, weights_c = (
        rng.integers(0, 3, (4, 50)).astype(float),
        rng.integers(0, 3, (4, 40)).astype(float),
    )
    found = paired_auc(
        natural[None], natural_half, weights_n, control[None], control_half, weights_c
    )[:, 0]
    for b in range(4):
        wins = pairs = 0.0
        for i in range(50):
            for j in range(40):
                if natural_half[i] != control_half[j]:
                    w = weights_n[b, i] * weights_c[b, j]
                    wins += w * (
                        1.0 if natural[i] > control[j] else 0.5 if natural[i] == control[j] else 0.0
                    )
                    pairs += w
        assert found[b] == pytest.approx(wins / pairs, rel=1e-12)


def test_a_control_weighs_the_mean_draw_of_all_its_documents_and_each_draw_is_judged_alone():
    rng = np.random.default_rng(9)
    natural, control = rng.normal(0.5, 1, 30), rng.normal(0, 1, 20)
    comparison = _unpaired(
        natural, np.arange(30) % 3, control, 3 + np.arange(20) % 4, 50, 1, np.arange(20) % 2
    )
    # the first control is made of documents 3, 4 and 5
    members = comparison.control_members.copy()
    members[0] = 0
    members[0, [3, 4, 5]] = 1 / 3
    comparison = Comparison(**{**comparison.__dict__, "control_members": members})
    weights = comparison.control_weights()
    expected = comparison.draws[:, [3, 4, 5]].mean(axis=1) * comparison.control_counts[:, 0]
    assert np.allclose(weights[:, 0], expected, rtol=1e-12)
    assert not np.allclose(comparison.control_counts, 1)  # the controls are redrawn too
    (found,) = comparison.separations(natural[None], control[None])
    assert found.auc == auc(natural, control)
    assert found.draws == (auc(natural, control[0::2]), auc(natural, control[1::2]))
    assert found.as_dict()["spread"] == abs(found.draws[0] - found.draws[1])


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
    clustered = _unpaired(
        natural, np.repeat(np.arange(10), 100), control, np.repeat(np.arange(10, 20), 100), 300, seed=2,
        fixed_controls=True,
    ).separations(natural[None], control[None])[0]  # fmt: skip
    independent = _unpaired(
        natural, np.arange(1000), control, np.arange(1000, 2000), 300, seed=2, fixed_controls=True
    ).separations(natural[None], control[None])[0]
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
