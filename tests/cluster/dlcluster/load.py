"""Steady, bounded user traffic through Traefik for the demo: a fixed rate for a fixed time, loopback only."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from types import FrameType

from .traffic import send


def run_load(
    base_url: str, host: str, rate: float, seconds: float, report_path: str | None = None
) -> dict[str, object]:
    """Send ``rate`` requests per second for ``seconds`` (or until SIGTERM); return who answered."""
    if rate <= 0 or rate > 500:
        raise ValueError("rate must be between 0 and 500 requests per second")
    stop = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    answered: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    interval = 1.0 / rate
    started = time.monotonic()
    next_at = started
    while not stop and time.monotonic() - started < seconds:
        result = send(base_url, host, 1)
        answered.update(result.bodies)
        statuses.update(result.statuses)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    summary: dict[str, object] = {
        "requests": sum(statuses.values()),
        "seconds": round(time.monotonic() - started, 1),
        "answered_by": dict(answered),
        "statuses": {str(code): count for code, count in statuses.items()},
    }
    if report_path:
        with open(report_path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    return summary
