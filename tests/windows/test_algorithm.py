"""Algorithm 1 against a literal reading of the paper's pseudo-code."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longattn_assets.windows.algorithm import window_starts


def paper_sliding_window(n: int, w: int) -> list[tuple[int, int]]:
    """Algorithm 1 as printed (Appendix A), returning the [start, end) spans."""
    if n < w:
        return []
    left, right, spans = 0, n, []
    while right - left > 3 * w:
        spans.append((left, left + w))
        left += w
        spans.append((right - w, right))
        right -= w
    delta = right - left
    if w < delta <= 2 * w:
        spans += [(left, left + w), (right - w, right)]
    elif 2 * w < delta <= 3 * w:
        middle = left + (delta - w) // 2
        spans += [(left, left + w), (middle, middle + w), (right - w, right)]
    return spans


def spans(n: int, w: int) -> list[tuple[int, int]]:
    return [(s, s + w) for s in window_starts(n, w)]


W = 100


@pytest.mark.parametrize(
    "n, expected",
    [
        (W - 1, []),
        (W, []),  # d == W is not > W: the reference cuts nothing
        (W + 1, [(0, 100), (1, 101)]),  # two overlapping windows
        (2 * W, [(0, 100), (100, 200)]),
        (2 * W + 1, [(0, 100), (50, 150), (101, 201)]),
        (3 * W, [(0, 100), (100, 200), (200, 300)]),
        (3 * W + 1, [(0, 100), (100, 200), (101, 201), (201, 301)]),  # d = W + 1 inside
        (4 * W, [(0, 100), (100, 200), (200, 300), (300, 400)]),
    ],
)
def test_edges_match_the_paper(n, expected):
    assert spans(n, W) == expected
    assert sorted(paper_sliding_window(n, W)) == expected


def test_ten_windows_and_seven_tokens():
    n = 10 * W + 7
    result = spans(n, W)
    assert result == sorted(paper_sliding_window(n, W))
    # four front/back pairs, then d = 2W + 7 gives front, middle and back
    assert len(result) == 11
    assert result[0] == (0, W) and result[-1] == (n - W, n)
    assert (453, 553) in result  # the middle window: 400 + (207 - 100) // 2


def test_starts_are_ascending_and_unique():
    for n in range(W, 12 * W, 37):
        starts = window_starts(n, W)
        assert starts == sorted(set(starts))


def test_window_size_must_be_positive():
    with pytest.raises(ValueError):
        window_starts(10, 0)


@given(n=st.integers(min_value=0, max_value=50_000), w=st.integers(min_value=1, max_value=4_000))
def test_property_windows_inside_document_and_equal_to_rule(n, w):
    result = spans(n, w)
    assert all(0 <= s and e <= n and e - s == w for s, e in result)
    assert result == sorted(paper_sliding_window(n, w))
    if n > w:
        assert result[0][0] == 0 and result[-1][1] == n  # both ends are always covered
