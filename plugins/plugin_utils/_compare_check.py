# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gate's difference check: the share of compared copies whose answers the comparator found different.

The comparator (``roles/shadow_launch/files/darklaunch_compare.py``, docs/comparator.md) exports
``darklaunch_compare_requests_total{result, darklaunch_route}``; this module builds the two instant
queries (results by kind, the top differing paths), and judges them. Pure: no I/O.

Fail-closed like the built-in checks: a check never passes without enough compared requests (``same``,
``different`` and ``noise``; ``skipped`` and ``error`` are not comparisons) in the window, and no series at
all (the comparator is not scraped, or started without ``--route``) is inconclusive, never ok. A query
Prometheus refuses is the whole check's error, as for the built-in queries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_metrics import (
    CHECK_ANOMALOUS,
    CHECK_INCONCLUSIVE,
    CHECK_OK,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    VERDICT_ANOMALOUS,
    VERDICT_INSUFFICIENT,
    VERDICT_OK,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._numbers import finite_number
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._promql import add_matchers

CHECK_NAME = "difference_rate"
REQUESTS_METRIC = "darklaunch_compare_requests_total"
DIFFERENCES_METRIC = "darklaunch_compare_differences_total"
ROUTE_LABEL = "darklaunch_route"
RESULTS = ("same", "different", "noise", "skipped", "error")
COMPARED = ("same", "different", "noise")
TOP_PATHS = 5
DEFAULT_MAX_DIFF_RATE = 0.01

# The difference check's verdicts: a custom check's (ok, anomalous, inconclusive).
OK = CHECK_OK
ANOMALOUS = CHECK_ANOMALOUS
INCONCLUSIVE = CHECK_INCONCLUSIVE
REASON_NO_DATA = "no_data"
REASON_TOO_FEW = "too_few_compared"


@dataclass(frozen=True)
class CompareSettings:
    max_diff_rate: float
    min_requests: int
    namespace: str
    route: str

    @property
    def route_value(self) -> str:
        return f"{self.namespace}/{self.route}"

    def selector(self) -> str:
        value = self.route_value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{ROUTE_LABEL}="{value}"'


def parse_compare(raw: Any, min_requests: int, route: Mapping[str, Any] | None) -> CompareSettings | None:
    """The ``compare_max_diff_rate`` option (None or "": the check is off) for a route, checked."""
    if raw in (None, ""):
        return None
    rate = finite_number(raw)
    if rate is None or not 0 <= rate < 1:
        raise DarklaunchError(
            f"compare_max_diff_rate must be a share from 0 to below 1 (0.01 is 1%), got {raw!r}.",
            field="compare_max_diff_rate",
        )
    if not route or not route.get("route"):
        raise DarklaunchError(
            "compare_max_diff_rate judges a route's comparator: give route_name and namespace.",
            field="compare_max_diff_rate",
        )
    return CompareSettings(rate, int(min_requests), str(route.get("namespace") or ""), str(route["route"]))


def queries(settings: CompareSettings, window: str, extra_matchers: str = "") -> tuple[str, str]:
    """The results by kind, and the paths that differed most, over the window (two instant queries)."""
    selector = settings.selector()
    results = f"sum by (result) (increase({REQUESTS_METRIC}{{{selector}}}[{window}]))"
    differences = f"{DIFFERENCES_METRIC}{{{selector}}}"
    # A path's series appears with its first difference, and increase() never counts a series' first sample:
    # a path first seen within the window counts with its whole value (it did not exist a window ago).
    paths = (
        f"topk({TOP_PATHS}, (sum by (path) (increase({differences}[{window}])) > 0) "
        f"or sum by (path) ({differences} unless {differences} offset {window}))"
    )
    return add_matchers(results, extra_matchers), add_matchers(paths, extra_matchers)


def by_label(result: Sequence[Mapping[str, Any]], label: str) -> dict[str, float]:
    """An instant vector as {label value: value}; NaN and unparsable values are left out."""
    values: dict[str, float] = {}
    for series in result:
        point = series.get("value")
        try:
            value = float(point[1]) if isinstance(point, (list, tuple)) and len(point) == 2 else math.nan
        except (TypeError, ValueError):
            value = math.nan
        name = str((series.get("metric") or {}).get(label, ""))
        if math.isfinite(value):
            values[name] = values.get(name, 0.0) + value
    return values


def judge(
    settings: CompareSettings, window: str, results: Mapping[str, float], paths: Mapping[str, float]
) -> dict[str, Any]:
    """The check's row: ``verdict`` ok / anomalous / inconclusive, the counts, the top paths, a message."""
    counts = {result: round(results.get(result, 0.0), 1) for result in RESULTS}
    compared = sum(results.get(result, 0.0) for result in COMPARED)
    top = [
        {"path": path, "requests": round(count, 1)}
        for path, count in sorted(paths.items(), key=lambda item: (-item[1], item[0]))[:TOP_PATHS]
    ]
    row: dict[str, Any] = {
        "name": CHECK_NAME,
        "rule": {"max_diff_rate": settings.max_diff_rate},
        "value": None,
        "compared": round(compared, 1),
        "min_requests": settings.min_requests,
        "results": counts,
        "top_paths": top,
        "route": settings.route_value,
        "window": window,
    }
    not_compared = f"{counts['skipped']:g} skipped, {counts['error']:g} errors"
    if not results:
        row.update(
            verdict=INCONCLUSIVE,
            reason=REASON_NO_DATA,
            message=(
                f"no {REQUESTS_METRIC} series with {settings.selector()} in Prometheus over the last {window}: "
                f"is the comparator scraped, and started with --route {settings.route_value}?"
            ),
        )
        return row
    if compared < max(settings.min_requests, 1):
        row.update(
            verdict=INCONCLUSIVE,
            reason=REASON_TOO_FEW,
            message=(
                f"only {compared:.0f} compared requests over the last {window} (at least {settings.min_requests} "
                f"needed; {not_compared})"
            ),
        )
        return row
    rate = results.get("different", 0.0) / compared
    row["value"] = round(rate, 6)
    failed = rate > settings.max_diff_rate
    where = f"; most at {top[0]['path']}" if top and results.get("different", 0.0) > 0 else ""
    row["verdict"] = ANOMALOUS if failed else OK
    row["message"] = (
        f"{CHECK_NAME} is {rate:.2%} ({counts['different']:g} of {compared:.0f} compared answers differ from the "
        f"main's{where}; {counts['noise']:g} noise, {not_compared}), {'above' if failed else 'within'} "
        f"max_diff_rate {settings.max_diff_rate:.2%}"
    )
    return row


def combine(verdict: str, summary: str, row: Mapping[str, Any]) -> tuple[str, str]:
    """The answer's verdict once the difference check is added: anomalous wins; an inconclusive check keeps an
    otherwise ok answer from passing (``insufficient_data``)."""
    if row.get("verdict") == ANOMALOUS:
        if verdict == VERDICT_ANOMALOUS:
            return verdict, f"{summary} Also the difference check: {row['message']}."
        return VERDICT_ANOMALOUS, f"Difference check: {row['message']}. Built-in checks: {summary}"
    if row.get("verdict") == INCONCLUSIVE:
        lead = f"difference check inconclusive ({row.get('reason')}), {row['message']}"
        if verdict == VERDICT_OK:
            return VERDICT_INSUFFICIENT, f"Not judged: {lead}. Built-in checks: {summary}"
        return verdict, f"{summary} Also {lead}."
    return verdict, summary
