"""Category-wide score statistics and the normalization N(v) as SQL expressions.

Statistics are taken over every shard of a category at once (never per shard, which is
what the authors' code does by accident: see DESIGN.md 1.3). They are computed with one
DuckDB thread so the floating-point sums run in one fixed order and a rerun gives the
same bits, and then bound into the ranking query as constants. The rows are summed in
data_id order, so the shard count and file order (which decide the read order) do not
change a bit of the statistics either.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import duckdb

from longattn_assets.selection.rules import Normalize


@dataclass(frozen=True)
class ColumnStats:
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class ScoreStats:
    n: int
    tokens: int
    ds: ColumnStats
    du: ColumnStats

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def category_stats(con: duckdb.DuckDBPyConnection, relation: str) -> ScoreStats:
    """n, total tokens and mean / sample std / min / max of ds and du over ``relation``.

    ``relation`` has columns data_id, n_tokens, ds and du.
    """
    con.execute("SET threads = 1")
    try:
        row = con.execute(
            f"""
            SELECT count(*), coalesce(sum(n_tokens), 0),
                   avg(ds), stddev_samp(ds), min(ds), max(ds),
                   avg(du), stddev_samp(du), min(du), max(du)
            FROM (SELECT n_tokens, ds, du FROM {relation} ORDER BY data_id)
            """
        ).fetchall()[0]
    finally:
        con.execute("RESET threads")
    n, tokens = int(row[0]), int(row[1])
    return ScoreStats(n=n, tokens=tokens, ds=ColumnStats(*row[2:6]), du=ColumnStats(*row[6:10]))


def normalized_sql(column: str, method: Normalize, stats: ColumnStats) -> str:
    """N(column) as a SQL expression with the statistics inlined as exact float literals.

    z-score: (v - mean) / sample std. With one window, or all values equal, the std is 0 or
    undefined; every window is then equally typical, so N(v) = 0 for all of them.
    min-max: (v - min) / (max - min); all values equal gives 0.5 (the authors' convention).
    """
    if method == "zscore":
        if stats.std is None or stats.std == 0 or not math.isfinite(stats.std):
            return "0.0::DOUBLE"
        return f"(({column} - {float_sql(stats.mean)}) / {float_sql(stats.std)})"
    if method == "minmax":
        if stats.min is None or stats.max == stats.min:
            return "0.5::DOUBLE"
        return f"(({column} - {float_sql(stats.min)}) / ({float_sql(stats.max)} - {float_sql(stats.min)}))"
    raise ValueError(f"unknown normalization {method!r}")


def float_sql(value: float) -> str:
    # repr round-trips a double exactly (nan and inf included); a bare literal would be
    # read as DECIMAL.
    return f"'{float(value)!r}'::DOUBLE"
