"""Progress reports for long steps: at most one log line every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


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
