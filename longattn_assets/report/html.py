"""One self-contained HTML page per category: plots, counts, the extremes of the ranking.

Nothing is fetched when the page opens: the plots are PNG data URIs, the CSS is inline and
there is no script, so the file can be mailed, archived or opened from a cluster's disk.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from longattn_assets.report.plots import ds_du_scatter_png, score_histograms
from longattn_assets.selection import duck
from longattn_assets.selection.select import SelectionResult
from longattn_assets.storage import write_text

PREVIEW_CHARS = 600
PREVIEW_LINES = 8
EXTREMES = 10

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots img { width: 560px; height: 320px; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.preview { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: 12px;
           max-width: 640px; }
"""

_ALT = {"scatter": "ds against du, kept and dropped, with the cut"}
_WINDOW_COLUMNS = ("rank", "data_id", "doc_id", "shard", "n_tokens", "ds", "du", "lds")


def load_previews(
    windows_glob: duck.Source, data_ids: Sequence[str], chars: int = PREVIEW_CHARS
) -> dict[str, str]:
    """The first ``chars`` characters of each window's text, read with DuckDB."""
    if not data_ids:
        return {}
    with duck.connect() as con:
        con.register("wanted", pa.table({"data_id": list(data_ids)}))
        rows = con.execute(
            f"SELECT data_id, left(content, {int(chars) + 1}) FROM {duck.parquet(windows_glob)} "
            "SEMI JOIN wanted USING (data_id)"
        ).fetchall()
    return dict(rows)


def render_report(
    category: str,
    result: SelectionResult,
    windows_glob: duck.Source,
    extra_settings: Mapping[str, object] | None = None,
    sections: Sequence[str] = (),
) -> str:
    """The report of one category's selection, its text previews read from ``windows_glob``;
    ``sections`` (HTML) follow the settings."""
    top, bottom = _extremes(result.table)
    ids = top.column("data_id").to_pylist() + bottom.column("data_id").to_pylist()
    previews = load_previews(windows_glob, ids)
    return render_report_html(category, result, previews, extra_settings, sections)


def render_report_html(
    category: str,
    result: SelectionResult,
    previews: Mapping[str, str],
    extra_settings: Mapping[str, object] | None = None,
    sections: Sequence[str] = (),
) -> str:
    summary = result.summary.as_dict()
    settings = {**summary["settings"], **(extra_settings or {})}
    plots = score_histograms(result.table, result.summary.cut_lds)
    plots["scatter"] = ds_du_scatter_png(
        result.table, result.summary.cut_lds, result.summary.settings.alpha
    )
    top, bottom = _extremes(result.table)
    counts = {
        "windows": summary["n"],
        "kept": summary["kept"],
        "dropped": summary["dropped"],
        "tokens kept": summary["tokens_kept"],
        "tokens dropped": summary["tokens_dropped"],
        "cut LDS (last kept)": summary["cut_lds"],
    }
    stats = {
        f"{score} {stat}": value for score in ("ds", "du") for stat, value in summary[score].items()
    }
    title = f"LongABC selection: {html.escape(category)}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{title}</title><style>{_CSS}</style></head><body>",
            f"<h1>{title}</h1>",
            '<div class="plots">',
            *(
                f'<img id="plot-{name}" alt="{_ALT.get(name, "histogram of " + name)}" '
                f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
                for name, png in plots.items()
            ),
            "</div>",
            "<h2>Counts</h2>",
            _key_values(counts),
            "<h2>Scores</h2>",
            _key_values(stats),
            "<h2>Settings</h2>",
            _key_values(settings),
            *sections,
            _browse_hint(category, top.num_rows),
            f"<h2>Top {top.num_rows} windows (highest LDS)</h2>",
            _windows(top, previews),
            f"<h2>Bottom {bottom.num_rows} windows (lowest LDS)</h2>",
            _windows(bottom, previews),
            "</body></html>",
            "",
        ]
    )


def write_report(html_text: str, path: str | os.PathLike[str]) -> Path:
    return write_text(html_text, path)


def _browse_hint(category: str, shown: int) -> str:
    command = f"longattn browse --category {category}"
    return (
        f'<p id="browse">Below are the {shown} windows at each end of the ranking. To walk every window, '
        f"kept and dropped, in LDS order with its full text and its scores per head, run "
        f"<code>{html.escape(command)}</code> where the data is (or <code>longattn browse --windows "
        "... --scores ...</code> over any files).</p>"
    )


def _extremes(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The first and last EXTREMES rows of the ranking, never the same row twice."""
    return table.slice(0, EXTREMES), table.slice(max(table.num_rows - EXTREMES, EXTREMES))


def _key_values(rows: Mapping[str, object]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td class=num>{html.escape(_fmt(v))}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def _windows(table: pa.Table, previews: Mapping[str, str]) -> str:
    head = "".join(f"<th>{c}</th>" for c in _WINDOW_COLUMNS) + "<th>text</th>"
    rows = []
    for row in table.select(list(_WINDOW_COLUMNS)).to_pylist():
        cells = "".join(f"<td class=num>{html.escape(_fmt(row[c]))}</td>" for c in _WINDOW_COLUMNS)
        text = preview(previews.get(row["data_id"], ""))
        rows.append(f"<tr>{cells}<td><div class=preview>{html.escape(text)}</div></td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def preview(text: str, chars: int = PREVIEW_CHARS, lines: int = PREVIEW_LINES) -> str:
    """The start of ``text`` in whole lines (at most ``lines`` and ``chars``), "…" when cut.

    A first line longer than ``chars`` is cut after its last word that fits (or at ``chars``
    when that word would leave less than half of it).
    """
    all_lines = text.split("\n")
    kept: list[str] = []
    used = 0
    for line in all_lines[:lines]:
        used += len(line) + (1 if kept else 0)
        if used > chars:
            break
        kept.append(line)
    if len(kept) == len(all_lines):
        return text
    if not kept:
        first = all_lines[0][:chars]
        space = first.rfind(" ")
        return (first[:space] if space > chars // 2 else first).rstrip() + "…"
    return "\n".join(kept).rstrip() + "\n…"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
