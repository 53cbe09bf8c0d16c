"""Algorithm 1 of the LongAttn paper: which token spans of a document become windows."""

from __future__ import annotations


def window_starts(n_tokens: int, window: int) -> list[int]:
    """Start offsets of the windows Algorithm 1 cuts from ``n_tokens`` tokens, ascending.

    Front and back windows are taken while more than three windows' worth remains; the
    rest (``d = r - l``) gives two windows when ``W < d <= 2W`` and three (front, centred,
    back) when ``2W < d <= 3W``. As in the reference, ``n == W`` gives no window
    (``d == W`` is not ``> W``) and ``n == W + 1`` gives two overlapping windows.
    """
    if window <= 0:
        raise ValueError(f"window size must be positive, got {window}")
    if n_tokens < window:
        return []
    front: list[int] = []
    back: list[int] = []
    left, right = 0, n_tokens
    while right - left > 3 * window:
        front.append(left)
        back.append(right - window)
        left += window
        right -= window
    remaining = right - left
    if window < remaining <= 2 * window:
        front.append(left)
        back.append(right - window)
    elif 2 * window < remaining <= 3 * window:
        front.append(left)
        front.append(left + (remaining - window) // 2)
        back.append(right - window)
    return front + back[::-1]
