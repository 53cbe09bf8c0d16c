"""Progress reports for long steps: the run's log, and a line on the terminal at least every 20 s.

A step reports to Dagster's log through :class:`Throttle` (at most one line every few
seconds, after a unit of work). A unit can take longer than that (a batch of windows on a
loaded CPU), so the terminal gets the step's latest line from a timer instead
(:class:`TerminalProgress`): it logs to the ``longattn_assets.progress`` logger, which
``longattn demo`` and ``longattn score`` print and which Dagster's own processes leave
unhandled (the run's log already has the lines there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

TERMINAL_LOGGER = "longattn_assets.progress"
TERMINAL_EVERY_S = 20.0


class Throttle(Generic[T]):
    """Call ``emit`` with a message at most once per ``every_s`` seconds (and when forced)."""

    def __init__(self, emit: Callable[[T], None], every_s: float = 10.0):
        self.emit, self.every_s = emit, every_s
        self._last = float("-inf")

    def __call__(self, message: T, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            self.emit(message)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class WindowCount:
    """Windows done of a total, with the rate in tokens per second and the time left.

    Windows of a shard have the same length, so tokens follow from the windows done.
    """

    def __init__(self, label: str, verb: str, total: int, tokens: int):
        self.label, self.verb, self.total = label, verb, total
        self.tokens_per_window = tokens / total if total else 0.0
        self.done = 0
        self.started = time.monotonic()

    def update(self, done: int) -> None:
        self.done = done

    def line(self) -> str:
        seconds = time.monotonic() - self.started
        rate = self.done / seconds if seconds > 0 else 0.0
        left = f"ETA {duration((self.total - self.done) / rate)}" if rate > 0 else "ETA ?"
        return (
            f"{self.label}: {self.verb} {self.done:,}/{self.total:,} windows, "
            f"{rate * self.tokens_per_window:,.0f} tokens/s, {duration(seconds)} elapsed, {left}"
        )


class TerminalProgress:
    """While the block runs, log ``line()`` (a step's latest progress) on the terminal logger
    every ``every_s`` seconds, whether or not a unit of work ended in between."""

    def __init__(self, line: Callable[[], str], every_s: float | None = None):
        self.line = line
        self.every_s = TERMINAL_EVERY_S if every_s is None else every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="longattn-progress", daemon=True)

    def _run(self) -> None:
        logger = logging.getLogger(TERMINAL_LOGGER)
        while not self._stop.wait(self.every_s):
            logger.info(self.line())

    def __enter__(self) -> TerminalProgress:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


class LatestLine:
    """The latest progress line of a step that reports whole lines (ingest, windowing)."""

    def __init__(self, first: str):
        self.text = first

    def set(self, text: str) -> None:
        self.text = text

    def __call__(self) -> str:
        return self.text


class PrintedProgress(logging.Handler):
    """Hands every line of the terminal logger to ``say`` (indented) while installed."""

    def __init__(self, say: Callable[[str], None], indent: str = "    "):
        super().__init__(logging.INFO)
        self.say, self.indent = say, indent

    def emit(self, record: logging.LogRecord) -> None:
        self.say(self.indent + record.getMessage())

    def __enter__(self) -> PrintedProgress:
        logger = logging.getLogger(TERMINAL_LOGGER)
        self._saved = logger.level, logger.propagate
        logger.addHandler(self)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # said once, here, not again by a root handler
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger(TERMINAL_LOGGER)
        logger.removeHandler(self)
        logger.setLevel(self._saved[0])
        logger.propagate = self._saved[1]
