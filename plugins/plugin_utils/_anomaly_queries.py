# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PromQL for anomaly checks, and parsers from Prometheus' JSON into per-service series (pure).

The number of queries never depends on the number of services: each query selects every service of
interest at once (a regex matcher, or no service filter at all cluster-wide) and aggregates
``by (service, ...)``. History comes from ONE range query per metric with ``step = window`` over
``history_windows + 1`` points: each point is ``increase(...[window])`` ending at that point, so the
points are back-to-back, non-overlapping windows and the last one is the current window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import ServiceSeries, WindowCounts
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import AnomalySettings
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_stats import HistogramBucket

REQUESTS_METRIC = "traefik_service_requests_total"
DURATION_METRIC = "traefik_service_request_duration_seconds"
# Traefik's own services (api@internal, prometheus@internal, ...) are not workloads to judge.
INTERNAL_SERVICES_MATCHER = 'service!~".*@internal"'
_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


@dataclass(frozen=True)
class AnomalyQueries:
    """Every query of one check. ``range_queries`` run over [start, end] with ``step``; the bucket
    query is an instant query at ``end``."""

    requests_by_code: str
    latency_sum: str
    latency_count: str
    latency_buckets: str
    start: float
    end: float
    step: float

    @property
    def range_queries(self) -> tuple[str, str, str]:
        return (self.requests_by_code, self.latency_sum, self.latency_count)

    @property
    def count(self) -> int:
        return len(self.range_queries) + 1


def escape_regex(text: str) -> str:
    """Escape RE2 metacharacters so a service label matches literally inside ``=~``."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in text)


def promql_string(text: str) -> str:
    """A double-quoted PromQL string literal for ``text``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def service_matcher(service_labels: Iterable[str] | None, patterns: Iterable[str] = ()) -> str:
    """``service=~"a|b"`` for the given labels (and regular expressions ``patterns``, as they are), or the
    cluster-wide matcher for ``None``."""
    if service_labels is None:
        return INTERNAL_SERVICES_MATCHER
    labels = sorted(set(service_labels))
    if not labels:
        raise ValueError("service_matcher needs at least one service label (or None for all services)")
    alternatives = [escape_regex(label) for label in labels] + sorted(set(patterns))
    return "service=~" + promql_string("|".join(alternatives))


