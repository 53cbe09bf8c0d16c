"""The diagnostics record on synthetic scores whose separation is known."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from longattn_assets.diagnostics.controls import CONCATENATED, CONTROL_KINDS
from longattn_assets.diagnostics.separation import auc
from longattn_assets.diagnostics.summary import card_section, column_stats, diagnose, markdown_table
from longattn_assets.selection.normalize import ScoreStats
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import SelectionSummary

HEADS = 4


def _table(
    prefix: str, ds_heads: np.ndarray, du_heads: np.ndarray, docs: int, kind: str | None = None
) -> pa.Table:
    n = len(ds_heads)
    columns = {
        "data_id": [f"{prefix}-{i:04d}" for i in range(n)],
        "doc_id": [f"doc{i % docs:02d}" for i in range(n)],
        "ds": ds_heads.astype(np.float32).astype(float).mean(axis=1),
        "du": du_heads.astype(np.float32).astype(float).mean(axis=1),
        "ds_heads": pa.array(list(ds_heads.astype(np.float32)), pa.list_(pa.float32())),
        "du_heads": pa.array(list(du_heads.astype(np.float32)), pa.list_(pa.float32())),
    }
    if kind:
        columns["kind"] = [kind] * n
    return pa.table(columns)


def _summary(natural: pa.Table, settings: SelectionSettings, cut: float | None) -> SelectionSummary:
    ds, du = natural.column("ds").to_numpy(), natural.column("du").to_numpy()
    stats = ScoreStats(natural.num_rows, natural.num_rows * 64, column_stats(ds), column_stats(du))
    return SelectionSummary(settings, stats, natural.num_rows // 2, 0, 0, cut)


def _case(rng, *, natural_ds: float, head_shift: int | None = None):
    """Natural windows' ds around ``natural_ds`` (head ``head_shift`` 3 higher still), the
    controls' around 0; du pure noise."""

    def scores(n, centre, shifted=None):
        ds = rng.normal(centre, 1.0, (n, HEADS))
        if shifted is not None:
            ds[:, shifted] += 3.0
        return ds, rng.normal(0.0, 1.0, (n, HEADS))

    natural = _table("nat", *scores(300, natural_ds, head_shift), docs=30)
    controls = pa.concat_tables(
        [_table(f"control:{k}", *scores(60, 0.0), docs=30, kind=k) for k in CONTROL_KINDS]
    )
    return natural, controls


def test_scores_that_cannot_separate_fail_the_check_with_what_to_try():
    rng = np.random.default_rng(0)
    natural, controls = _case(rng, natural_ds=0.0)
    settings = SelectionSettings()
    record = diagnose(natural, controls, settings, _summary(natural, settings, 0.0), seed_key="t")
    found = record["separation"][CONCATENATED]["lds"]
    assert found["low"] <= 0.5 <= found["high"]
    assert record["lds_separates_concatenated"] is False
    for hint in ("larger model", "longer windows", "alpha", "heads"):
        assert hint in record["advice"]


def test_scores_that_separate_pass_and_each_auc_is_the_plain_one():
    rng = np.random.default_rng(1)
    natural, controls = _case(rng, natural_ds=1.0)
    settings = SelectionSettings()
    record = diagnose(natural, controls, settings, _summary(natural, settings, 0.0), seed_key="t")
    assert record["lds_separates_concatenated"] is True
    nat_ds, nat_du = natural.column("ds").to_numpy(), natural.column("du").to_numpy()
    for kind in CONTROL_KINDS:
        part = controls.filter(pa.compute.equal(controls.column("kind"), kind))
        ctl_ds, ctl_du = part.column("ds").to_numpy(), part.column("du").to_numpy()
        found = record["separation"][kind]
        assert found["ds"]["auc"] == auc(nat_ds, ctl_ds)
        assert found["-du"]["auc"] == auc(-nat_du, -ctl_du)
        # Four heads with ds shifted by 1 each: the head mean's AUC is Phi(1 / sqrt(2 * 1/4)) ~ 0.92.
        assert found["ds"]["auc"] == pytest.approx(0.921, abs=0.05)
        assert found["-du"]["low"] < 0.5 < found["-du"]["high"]
        assert found["lds"]["low"] <= found["lds"]["auc"] <= found["lds"]["high"]
        assert len(record["heads"][kind]["ds"]) == HEADS


def test_share_kept_counts_controls_at_or_above_the_cut():
    rng = np.random.default_rng(2)
    natural, controls = _case(rng, natural_ds=0.5)
    settings = SelectionSettings(alpha=0.5)
    summary = _summary(natural, settings, cut=0.3)
    record = diagnose(natural, controls, settings, summary, seed_key="t")
    s = summary.stats
    for kind in CONTROL_KINDS:
        part = controls.filter(pa.compute.equal(controls.column("kind"), kind))
        lds = (part.column("ds").to_numpy() - s.ds.mean) / s.ds.std - 0.5 * (
            (part.column("du").to_numpy() - s.du.mean) / s.du.std
        )
        assert record["kept_share"][kind] == np.mean(lds >= 0.3)
    assert record["kept_share"]["natural"] == 0.5
    assert "| concatenated |" in markdown_table(record)


def test_the_head_that_separates_is_named_and_a_head_subset_is_diagnosed_as_selected():
    rng = np.random.default_rng(3)
    natural, controls = _case(rng, natural_ds=0.0, head_shift=2)
    settings = SelectionSettings()
    record = diagnose(natural, controls, settings, _summary(natural, settings, None), seed_key="t")
    assert record["best_heads"] == [2]
    assert record["kept_share"][CONCATENATED] == 0.0  # nothing kept: no cut
    only = SelectionSettings(heads=(2,))
    subset = diagnose(natural, controls, only, _summary(natural, only, None), seed_key="t")
    head_two = record["heads"][CONCATENATED]["ds"][2]["auc"]
    assert subset["separation"][CONCATENATED]["ds"]["auc"] == head_two
    assert subset["separation"][CONCATENATED]["ds"]["auc"] > 0.95


def test_the_record_is_deterministic_and_the_card_names_other_settings():
    rng = np.random.default_rng(4)
    natural, controls = _case(rng, natural_ds=0.3)
    settings = SelectionSettings()
    first = diagnose(natural, controls, settings, _summary(natural, settings, 0.0), seed_key="book")
    again = diagnose(natural, controls, settings, _summary(natural, settings, 0.0), seed_key="book")
    assert first == again
    assert "## Scorer diagnostics" in card_section(first, settings)
    assert "Computed for the settings" not in card_section(first, settings)
    assert "Computed for the settings" in card_section(first, SelectionSettings(alpha=1.0))
    assert "Not computed" in card_section(None, settings)
