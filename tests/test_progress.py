"""Long steps report on the terminal at a fixed cadence, whether or not a unit of work ended."""

import re
import time

from longattn_assets.progress import PrintedProgress, TerminalProgress, WindowCount, duration


def test_progress_lines_come_on_time_while_one_unit_of_work_takes_longer():
    said: list[str] = []
    count = WindowCount("book|00003", "scored", total=100, tokens=204_800)
    with PrintedProgress(said.append), TerminalProgress(count.line, every_s=0.1):
        count.update(25)
        time.sleep(0.65)  # one slow batch: no callback in between, lines still come
    assert len(said) >= 4
    assert all(
        re.fullmatch(r"    book\|00003: scored 25/100 windows, [\d,]+ tokens/s, \d+s elapsed, ETA \d+s", line)
        for line in said
    ), said


def test_the_rate_counts_tokens_and_the_time_left_follows_it():
    count = WindowCount("code|00000", "scored", total=10, tokens=20_480)
    count.started -= 4.0  # 4 s ago
    count.update(2)
    assert count.line() == "code|00000: scored 2/10 windows, 1,024 tokens/s, 4s elapsed, ETA 16s"
    assert (duration(59), duration(61), duration(3725)) == ("59s", "1m01s", "1h02m")


def test_nothing_is_printed_without_a_listener(capfd):
    """In Dagster's own processes (dagster dev, dagster job execute) the run's log has the lines."""
    with TerminalProgress(lambda: "a progress line", every_s=0.05):
        time.sleep(0.3)
    assert capfd.readouterr() == ("", "")
