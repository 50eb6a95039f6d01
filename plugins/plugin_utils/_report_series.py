# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shadow's and the main's traffic over time, for the launch report's charts.

Six range queries (three metrics, each for the shadow's and the main's Traefik ``service`` labels), the
same series the gate judges: request rate, 5xx share and p95 latency over ``window``. The step is
chosen so a chart has at most ``MAX_POINTS`` points, whatever the length of the launch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import ROLE_MAIN, ROLE_SHADOW
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_queries import service_matcher
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._promql import add_matchers

MAX_POINTS = 240
# The two services a launch report compares: the shadow (the copy) and main (what users get).
ROLES = (ROLE_SHADOW, ROLE_MAIN)
_REQUESTS = "traefik_service_requests_total"
_BUCKETS = "traefik_service_request_duration_seconds_bucket"


def series_queries(labels: Sequence[str], window: str, selector: str = "") -> dict[str, str]:
    """The three PromQL expressions for one role's Traefik ``service`` labels."""
    matcher = service_matcher(labels)
    rate = f"sum(rate({_REQUESTS}{{{matcher}}}[{window}]))"
    errors = f'sum(rate({_REQUESTS}{{{matcher},code=~"5.."}}[{window}]))'
    queries = {
        "request_rate": rate,
        # "or vector(0)" keeps the series when no request failed; with no traffic the share is NaN.
        "error_rate": f"(({errors}) or (0 * {rate})) / {rate}",
        "latency_p95": f"histogram_quantile(0.95, sum by (le) (rate({_BUCKETS}{{{matcher}}}[{window}])))",
    }
    return {key: add_matchers(query, selector) if selector else query for key, query in queries.items()}


def step_seconds(start: float, end: float) -> float:
    """At most MAX_POINTS points, at least one a second."""
    return max(1.0, math.ceil((end - start) / MAX_POINTS))


def labels_by_role(targets: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """The route's shadow and main labels, from the anomaly targets (other routes are left out)."""
    found: dict[str, list[str]] = {role: [] for role in ROLES}
    for target in targets:
        role = target.get("role")
        label = target.get("service_label")
        if role in found and label and label not in found[role]:
            found[str(role)].append(str(label))
    return found


def fetch_chart_series(
    query_range: Callable[[str, float, float, float], list[dict[str, Any]]],
    labels: Mapping[str, Sequence[str]],
    *,
    start: float,
    end: float,
    window: str,
    selector: str = "",
) -> dict[str, Any]:
    """``{metric: {role: [[t, v], ...]}, "start", "end", "step", "labels"}``; a role without labels has no series."""
    step = step_seconds(start, end)
    result: dict[str, Any] = {key: {} for key in ("request_rate", "error_rate", "latency_p95")}
    for role in ROLES:
        if not labels.get(role):
            continue
        for key, promql in series_queries(labels[role], window, selector).items():
            result[key][role] = points(query_range(promql, start, end, step))
    result.update(start=start, end=end, step=step, labels={role: list(labels.get(role) or []) for role in ROLES})
    return result


def points(matrix: Sequence[Mapping[str, Any]]) -> list[list[float | None]]:
    """The values of the one series a sum returns, NaN and Inf as None."""
    if not matrix:
        return []
    values = matrix[0].get("values") or []
    out: list[list[float | None]] = []
    for pair in values:
        try:
            number = float(pair[1])
        except (TypeError, ValueError, IndexError):
            continue
        out.append([float(pair[0]), number if math.isfinite(number) else None])
    return out
