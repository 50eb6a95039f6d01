"""Measured numbers on pytest's terminal even without ``-s`` (they go into docs/compatibility.md)."""

from __future__ import annotations

import pytest


def report_line(request: pytest.FixtureRequest, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
