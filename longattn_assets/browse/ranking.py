"""A category's windows in LDS order, kept and dropped, read one page or one window at a time.

The ranking is computed once, as the selection computes it (``rank_windows``), into a DuckDB
table on disk sorted by rank, with each window's file and row in the windowed_chunks and
scored_chunks Parquet files. A page is then a range scan of that table, and a window's text
and per-head scores are read from its own row of its own file: no request touches more
than the rows it shows, so ten million windows cost disk, not memory or page size.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from longattn_assets.selection import duck
from longattn_assets.selection.rules import SelectionSettings
from longattn_assets.selection.select import SelectionSummary, rank_windows

ROW_COLUMNS = ("rank", "data_id", "doc_id", "shard", "n_tokens", "ds", "du", "lds", "selected")


@dataclass(frozen=True)
class WindowRow:
    rank: int
    data_id: str
    doc_id: str | None
    shard: str | None
    n_tokens: int
    ds: float
    du: float
    lds: float
    selected: bool


@dataclass(frozen=True)
class WindowDetail:
    row: WindowRow
    content: str
    ds_heads: list[float]
    du_heads: list[float]


class CategoryRanking:
    """Every window of one category, ranked by LDS (ties by data_id), served by rank."""

    def __init__(
        self,
        windows_glob: duck.Source,
        scores_glob: duck.Source,
        settings: SelectionSettings,
        *,
        memory_limit: str = duck.DEFAULT_MEMORY_LIMIT,
        work_dir: str | None = None,
    ):
        self._dir = tempfile.TemporaryDirectory(prefix="longattn-browse-", dir=work_dir)
        self._con = duck.connect(
            memory_limit, spill_dir=self._dir.name, database=str(Path(self._dir.name) / "ranking.duckdb")
        )
        self._lock = threading.Lock()
        self.summary: SelectionSummary = rank_windows(self._con, windows_glob, scores_glob, settings)
        self._con.execute(
            f"""
            CREATE TABLE ranking AS
            SELECT {", ".join("r." + c for c in ROW_COLUMNS)}, w.wfile, w.wrow, s.sfile, s.srow
            FROM ranked r
            JOIN (SELECT data_id, filename AS wfile, file_row_number AS wrow
                  FROM {_rows(windows_glob)}) w USING (data_id)
            JOIN (SELECT data_id, filename AS sfile, file_row_number AS srow
                  FROM {_rows(scores_glob)}) s USING (data_id)
            ORDER BY r.rank
            """
        )
        self._con.execute("DROP TABLE ranked")
        self._con.execute("CHECKPOINT")
        self.n = self.summary.n

    def close(self) -> None:
        self._con.close()
        self._dir.cleanup()

    def page(self, first_rank: int, size: int) -> list[WindowRow]:
        """Ranks ``first_rank`` .. ``first_rank + size - 1`` (1-based), in rank order."""
        rows = self._query(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM ranking WHERE rank >= ? AND rank < ? ORDER BY rank",
            [first_rank, first_rank + size],
        )
        return [WindowRow(*row) for row in rows]

    def rank_of(self, data_id: str) -> int | None:
        rows = self._query("SELECT rank FROM ranking WHERE data_id = ?", [data_id])
        return int(rows[0][0]) if rows else None

    def window(self, rank: int) -> WindowDetail | None:
        """The window at ``rank`` with its full text and per-head ds and du."""
        found = self._query(
            f"SELECT {', '.join(ROW_COLUMNS)}, wfile, wrow, sfile, srow FROM ranking WHERE rank = ?",
            [rank],
        )
        if not found:
            return None
        *values, wfile, wrow, sfile, srow = found[0]
        (content,) = self._row_of(wfile, wrow, "content")
        ds_heads, du_heads = self._row_of(sfile, srow, "ds_heads, du_heads")
        return WindowDetail(WindowRow(*values), content, list(ds_heads), list(du_heads))

    def previews(self, ranks: list[int], chars: int) -> dict[int, str]:
        """The first ``chars`` characters of the windows at ``ranks``, read row by row."""
        if not ranks:
            return {}
        placeholders = ", ".join("?" for _ in ranks)
        located = self._query(
            f"SELECT rank, wfile, wrow FROM ranking WHERE rank IN ({placeholders})", list(ranks)
        )
        by_file: dict[str, dict[int, int]] = {}
        for rank, wfile, wrow in located:
            by_file.setdefault(wfile, {})[int(wrow)] = int(rank)
        previews: dict[int, str] = {}
        for wfile, rank_by_row in by_file.items():
            rows = ", ".join(str(r) for r in rank_by_row)
            for wrow, text in self._query(
                f"SELECT file_row_number, left(content, {int(chars)}) "
                f"FROM read_parquet(?, file_row_number = true) WHERE file_row_number IN ({rows})",
                [wfile],
            ):
                previews[rank_by_row[int(wrow)]] = text
        return previews

    def _row_of(self, path: str, row: int, columns: str) -> tuple:
        rows = self._query(
            f"SELECT {columns} FROM read_parquet(?, file_row_number = true) WHERE file_row_number = ?",
            [path, row],
        )
        if not rows:
            raise LookupError(f"row {row} of {path} is gone: the files changed since the ranking")
        return rows[0]

    def _query(self, sql: str, params: list) -> list[tuple]:
        with self._lock:  # one DuckDB connection, shared by the server's threads
            return self._con.execute(sql, params).fetchall()


def _rows(glob: duck.Source) -> str:
    """Every row of the files ``glob`` matches, with its file name and row number."""
    source = duck.parquet(glob)
    return source[:-1] + ", filename = true, file_row_number = true)"
