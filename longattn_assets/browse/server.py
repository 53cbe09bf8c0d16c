"""``longattn browse``: the viewer over one category's ranking, on the standard library's HTTP server.

Routes: ``/ranks?from=N`` (a page of ranks), ``/window?rank=N`` (one window: scores per
head, full text), ``/find?q=<rank or data_id>`` (jump), ``/`` (the first page). Every page
is plain HTML built on the server from the rows it shows.
"""

from __future__ import annotations

from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from longattn_assets.browse import pages
from longattn_assets.browse.ranking import CategoryRanking

PAGE_SIZE = 50


def make_server(
    ranking: CategoryRanking, category: str, host: str = "127.0.0.1", port: int = 8765,
    page_size: int = PAGE_SIZE,
) -> ThreadingHTTPServer:  # fmt: skip
    """A server (not yet serving) for ``ranking``; port 0 picks a free port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path in ("/", "/ranks"):
                    self._ranks(_int(query.get("from", "1")))
                elif url.path == "/window":
                    self._window(_int(query.get("rank", "")))
                elif url.path == "/find":
                    self._find(query.get("q", "").strip())
                else:
                    self._send(HTTPStatus.NOT_FOUND, pages.message_page(category, ranking.summary, "no such page"))
            except ValueError as exc:
                self._send(HTTPStatus.BAD_REQUEST, pages.message_page(category, ranking.summary, str(exc)))

        def _ranks(self, first: int) -> None:
            first = min(max(1, first), max(1, ranking.n))
            rows = ranking.page(first, page_size)
            previews = ranking.previews([r.rank for r in rows], pages.PREVIEW_CHARS)
            self._send(HTTPStatus.OK, pages.ranks_page(category, ranking.summary, rows, previews, first, page_size))

        def _window(self, rank: int) -> None:
            window = ranking.window(rank)
            if window is None:
                message = f"no window at rank {rank:,}: ranks run from 1 to {ranking.n:,}"
                self._send(HTTPStatus.NOT_FOUND, pages.message_page(category, ranking.summary, message))
            else:
                self._send(HTTPStatus.OK, pages.window_page(category, ranking.summary, window, page_size))

        def _find(self, q: str) -> None:
            rank = int(q.replace(",", "")) if q.replace(",", "").isdigit() else ranking.rank_of(q)
            if rank is None:
                message = f"no window with data_id {q!r} in {category}"
                self._send(HTTPStatus.NOT_FOUND, pages.message_page(category, ranking.summary, message))
            else:
                self.send_response(HTTPStatus.SEE_OTHER)
                self.send_header("Location", f"/window?{urlencode({'rank': rank})}")
                self.end_headers()

        def _send(self, status: HTTPStatus, body: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # one line per request would bury the address the command printed

    return ThreadingHTTPServer((host, port), Handler)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"not a rank: {text!r}") from None
