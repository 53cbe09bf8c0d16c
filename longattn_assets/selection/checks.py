"""Data-quality checks over the category globs, each a pure DuckDB query.

Every check returns ``(passed, metadata)``; the metadata says what was measured and names
a few offending data_ids, so a failed check can be acted on without rerunning anything.
"""

from __future__ import annotations

import os

import duckdb

from longattn_assets.selection import duck
from longattn_assets.selection.normalize import category_stats, float_sql, normalized_sql
from longattn_assets.selection.rules import SelectionSettings, fraction_keep_count
from longattn_assets.selection.select import create_scores_view

CheckResult = tuple[bool, dict[str, object]]
_EXAMPLES = 5


def windows_have_length(windows_glob: duck.Source, window_size: int) -> CheckResult:
    """Every window has exactly ``window_size`` tokens, and its token_ids agree with n_tokens."""
    with duck.connect() as con:
        n, wrong_length, wrong_ids, examples = _one_row(
            con,
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE n_tokens IS DISTINCT FROM {int(window_size)}),
                   count(*) FILTER (WHERE len(token_ids) IS DISTINCT FROM n_tokens),
                   list(data_id ORDER BY data_id) FILTER (
                       WHERE n_tokens IS DISTINCT FROM {int(window_size)}
                          OR len(token_ids) IS DISTINCT FROM n_tokens)[1:{_EXAMPLES}]
            FROM {duck.parquet(windows_glob)}
            """,
        )
    passed = wrong_length == 0 and wrong_ids == 0
    return passed, {
        "windows": n, "window_size": window_size, "wrong_n_tokens": wrong_length,
        "token_ids_not_n_tokens": wrong_ids, "examples": examples or [],
    }  # fmt: skip


def data_ids_unique(glob: duck.Source) -> CheckResult:
    """No data_id appears twice across the category's shards."""
    with duck.connect() as con:
        n, distinct, examples = _one_row(
            con,
            f"""
            SELECT (SELECT count(*) FROM {duck.parquet(glob)}),
                   (SELECT count(DISTINCT data_id) FROM {duck.parquet(glob)}),
                   (SELECT list(data_id ORDER BY data_id)[1:{_EXAMPLES}] FROM (
                        SELECT data_id FROM {duck.parquet(glob)}
                        GROUP BY data_id HAVING count(*) > 1))
            """,
        )
    return n == distinct, {"rows": n, "distinct_data_ids": distinct, "duplicated": examples or []}


def scores_finite(scores_glob: duck.Source) -> CheckResult:
    """No ds or du is missing, NaN or infinite."""
    bad = "(ds IS NULL OR du IS NULL OR NOT isfinite(ds) OR NOT isfinite(du))"
    with duck.connect() as con:
        n, count, examples = _one_row(
            con,
            f"""
            SELECT count(*), count(*) FILTER (WHERE {bad}),
                   list(data_id ORDER BY data_id) FILTER (WHERE {bad})[1:{_EXAMPLES}]
            FROM {duck.parquet(scores_glob)}
            """,
        )
    return count == 0, {"windows": n, "not_finite": count, "examples": examples or []}


def one_model(scores_glob: duck.Source) -> CheckResult:
    """Every score of the category comes from the same model weights and rope settings.

    Scores of different models are on different scales; normalizing them together would
    rank windows by which model scored them.
    """
    with duck.connect() as con:
        rows = con.execute(
            f"SELECT model, count(*) FROM {duck.parquet(scores_glob)} GROUP BY model ORDER BY model"
        ).fetchall()
    return len(rows) <= 1, {"models": {model: count for model, count in rows}}


def ds_in_unit_interval(scores_glob: duck.Source, slack: float = 1e-9) -> CheckResult:
    """ds is a share of attention mass over L rows, so it lies in [0, 1] (up to rounding)."""
    outside = f"(ds < {-slack!r} OR ds > {1 + slack!r})"
    with duck.connect() as con:
        n, count, low, high, examples = _one_row(
            con,
            f"""
            SELECT count(*), count(*) FILTER (WHERE {outside}), min(ds), max(ds),
                   list(data_id ORDER BY data_id) FILTER (WHERE {outside})[1:{_EXAMPLES}]
            FROM {duck.parquet(scores_glob)}
            """,
        )
    return count == 0, {
        "windows": n, "outside": count, "ds_min": low, "ds_max": high, "examples": examples or [],
    }  # fmt: skip


def selection_follows_rule(
    selected: str | os.PathLike[str], scores_glob: duck.Source, settings: SelectionSettings
) -> CheckResult:
    """The selected file is the top of the category's LDS ranking, sized as its rule says.

    LDS is recomputed from the scores for every window, so a selection that is stale or was
    cut from another ranking fails: no dropped window may rank above a kept one, ranks run
    1..kept, and the count follows the rule (fraction: floor(n * f); budget: the shortest
    prefix reaching it, or everything; threshold: kept exactly when LDS >= x).
    """
    with duck.connect() as con:
        create_scores_view(con, scores_glob, settings.heads)
        stats = category_stats(con, "category_scores")
        ds_norm = normalized_sql("ds", settings.normalize, stats.ds)
        du_norm = normalized_sql("du", settings.normalize, stats.du)
        source = f"read_parquet({duck.sql_literal(str(selected))})"
        row = _one_row(
            con,
            f"""
            WITH lds AS (
                SELECT data_id, {ds_norm} - {float_sql(settings.alpha)} * {du_norm} AS lds
                FROM category_scores
            ), kept AS (SELECT data_id, n_tokens, rank FROM {source})
            SELECT (SELECT count(*) FROM kept),
                   (SELECT count(DISTINCT rank) FILTER (WHERE rank BETWEEN 1 AND (SELECT count(*) FROM kept)) FROM kept),
                   (SELECT coalesce(sum(n_tokens), 0) FROM kept),
                   (SELECT n_tokens FROM kept ORDER BY rank DESC LIMIT 1),
                   (SELECT min(lds) FROM lds SEMI JOIN kept USING (data_id)),
                   (SELECT max(lds) FROM lds ANTI JOIN kept USING (data_id)),
                   (SELECT count(*) FROM kept ANTI JOIN lds USING (data_id))
            """,
        )
    kept, ranks_ok, tokens, last_tokens, min_kept, max_dropped, unknown = row
    facts: dict[str, object] = {
        "rule": settings.rule, "value": settings.value, "windows": stats.n, "kept": kept,
        "tokens_kept": tokens, "min_kept_lds": min_kept, "max_dropped_lds": max_dropped,
        "kept_not_in_scores": unknown,
    }  # fmt: skip
    ordered = ranks_ok == kept and unknown == 0
    ordered = ordered and (min_kept is None or max_dropped is None or max_dropped <= min_kept)
    if settings.rule == "fraction":
        expected = fraction_keep_count(stats.n, settings.value)
        facts["expected_kept"] = expected
        sized = kept == expected
    elif settings.rule == "token_budget":
        budget = int(settings.value)
        reaches = tokens >= budget or kept == stats.n
        shortest = kept == 0 or tokens - last_tokens < budget
        sized = reaches and shortest
    else:
        x = float(settings.value)
        sized = (min_kept is None or min_kept >= x) and (max_dropped is None or max_dropped < x)
    return ordered and sized, facts


def _one_row(con: duckdb.DuckDBPyConnection, query: str) -> tuple:
    return con.execute(query).fetchall()[0]
