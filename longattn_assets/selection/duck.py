"""DuckDB connections and Parquet sources for the selection queries.

Every query reads the category's shards through one glob. The connection has a memory
limit and a spill folder so ranking ten million windows stays bounded in memory.
"""

from __future__ import annotations

import glob as globlib
import os
import tempfile

import duckdb

DEFAULT_MEMORY_LIMIT = os.environ.get("LONGATTN_DUCKDB_MEMORY", "2GB")


def connect(
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    spill_dir: str | None = None,
    database: str = ":memory:",
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(database)
    con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")
    con.execute(f"SET temp_directory = {sql_literal(spill_dir or tempfile.gettempdir())}")
    return con


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parquet(glob: str) -> str:
    """A ``read_parquet`` call over ``glob``; fails clearly when nothing matches.

    Hive partitioning is off: the shard files carry their own category/shard columns, and
    DuckDB would otherwise cast a shard key like ``00003`` to the integer 3.
    """
    if not globlib.glob(glob):
        raise FileNotFoundError(f"no Parquet files match {glob}")
    return f"read_parquet({sql_literal(glob)}, hive_partitioning = false)"
