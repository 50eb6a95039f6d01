# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One side of a gate check in a few numbers, the same on the console's check line and in the report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._numbers import is_number


class SideSummary(TypedDict):
    """The services of one role (shadow or main) in one check's window."""

    requests: float | None
    request_rate: float | None
    error_rate: float | None
    latency_p95: float | None


def side_summary(rows: Iterable[Mapping[str, Any]], role: str) -> SideSummary:
    """The lookup's ``services`` rows of ``role`` added up. Several rows of one role are a main behind a
    weighted split: requests and rates add up, the 5xx share is weighted by requests (not the worst row's,
    which a tiny backend would dominate), and the p95 is the slowest one's."""
    own = [row for row in rows if isinstance(row, Mapping) and row.get("role") == role]
    requests = [float(row["requests"]) for row in own if is_number(row.get("requests"))]
    total = sum(requests) if requests else None
    errors = [
        float(row["requests"]) * float(row["error_rate"])
        for row in own
        if is_number(row.get("requests")) and is_number(row.get("error_rate"))
    ]
    p95 = [float(row["latency_p95"]) for row in own if is_number(row.get("latency_p95"))]
    rates = [float(row["request_rate"]) for row in own if is_number(row.get("request_rate"))]
    return {
        "requests": total,
        "request_rate": sum(rates) if rates else None,
        "error_rate": (sum(errors) / total) if errors and total else None,
        "latency_p95": max(p95) if p95 else None,
    }


def side_text(role: str, side: SideSummary) -> str:
    """``shadow 120 req, 0.0% 5xx, p95 12 ms``: the check line's words for one side."""
    requests = round(side["requests"]) if side["requests"] is not None else 0
    rate = f"{100 * side['error_rate']:.1f}% 5xx" if side["error_rate"] is not None else "no 5xx rate"
    latency = f"{1000 * side['latency_p95']:.0f} ms" if side["latency_p95"] is not None else "n/a"
    return f"{role} {requests} req, {rate}, p95 {latency}"
