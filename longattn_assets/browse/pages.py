"""The viewer's HTML: a page of ranks, one window, and the header they share. No script."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from longattn_assets.browse.ranking import WindowDetail, WindowRow
from longattn_assets.selection.select import SelectionSummary

PREVIEW_CHARS = 160

_CSS = """
body { font-family: system-ui, sans-serif; margin: 20px; color: #222; }
h1 { font-size: 20px; margin: 0 0 6px; } .meta { color: #555; font-size: 13px; }
nav { margin: 12px 0; display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.kept td.state { color: #1a9850; font-weight: 600; } tr.dropped td.state { color: #d73027; }
.preview { font-family: ui-monospace, monospace; font-size: 12px; white-space: nowrap; overflow: hidden;
           text-overflow: ellipsis; max-width: 520px; }
pre.text { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; background: #fafafa;
           border: 1px solid #ddd; padding: 10px; }
"""


def ranks_page(
    category: str, summary: SelectionSummary, rows: Sequence[WindowRow], previews: Mapping[int, str],
    first: int, size: int,
) -> str:  # fmt: skip
    body = [
        "<table><tr><th>rank</th><th></th><th>data_id</th><th>doc_id</th><th>shard</th>"
        "<th>tokens</th><th>ds</th><th>du</th><th>LDS</th><th>text</th></tr>"
    ]
    for row in rows:
        state = "kept" if row.selected else "dropped"
        link = _href("/window", rank=row.rank)
        text = previews.get(row.rank, "").replace("\n", " ⏎ ")
        body.append(
            f'<tr class="{state}"><td class=num><a href="{link}">{row.rank:,}</a></td>'
            f'<td class=state>{state}</td><td><a href="{link}">{_e(row.data_id)}</a></td>'
            f"<td>{_e(row.doc_id)}</td><td>{_e(row.shard)}</td><td class=num>{row.n_tokens:,}</td>"
            f"<td class=num>{row.ds:.6g}</td><td class=num>{row.du:.6g}</td>"
            f"<td class=num>{row.lds:.6g}</td><td><div class=preview>{_e(text)}</div></td></tr>"
        )
    body.append("</table>")
    last_first = max(1, summary.n - size + 1)
    nav = _nav(
        [
            ("first", _href("/ranks", **{"from": 1}) if first > 1 else None),
            ("previous", _href("/ranks", **{"from": max(1, first - size)}) if first > 1 else None),
            ("next", _href("/ranks", **{"from": first + size}) if first + size <= summary.n else None),
            ("last", _href("/ranks", **{"from": last_first}) if first < last_first else None),
        ]
    )
    shown = f"ranks {first:,}–{min(first + size - 1, summary.n):,} of {summary.n:,}"
    return _page(category, summary, f"{category}: {shown}", [nav, *body, nav])


def window_page(category: str, summary: SelectionSummary, window: WindowDetail, size: int) -> str:
    row = window.row
    state = "kept" if row.selected else "dropped"
    facts = {
        "rank": f"{row.rank:,} of {summary.n:,} ({state})", "data_id": row.data_id,
        "doc_id": row.doc_id, "shard": row.shard, "tokens": f"{row.n_tokens:,}",
        "ds (mean over heads)": f"{row.ds:.6g}", "du (mean over heads)": f"{row.du:.6g}",
        "LDS": f"{row.lds:.6g}",
    }  # fmt: skip
    heads = "".join(
        f"<tr><td class=num>{h}</td><td class=num>{ds:.6g}</td><td class=num>{du:.6g}</td></tr>"
        for h, (ds, du) in enumerate(zip(window.ds_heads, window.du_heads))
    )
    page_first = (row.rank - 1) // size * size + 1
    nav = _nav(
        [
            ("previous window", _href("/window", rank=row.rank - 1) if row.rank > 1 else None),
            ("next window", _href("/window", rank=row.rank + 1) if row.rank < summary.n else None),
            ("back to its page", _href("/ranks", **{"from": page_first})),
        ]
    )
    body = [
        nav,
        "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items()) + "</table>",
        "<h2>Per head</h2><table><tr><th>head</th><th>ds</th><th>du</th></tr>" + heads + "</table>",
        f'<h2>Text ({len(window.content):,} characters)</h2><pre class="text" id="text">{_e(window.content)}</pre>',
        nav,
    ]  # fmt: skip
    return _page(category, summary, f"{category}: window {row.rank:,}", body)


def message_page(category: str, summary: SelectionSummary, message: str) -> str:
    return _page(category, summary, category, [f"<p>{_e(message)}</p>"])


def _page(category: str, summary: SelectionSummary, title: str, body: Sequence[str]) -> str:
    settings = summary.settings
    meta = (
        f"{summary.n:,} windows, {summary.kept:,} kept ({settings.rule} {settings.value:g}, "
        f"{settings.normalize}, alpha {settings.alpha:g}); cut LDS "
        f"{'none' if summary.cut_lds is None else format(summary.cut_lds, '.6g')}"
    )
    find = (
        '<form action="/find" method="get">rank or data_id '
        '<input name="q" size="44" autofocus> <button type="submit">go</button></form>'
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{_e(title)}</h1>",
            f'<div class="meta">LongABC windows of {_e(category)} in LDS order: {_e(meta)}</div>',
            f"<nav>{find}</nav>",
            *body,
            "</body></html>",
            "",
        ]
    )


def _nav(links: Sequence[tuple[str, str | None]]) -> str:
    items = (f'<a href="{href}" data-nav="{label}">{label}</a>' if href else f"<span>{label}</span>" for label, href in links)
    return "<nav>" + " ".join(items) + "</nav>"


def _href(path: str, **query: object) -> str:
    return html.escape(f"{path}?{urlencode(query)}")


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))
