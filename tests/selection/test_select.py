"""The DuckDB selection against an independent plain-Python computation of DESIGN.md 1.3."""

from __future__ import annotations

import math
import random
import statistics

import pyarrow.parquet as pq
import pytest

from longattn_assets.selection.rules import SelectionSettings, fraction_keep_count
from longattn_assets.selection.select import select_category, write_selected_parquet


def reference_selection(scores, normalize, alpha, rule, value):
    """Ranked data_ids, the kept set and each LDS, with statistics and math only."""
    ids = [s[0] for s in scores]

    def norm(values):
        if normalize == "zscore":
            if len(values) < 2 or statistics.stdev(values) == 0:
                return [0.0] * len(values)
            mean, std = statistics.mean(values), statistics.stdev(values)
            return [(v - mean) / std for v in values]
        low, high = min(values), max(values)
        if low == high:
            return [0.5] * len(values)
        return [(v - low) / (high - low) for v in values]

    ds_norm, du_norm = norm([s[1] for s in scores]), norm([s[2] for s in scores])
    lds = [a - alpha * b for a, b in zip(ds_norm, du_norm, strict=True)]
    order = sorted(range(len(scores)), key=lambda i: (-lds[i], ids[i]))
    if rule == "fraction":
        kept = order[: math.floor(len(scores) * value)]
    elif rule == "token_budget":
        kept, total = [], 0
        for i in order:
            if total >= value:
                break
            kept.append(i)
            total += scores[i][3]
    else:
        kept = [i for i in order if lds[i] >= value]
    return [ids[i] for i in order], {ids[i] for i in kept}, dict(zip(ids, lds, strict=True))


def random_scores(seed: int, n: int) -> list[tuple[str, float, float, int]]:
    rng = random.Random(seed)
    rows = [(f"w{i}", rng.random(), rng.random() * 0.01, rng.randint(50, 150)) for i in range(n)]
    # A tie group: equal (ds, du) give equal LDS, so only data_id can order them, and
    # "w10" < "w3" < "w7" as strings, unlike their insertion order.
    for i in (3, 7, 10):
        rows[i] = (f"w{i}", 0.5, 0.005, 100)
    return rows


def as_rule_kwargs(rule, value):
    return {{"fraction": "keep_fraction"}.get(rule, rule): value}


def assert_matches_reference(result, scores, normalize, alpha, rule, value):
    ranked, kept, lds = reference_selection(scores, normalize, alpha, rule, value)
    table = result.table.to_pydict()
    assert table["data_id"] == ranked
    assert table["rank"] == list(range(1, len(scores) + 1))
    assert {d for d, s in zip(table["data_id"], table["selected"], strict=True) if s} == kept
    for data_id, value_lds in zip(table["data_id"], table["lds"], strict=True):
        assert value_lds == pytest.approx(lds[data_id], rel=1e-9, abs=1e-12)
    assert result.summary.kept == len(kept)
    tokens = {s[0]: s[3] for s in scores}
    assert result.summary.tokens_kept == sum(tokens[d] for d in kept)
    assert result.summary.tokens_dropped == sum(tokens.values()) - result.summary.tokens_kept


SCORES = random_scores(seed=7, n=30)
TOTAL_TOKENS = sum(s[3] for s in SCORES)


