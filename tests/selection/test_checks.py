"""The data-quality checks pass on good data and name what is wrong on bad data."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from longattn_assets.selection.checks import (
    data_ids_unique,
    ds_in_unit_interval,
    scores_finite,
    selection_follows_rule,
    windows_have_length,
)
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import write_selected_parquet

W = 16
GOOD = [(f"w{i:02d}", (i * 7 % 11) / 11, (i % 3) / 100, W) for i in range(12)]


def test_windows_of_the_configured_length_pass(make_category):
    windows, _ = make_category({"00000": GOOD[:6], "00001": GOOD[6:]})
    passed, facts = windows_have_length(windows, W)
    assert passed and facts["windows"] == 12
    passed, facts = windows_have_length(windows, W + 1)
    assert not passed and facts["wrong_n_tokens"] == 12


def test_token_ids_disagreeing_with_n_tokens_fail(make_category):
    windows, _ = make_category({"00000": GOOD})
    path = windows.replace("shard=*", "shard=00000")
    table = pq.read_table(path)
    short = pa.array(
        [
            ids[:-1] if i == 4 else ids
            for i, ids in enumerate(table.column("token_ids").to_pylist())
        ],
        pa.list_(pa.int32()),
    )
    pq.write_table(
        table.set_column(table.schema.get_field_index("token_ids"), "token_ids", short), path
    )
    passed, facts = windows_have_length(windows, W)
    assert not passed
    assert facts["token_ids_not_n_tokens"] == 1 and facts["examples"] == ["w04"]


def test_duplicate_data_ids_across_shards_fail(make_category):
    windows, scores = make_category({"00000": GOOD[:6], "00001": GOOD[5:]})
    for glob in (windows, scores):
        passed, facts = data_ids_unique(glob)
        assert not passed and facts["duplicated"] == ["w05"]
    windows, _ = make_category({"00000": GOOD[:6], "00001": GOOD[6:]}, category="code")
    assert data_ids_unique(windows)[0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_fail(make_category, bad):
    rows = [*GOOD[:3], ("bad", 0.5, bad, W)]
    _, scores = make_category({"00000": rows})
    passed, facts = scores_finite(scores)
    assert not passed and facts["examples"] == ["bad"]
    _, scores = make_category({"00000": GOOD}, category="code")
    assert scores_finite(scores)[0]


@pytest.mark.parametrize(
    ("ds", "ok"), [(1 + 1e-12, True), (0.0, True), (1.000001, False), (-0.01, False)]
)
def test_ds_must_lie_in_the_unit_interval(make_category, ds, ok):
    _, scores = make_category({"00000": [*GOOD[:3], ("edge", ds, 0.0, W)]})
    passed, facts = ds_in_unit_interval(scores)
    assert passed is ok
    assert facts["outside"] == (0 if ok else 1)


RULES = [
    {"keep_fraction": 0.5},
    {"token_budget": 5 * W + 1},
    {"token_budget": 10**6},
    {"threshold": 0.0},
]


@pytest.mark.parametrize("options", RULES)
def test_a_fresh_selection_follows_its_rule(make_category, tmp_path, options):
    windows, scores = make_category({"00000": GOOD[:6], "00001": GOOD[6:]})
    settings = SelectionSettings.from_options(normalize="minmax", **options)
    summary = write_selected_parquet(
        windows, scores, tmp_path / "sel.parquet", **settings.options()
    )
    passed, facts = selection_follows_rule(tmp_path / "sel.parquet", scores, settings)
    assert passed, facts
    assert facts["kept"] == summary.kept


@pytest.mark.parametrize(
    ("written", "checked"),
    [
        ({"keep_fraction": 0.5}, {"keep_fraction": 0.25}),
        ({"token_budget": 5 * W + 1}, {"token_budget": 3 * W}),
        ({"token_budget": 5 * W + 1}, {"token_budget": 7 * W}),
        ({"threshold": 0.0}, {"threshold": 0.5}),
    ],
)
def test_a_selection_sized_by_another_rule_fails(make_category, tmp_path, written, checked):
    windows, scores = make_category({"00000": GOOD})
    write_selected_parquet(windows, scores, tmp_path / "sel.parquet", **written)
    passed, _ = selection_follows_rule(
        tmp_path / "sel.parquet", scores, SelectionSettings.from_options(**checked)
    )
    assert not passed


def test_a_selection_missing_its_top_window_fails(make_category, tmp_path):
    windows, scores = make_category({"00000": GOOD})
    path = tmp_path / "sel.parquet"
    write_selected_parquet(windows, scores, path)
    table = pq.read_table(path)
    rest = table.filter(pc.greater(table.column("rank"), 1))
    renumbered = rest.set_column(
        rest.schema.get_field_index("rank"), "rank", pc.subtract(rest.column("rank"), 1)
    )
    pq.write_table(renumbered, path)
    passed, facts = selection_follows_rule(path, scores, SelectionSettings())
    assert not passed
    assert facts["max_dropped_lds"] > facts["min_kept_lds"]
