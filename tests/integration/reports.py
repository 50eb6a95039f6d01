"""Asking the traffic lookup's anomaly check again and again: until a report says what a test waits for, or a
number of times in a row."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Report = dict[str, Any]


def poll_report(
    ask: Callable[[], Report],
    wanted: Callable[[Report], bool],
    what: str,
    timeout: float,
    show: Callable[[Report], str],
) -> Report:
    """The first report of ``ask()`` (once a second) that is ``wanted``; an AssertionError showing the last one
    (``show``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        report = ask()
        if wanted(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f}s; last report:\n{show(report)}")
        time.sleep(1.0)


def reports_in_a_row(ask: Callable[[], Report], count: int, pause: float = 2.0) -> list[Report]:
    """``count`` reports of ``ask()``, ``pause`` seconds apart."""
    reports = []
    for _check in range(count):
        reports.append(ask())
        time.sleep(pause)
    return reports