@pytest.mark.parametrize("normalize", ["zscore", "minmax"])
@pytest.mark.parametrize(
    ("rule", "value"),
    [
        ("fraction", 0.0),
        ("fraction", 0.3),
        ("fraction", 0.5),
        ("fraction", 1.0),
        ("token_budget", 0),
        ("token_budget", 1),
        ("token_budget", TOTAL_TOKENS // 3),
        ("token_budget", TOTAL_TOKENS + 1),
    ],
)
def test_selection_equals_plain_python(make_category, normalize, rule, value):
    windows, scores = make_category({"00000": SCORES[:17], "00001": SCORES[17:]})
    result = select_category(windows, scores, normalize=normalize, **as_rule_kwargs(rule, value))
    assert_matches_reference(result, SCORES, normalize, 0.5, rule, value)


@pytest.mark.parametrize("normalize", ["zscore", "minmax"])
@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_threshold_selection_equals_plain_python(make_category, normalize, alpha):
    windows, scores = make_category({"00000": SCORES[:10], "00001": SCORES[10:]})
    _, _, lds = reference_selection(SCORES, normalize, alpha, "fraction", 0.5)
    ordered = sorted(lds.values(), reverse=True)
    # Midway between two neighbours, so a last-bit difference cannot move a window across.
    threshold = (ordered[11] + ordered[12]) / 2
    result = select_category(windows, scores, normalize=normalize, alpha=alpha, threshold=threshold)
    assert_matches_reference(result, SCORES, normalize, alpha, "threshold", threshold)
    assert result.summary.kept == 12
    assert result.summary.cut_lds == pytest.approx(ordered[11])


def test_tie_group_is_ordered_by_data_id(make_category):
    windows, scores = make_category({"00000": SCORES})
    ranked = select_category(windows, scores).table.column("data_id").to_pylist()
    positions = [ranked.index(d) for d in ("w10", "w3", "w7")]
    assert positions == sorted(positions)
    assert positions[2] - positions[0] == 2


@pytest.mark.parametrize("normalize", ["zscore", "minmax"])
def test_all_equal_scores_normalize_to_a_constant_and_keep_by_data_id(make_category, normalize):
    same = [(f"x{i:02d}", 0.25, 0.001, 10) for i in range(9)]
    windows, scores = make_category({"00000": same[:4], "00001": same[4:]})
    result = select_category(windows, scores, normalize=normalize)
    expected_norm = 0.0 if normalize == "zscore" else 0.5
    assert set(result.table.column("ds_norm").to_pylist()) == {expected_norm}
    assert set(result.table.column("du_norm").to_pylist()) == {expected_norm}
    kept = [
        d
        for d, s in zip(
            *result.table.select(["data_id", "selected"]).to_pydict().values(), strict=True
        )
        if s
    ]
    assert kept == ["x00", "x01", "x02", "x03"]
    assert_matches_reference(result, same, normalize, 0.5, "fraction", 0.5)


def test_single_window_has_zscore_zero_and_fraction_keeps_none(make_category):
    windows, scores = make_category({"00000": [("only", 0.3, 0.001, 10)]})
    result = select_category(windows, scores)
    assert result.table.column("lds").to_pylist() == [0.0]
    assert result.summary.kept == 0 and result.summary.cut_lds is None


def test_normalization_is_global_over_shards_not_per_shard(make_category, tmp_path):
    # Shard 00000 holds only high-ds windows and shard 00001 only low-ds ones: globally the
    # top half is all of shard 00000; normalized per shard, each shard would give up half.
    high = [(f"h{i}", 0.9 + i * 0.01, 0.001 * (i % 2), 10) for i in range(4)]
    low = [(f"l{i}", 0.1 + i * 0.01, 0.001 * (i % 2), 10) for i in range(4)]
    windows, scores = make_category({"00000": high, "00001": low})
    result = select_category(windows, scores)
    kept = {
        d
        for d, s in zip(
            *result.table.select(["data_id", "selected"]).to_pydict().values(), strict=True
        )
        if s
    }
    assert kept == {d for d, *_ in high}
    assert_matches_reference(result, high + low, "zscore", 0.5, "fraction", 0.5)

    per_shard = set()
    for shard in ("00000", "00001"):
        one = select_category(
            windows.replace("shard=*", f"shard={shard}"),
            scores.replace("shard=*", f"shard={shard}"),
        )
        per_shard |= {
            d
            for d, s in zip(
                *one.table.select(["data_id", "selected"]).to_pydict().values(), strict=True
            )
            if s
        }
    assert len(per_shard) == len(kept)
    assert per_shard != kept


def test_selected_parquet_holds_kept_windows_with_text_in_rank_order(make_category, tmp_path):
    windows, scores = make_category({"00000": SCORES[:17], "00001": SCORES[17:]})
    result = select_category(windows, scores, token_budget=TOTAL_TOKENS // 2)
    summary = write_selected_parquet(
        windows, scores, tmp_path / "sel.parquet", token_budget=TOTAL_TOKENS // 2
    )
    written = pq.read_table(tmp_path / "sel.parquet")
    kept = result.table.filter(result.table.column("selected"))
    assert written.column_names == [
        "data_id", "doc_id", "category", "shard", "window_index", "token_start",
        "n_tokens", "content", "ds", "du", "lds", "rank",
    ]  # fmt: skip
    assert written.column("data_id").to_pylist() == kept.column("data_id").to_pylist()
    assert written.column("lds").to_pylist() == kept.column("lds").to_pylist()
    assert written.column("content").to_pylist() == [
        f"text of {d} <b>&</b> ünïcode" for d in kept.column("data_id").to_pylist()
    ]
    assert set(written.column("category").to_pylist()) == {"book"}
    assert summary == result.summary


def test_selected_parquet_is_byte_identical_across_runs(make_category, tmp_path):
    windows, scores = make_category({"00000": SCORES[:17], "00001": SCORES[17:]})
    write_selected_parquet(windows, scores, tmp_path / "a.parquet")
    write_selected_parquet(windows, scores, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_exactly_one_rule_with_top_half_by_default():
    assert SelectionSettings.from_options() == SelectionSettings("zscore", 0.5, "fraction", 0.5)
    with pytest.raises(ValueError, match="exactly one"):
        SelectionSettings.from_options(keep_fraction=0.5, token_budget=10)
    with pytest.raises(ValueError):
        SelectionSettings.from_options(keep_fraction=1.5)
    with pytest.raises(ValueError):
        SelectionSettings.from_options(normalize="rank")


def test_settings_round_trip_through_options():
    settings = SelectionSettings.from_options(normalize="minmax", alpha=1.0, token_budget=99)
    assert SelectionSettings.from_options(**settings.options()) == settings


def test_fraction_reads_the_decimal_as_written():
    assert fraction_keep_count(100, 0.29) == 29
    assert fraction_keep_count(7, 0.5) == 3


def test_missing_inputs_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no Parquet files"):
        select_category(str(tmp_path / "w/*.parquet"), str(tmp_path / "s/*.parquet"))
