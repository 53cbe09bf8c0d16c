"""DuckDB connections and Parquet sources for the selection queries.

Every query reads the category's shards through one source: the list of the current
partition set's files (what the assets pass), or a glob (the ``longattn`` commands). The connection has a memory
limit and a spill folder so ranking ten million windows stays bounded in memory.
"""

from __future__ import annotations

import glob as globlib
import tempfile
from collections.abc import Sequence

import duckdb

from ..validation import check_variable

Source = str | Sequence[str]  # a glob, or a list of files

DEFAULT_MEMORY_LIMIT = check_variable("LONGATTN_DUCKDB_MEMORY", "duckdb_memory", "2GB")


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


def parquet(source: Source) -> str:
    """A ``read_parquet`` call over a glob or a list of files; fails clearly when nothing matches.

    Hive partitioning is off: the shard files carry their own category/shard columns, and
    DuckDB would otherwise cast a shard key like ``00003`` to the integer 3.
    """
    if isinstance(source, str):
        if not globlib.glob(source):
            raise FileNotFoundError(f"no Parquet files match {source}")
        files = sql_literal(source)
    else:
        if not source:
            raise FileNotFoundError("no Parquet files to read")
        files = "[" + ", ".join(sql_literal(str(path)) for path in source) + "]"
    return f"read_parquet({files}, hive_partitioning = false)"
