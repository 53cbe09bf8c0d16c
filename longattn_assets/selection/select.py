"""LongABC selection of one category in DuckDB: normalize, score LDS, rank, keep by one rule.

LDS = N(ds) - alpha * N(du), ranked by LDS descending with ties broken by data_id, so the
same scores always give the same selection. Everything runs as SQL over the category's
shard globs; no Python loop touches the rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from longattn_assets.selection import duck
from longattn_assets.selection.normalize import (
    ScoreStats,
    category_stats,
    float_sql,
    normalized_sql,
)
from longattn_assets.selection.rules import SelectionSettings, fraction_keep_count
from longattn_assets.storage import atomic_path
from longattn_assets.validation import check_heads_within

RANKED_COLUMNS = (
    "data_id", "doc_id", "shard", "n_tokens", "ds", "du",
    "ds_norm", "du_norm", "lds", "rank", "selected",
)  # fmt: skip
SELECTED_COLUMNS = (
    "data_id", "doc_id", "category", "shard", "window_index", "token_start",
    "n_tokens", "content", "ds", "du", "lds", "rank",
)  # fmt: skip


@dataclass(frozen=True)
class SelectionSummary:
    settings: SelectionSettings
    stats: ScoreStats
    kept: int
    tokens_kept: int
    tokens_dropped: int
    cut_lds: float | None  # LDS of the last kept window; None when nothing is kept

    @property
    def n(self) -> int:
        return self.stats.n

    def as_dict(self) -> dict[str, object]:
        return {
            "settings": self.settings.as_dict(),
            "n": self.n,
            "kept": self.kept,
            "dropped": self.n - self.kept,
            "tokens_kept": self.tokens_kept,
            "tokens_dropped": self.tokens_dropped,
            "cut_lds": self.cut_lds,
            "ds": self.stats.as_dict()["ds"],
            "du": self.stats.as_dict()["du"],
        }


@dataclass(frozen=True)
class SelectionResult:
    table: pa.Table  # RANKED_COLUMNS, one row per window, in rank order
    summary: SelectionSummary


def select_category(
    windows_glob: duck.Source,
    scores_glob: duck.Source,
    *,
    normalize: str = "zscore",
    alpha: float = 0.5,
    keep_fraction: float | None = None,
    token_budget: int | None = None,
    threshold: float | None = None,
    heads: Sequence[int] | None = None,
    memory_limit: str = duck.DEFAULT_MEMORY_LIMIT,
) -> SelectionResult:
    """Rank every window of a category and mark the kept ones (keep_fraction 0.5 by default)."""
    settings = SelectionSettings.from_options(
        normalize=normalize, alpha=alpha, keep_fraction=keep_fraction,
        token_budget=token_budget, threshold=threshold, heads=heads,
    )  # fmt: skip
    with duck.connect(memory_limit) as con:
        summary = rank_windows(con, windows_glob, scores_glob, settings)
        columns = ", ".join(RANKED_COLUMNS)
        table = con.sql(f"SELECT {columns} FROM ranked ORDER BY rank").to_arrow_table()
    return SelectionResult(table=table, summary=summary)


def windows_category(windows_glob: duck.Source) -> str:
    """The category the windows files name (several joined with '+', sorted)."""
    with duck.connect() as con:
        rows = con.execute(
            f"SELECT DISTINCT category FROM {duck.parquet(windows_glob)} ORDER BY category"
        ).fetchall()
    return "+".join(str(row[0]) for row in rows)


def write_selected_parquet(
    windows_glob: duck.Source,
    scores_glob: duck.Source,
    path: str | os.PathLike[str],
    *,
    normalize: str = "zscore",
    alpha: float = 0.5,
    keep_fraction: float | None = None,
    token_budget: int | None = None,
    threshold: float | None = None,
    heads: Sequence[int] | None = None,
    memory_limit: str = duck.DEFAULT_MEMORY_LIMIT,
) -> SelectionSummary:
    """Write the kept windows with their text (SELECTED_COLUMNS, rank order) to ``path``.

    The rows never pass through Python: DuckDB ranks under its memory limit (spilling to
    disk), joins the text of the kept windows only, and COPYs to a temporary file that is
    renamed into place. The final COPY runs on one thread so the file is byte-identical
    from run to run.
    """
    settings = SelectionSettings.from_options(
        normalize=normalize, alpha=alpha, keep_fraction=keep_fraction,
        token_budget=token_budget, threshold=threshold, heads=heads,
    )  # fmt: skip
    with duck.connect(memory_limit) as con:
        summary = rank_windows(con, windows_glob, scores_glob, settings)
        con.execute(
            f"""
            CREATE TEMP TABLE selected_windows AS
            SELECT r.data_id, r.doc_id, w.category, r.shard, w.window_index, w.token_start,
                   r.n_tokens, w.content, r.ds, r.du, r.lds, r.rank
            FROM ranked r
            JOIN (SELECT data_id, category, window_index, token_start, content
                  FROM {duck.parquet(windows_glob)}) w USING (data_id)
            WHERE r.selected
            """
        )
        with atomic_path(path) as tmp:
            con.execute("SET threads = 1")
            con.execute(
                f"COPY (SELECT * FROM selected_windows ORDER BY rank) TO {duck.sql_literal(str(tmp))} "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
    return summary


def rank_windows(
    con: duckdb.DuckDBPyConnection,
    windows_glob: duck.Source,
    scores_glob: duck.Source,
    settings: SelectionSettings,
) -> SelectionSummary:
    """Create the temp table ``ranked`` (RANKED_COLUMNS) on ``con`` and summarise it."""
    create_scores_view(con, scores_glob, settings.heads)
    stats = category_stats(con, "category_scores")
    ds_norm = normalized_sql("s.ds", settings.normalize, stats.ds)
    du_norm = normalized_sql("s.du", settings.normalize, stats.du)
    con.execute(
        f"""
        CREATE TEMP TABLE ranked AS
        WITH normed AS (
            SELECT s.data_id, w.doc_id, w.shard, s.n_tokens, s.ds, s.du,
                   {ds_norm} AS ds_norm, {du_norm} AS du_norm
            FROM category_scores s
            LEFT JOIN (SELECT data_id, doc_id, shard FROM {duck.parquet(windows_glob)}) w
                USING (data_id)
        ), ordered AS (
            SELECT *,
                   row_number() OVER by_lds AS rank,
                   sum(n_tokens) OVER (by_lds ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
                       AS tokens_through
            FROM (SELECT *, ds_norm - {float_sql(settings.alpha)} * du_norm AS lds FROM normed)
            WINDOW by_lds AS (ORDER BY lds DESC, data_id ASC)
        )
        SELECT data_id, doc_id, shard, n_tokens, ds, du, ds_norm, du_norm, lds, rank,
               {_kept_sql(settings, stats.n)} AS selected
        FROM ordered
        """
    )
    kept, tokens_kept, tokens_dropped, cut = con.execute(
        """
        SELECT count(*) FILTER (WHERE selected),
               coalesce(sum(n_tokens) FILTER (WHERE selected), 0),
               coalesce(sum(n_tokens) FILTER (WHERE NOT selected), 0),
               min(lds) FILTER (WHERE selected)
        FROM ranked
        """
    ).fetchall()[0]
    return SelectionSummary(
        settings=settings, stats=stats, kept=int(kept),
        tokens_kept=int(tokens_kept), tokens_dropped=int(tokens_dropped), cut_lds=cut,
    )  # fmt: skip


def create_scores_view(
    con: duckdb.DuckDBPyConnection, scores_glob: str, heads: Sequence[int] | None
) -> None:
    """The temp view ``category_scores`` (data_id, n_tokens, ds, du) that selection ranks.

    ds and du are the stored means over every head, or with ``heads`` the mean of those
    heads' stored values, summed in the order given.
    """
    source = duck.parquet(scores_glob)
    if heads:
        check_heads_within(heads, head_count(con, scores_glob))
    con.execute(
        "CREATE TEMP VIEW category_scores AS SELECT data_id, n_tokens, "
        f"{head_mean_sql('ds', heads)} AS ds, {head_mean_sql('du', heads)} AS du FROM {source}"
    )


def head_count(con: duckdb.DuckDBPyConnection, scores_glob: duck.Source) -> int | None:
    """Query heads every score row has (None: no rows)."""
    return con.execute(f"SELECT min(len(ds_heads)) FROM {duck.parquet(scores_glob)}").fetchall()[0][0]


def head_mean_sql(score: str, heads: Sequence[int] | None) -> str:
    if not heads:
        return score
    terms = " + ".join(f"{score}_heads[{int(h) + 1}]::DOUBLE" for h in heads)
    return f"(({terms}) / {len(heads)})"


def _kept_sql(settings: SelectionSettings, n: int) -> str:
    if settings.rule == "fraction":
        return f"rank <= {fraction_keep_count(n, settings.value)}"
    if settings.rule == "token_budget":
        # Keep a window while the tokens before it have not yet reached the budget: the
        # shortest prefix that reaches it, or everything when the budget exceeds the total.
        return f"tokens_through - n_tokens < {int(settings.value)}"
    return f"lds >= {float_sql(settings.value)}"