def build_queries(
    service_labels: Iterable[str] | None,
    settings: AnomalySettings,
    end: float,
    extra_matchers: str = "",
    methods: Iterable[str] = (),
    patterns: Iterable[str] = (),
) -> AnomalyQueries:
    """The four queries of a check ending at ``end`` (Unix seconds). ``extra_matchers`` (the
    ``prometheus_selector``, e.g. ``cluster="prod-eu"``) narrow every query to one set of series. ``methods``
    (the mirror's mirror_methods) narrow them to requests of those HTTP methods (Traefik's ``method`` label), so
    that the main's traffic is the same subset as the shadow's copies."""
    selector = service_matcher(service_labels, patterns) + (f",{extra_matchers}" if extra_matchers else "")
    chosen = sorted({str(method).upper() for method in methods})
    if chosen:
        selector += ",method=~" + promql_string("|".join(escape_regex(method) for method in chosen))
    window = settings.window

    def increase_by(metric: str, by: str, extra_matchers: str = "") -> str:
        return f"sum by ({by}) (increase({metric}{{{selector}{extra_matchers}}}[{window}]))"

    def counted_by(metric: str, by: str) -> str:
        # increase() starts a series at its first sample, so what a series counted before Prometheus first
        # scraped it is lost: Traefik creates the code="500" series at the first error and the shadow's series
        # at the first copy, and those first counts are the ones a launch needs (the gate saw a 5% error share
        # as 2%). A series that did not exist one window ago started at 0 inside the window: its first sample
        # (its lowest value) is added back.
        series = f"{metric}{{{selector}}}"
        new_series = f"(min_over_time({series}[{window}]) unless {series} offset {window})"
        return f"sum by ({by}) ((increase({series}[{window}]) + {new_series}) or increase({series}[{window}]))"

    # Milliseconds are Prometheus' resolution: rounding keeps every evaluation time exact.
    end = round(end, 3)
    return AnomalyQueries(
        requests_by_code=counted_by(REQUESTS_METRIC, "service, code"),
        latency_sum=increase_by(f"{DURATION_METRIC}_sum", "service"),
        latency_count=increase_by(f"{DURATION_METRIC}_count", "service"),
        latency_buckets=increase_by(f"{DURATION_METRIC}_bucket", "service, le"),
        start=round(end - settings.history_windows * settings.window_seconds, 3),
        end=end,
        step=settings.window_seconds,
    )


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def sample_value(raw: Any) -> float | None:
    """Prometheus sends values as strings; NaN (0/0) and infinities carry no usable count."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def window_index(timestamp: Any, queries: AnomalyQueries) -> int | None:
    """Which window (0 = oldest, history_windows = current) a range-query point belongs to."""
    try:
        offset = (float(timestamp) - queries.start) / queries.step
    except (TypeError, ValueError):
        return None
    index = round(offset)
    windows = window_count(queries)
    return index if abs(offset - index) < 0.01 and 0 <= index < windows else None


def window_count(queries: AnomalyQueries) -> int:
    return round((queries.end - queries.start) / queries.step) + 1


def parse_matrix_by_service(
    result: Sequence[Mapping[str, Any]], queries: AnomalyQueries
) -> dict[str, list[float | None]]:
    """``{service: [value per window]}`` from a range-query matrix, adding series of the same service
    (e.g. one per status code). ``None`` where the service had no point in that window."""
    per_service: dict[str, list[float | None]] = {}
    for series in result:
        service = _service_of(series)
        if service is None:
            continue
        values = per_service.setdefault(service, [None] * window_count(queries))
        for index, value in _points(series, queries):
            previous = values[index]
            values[index] = value if previous is None else previous + value
    return per_service


def parse_requests_and_errors(
    result: Sequence[Mapping[str, Any]],
    queries: AnomalyQueries,
    is_client_error: Callable[[str], bool] = lambda code: False,
) -> tuple[dict[str, list[float | None]], dict[str, list[float | None]], dict[str, list[float | None]]]:
    """Split the ``sum by (service, code)`` matrix into requests (all codes), errors (5xx) and client
    errors (the codes ``is_client_error`` accepts)."""
    requests = parse_matrix_by_service(result, queries)
    return (
        requests,
        _per_window_of(requests, result, queries, lambda series: _code_of(series).startswith("5")),
        _per_window_of(requests, result, queries, lambda series: is_client_error(_code_of(series))),
    )


def _per_window_of(
    requests: Mapping[str, Sequence[float | None]],
    result: Sequence[Mapping[str, Any]],
    queries: AnomalyQueries,
    wanted: Callable[[Mapping[str, Any]], bool],
) -> dict[str, list[float | None]]:
    counted = parse_matrix_by_service([series for series in result if _code_of(series) and wanted(series)], queries)
    # A window where the service answered but had no series of those codes at all had zero of them.
    return {
        service: [
            None if count is None else (_at(counted.get(service, []), index) or 0.0)
            for index, count in enumerate(counts)
        ]
        for service, counts in requests.items()
    }


def parse_buckets(result: Sequence[Mapping[str, Any]]) -> dict[str, tuple[HistogramBucket, ...]]:
    """``{service: buckets}`` from the instant ``sum by (service, le)`` vector."""
    counts: dict[str, dict[float, float]] = {}
    for series in result:
        service = _service_of(series)
        bound = sample_value(series.get("metric", {}).get("le")) if service is not None else None
        upper = math.inf if _is_inf_label(series) else bound
        value = _instant_value(series)
        if service is None or upper is None or value is None:
            continue
        per_bound = counts.setdefault(service, {})
        per_bound[upper] = per_bound.get(upper, 0.0) + value
    return {
        service: tuple(HistogramBucket(bound, count) for bound, count in sorted(per_bound.items()))
        for service, per_bound in counts.items()
    }


def assemble_series(
    queries: AnomalyQueries,
    requests_by_code: Sequence[Mapping[str, Any]],
    latency_sum: Sequence[Mapping[str, Any]],
    latency_count: Sequence[Mapping[str, Any]],
    latency_buckets: Sequence[Mapping[str, Any]],
    is_client_error: Callable[[str], bool] = lambda code: False,
) -> dict[str, ServiceSeries]:
    """Combine the four query results into one ``ServiceSeries`` per service seen in the requests."""
    requests, errors, client_errors = parse_requests_and_errors(requests_by_code, queries, is_client_error)
    sums = parse_matrix_by_service(latency_sum, queries)
    counts = parse_matrix_by_service(latency_count, queries)
    buckets = parse_buckets(latency_buckets)
    series: dict[str, ServiceSeries] = {}
    for service, request_counts in requests.items():
        windows = tuple(
            _window(
                request_counts,
                errors[service],
                client_errors[service],
                sums.get(service, []),
                counts.get(service, []),
                index,
            )
            for index in range(len(request_counts))
        )
        series[service] = ServiceSeries(service, windows, buckets.get(service, ()))
    return series


def _window(
    requests: Sequence[float | None],
    errors: Sequence[float | None],
    client_errors: Sequence[float | None],
    sums: Sequence[float | None],
    counts: Sequence[float | None],
    index: int,
) -> WindowCounts | None:
    request_count = requests[index]
    if request_count is None:
        return None
    return WindowCounts(
        requests=request_count,
        errors=_at(errors, index) or 0.0,
        client_errors=_at(client_errors, index) or 0.0,
        latency_sum=_at(sums, index),
        latency_count=_at(counts, index),
    )


def _points(series: Mapping[str, Any], queries: AnomalyQueries) -> Iterable[tuple[int, float]]:
    for point in series.get("values") or []:
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            continue
        index = window_index(point[0], queries)
        value = sample_value(point[1])
        if index is not None and value is not None:
            yield index, value


def _instant_value(series: Mapping[str, Any]) -> float | None:
    point = series.get("value")
    if not isinstance(point, (list, tuple)) or len(point) != 2:
        return None
    return sample_value(point[1])


def _service_of(series: Mapping[str, Any]) -> str | None:
    metric = series.get("metric")
    service = metric.get("service") if isinstance(metric, Mapping) else None
    return service if isinstance(service, str) and service else None


def _code_of(series: Mapping[str, Any]) -> str:
    """The series' status code, or "" when it has none that is three digits."""
    code = str(series.get("metric", {}).get("code", ""))
    return code if len(code) == 3 and code.isdigit() else ""


def _is_inf_label(series: Mapping[str, Any]) -> bool:
    return str(series.get("metric", {}).get("le", "")).strip() in ("+Inf", "Inf", "inf", "+inf")


def _at(values: Sequence[float | None], index: int) -> float | None:
    return values[index] if 0 <= index < len(values) else None
