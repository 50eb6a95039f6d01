# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run an anomaly check: build the queries, ask Prometheus, parse, evaluate.

The Prometheus client is duck-typed (``PrometheusQuerier``) so tests and other callers can hand in
anything with ``query`` and ``query_range``; the statistics live in ``_anomaly``.
"""

from __future__ import annotations

import math
import time as time_module
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import ROLE_MAIN, ROLE_SHADOW
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils import _compare_check
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly import evaluate
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_aliases import (
    fill_history,
    history_patterns,
    parse_patterns,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_metrics import (
    CheckContext,
    MetricCheck,
    combine_verdict,
    parse_metric_checks,
    run_metric_check,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import ROLES, ServiceSeries, Target
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_queries import (
    AnomalyQueries,
    assemble_series,
    build_queries,
    escape_regex,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import AnomalySettings
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._prometheus import PrometheusQueryError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._promql import parse_selector


class PrometheusQuerier(Protocol):
    def query(self, promql: str, time: Any = None) -> list[dict[str, Any]]: ...

    def query_range(self, promql: str, start: Any, end: Any, step: Any) -> list[dict[str, Any]]: ...


def check_anomalies(
    client: PrometheusQuerier,
    targets: Sequence[Mapping[str, Any]] | None,
    *,
    sigma: Any = 2.0,
    window: Any = "5m",
    history_windows: Any = 6,
    min_requests: Any = 100,
    now: float | None = None,
    selector: Any = None,
    metrics: Any = None,
    route: Mapping[str, Any] | None = None,
    checks_per_step: Any = 1,
    client_error_codes: Any = None,
    mirror_since: Any = None,
    methods: Sequence[str] = (),
    compare_max_diff_rate: Any = None,
) -> dict[str, Any]:
    """Check the given services (or, with ``targets=None``, every service Traefik reports).

    ``targets`` items: ``{service_label, name, namespace, role: main|shadow|service, pair}`` where
    ``pair`` is, for a shadow, the metric label of its main service (or a list of them when the main
    is a weighted split). The built-in checks always issue exactly ``AnomalyQueries.count`` (4)
    queries, or none when the target list is empty; each custom check in ``metrics`` adds its own
    (1, or 2 for ``max_ratio`` / ``max_increase``). ``selector`` (``prometheus_selector``) adds label
    matchers to all of them; ``route`` (``{route, namespace}``) fills ``$route`` and ``$namespace``.

    ``checks_per_step``: how many checks share sigma's false-alarm budget (the gate's checks per step).
    ``mirror_since``: Unix time at which the mirror's current percentage took effect (the gate's step
    start): the copies a shadow completed are judged only once that percentage has held a whole window.
    ``methods``: the HTTP methods the mirror copies (mirror_methods): the built-in checks count only requests of
    those methods, the main's as the shadow's (custom checks in ``metrics`` are left as written).
    ``compare_max_diff_rate``: the difference check (``_compare_check``) on the route's comparator, 2 queries more.
    """
    settings = AnomalySettings.from_options(
        sigma, window, history_windows, min_requests, checks_per_step, client_error_codes
    )
    extra_matchers = parse_selector(selector)
    checks = parse_metric_checks(metrics)
    compare = _compare_check.parse_compare(compare_max_diff_rate, settings.min_requests, route)
    if checks and targets is None:
        raise DarklaunchError(
            "metrics (custom checks) judge a route's shadow: give route_name and namespace.", field="metrics"
        )
    parsed_targets = parse_targets(targets) if targets is not None else None
    evaluated_at = time_module.time() if now is None else float(now)
    since = _optional_time(mirror_since)
    if since is not None:
        settings = replace(settings, mirror_seconds=evaluated_at - since)
    labels = _labels_to_fetch(parsed_targets)
    history_from: list[dict[str, Any]] = []
    if labels is not None and not labels:
        series: dict[str, ServiceSeries] = {}
        queries_sent = 0
    else:
        patterns = history_patterns(parsed_targets or [])
        queries = build_queries(labels, settings, evaluated_at, extra_matchers, methods, patterns)
        series = fetch_service_series(client, queries, settings.is_client_error)
        queries_sent = queries.count
        history_from = fill_history(series, parsed_targets or [])
    report = evaluate(series, parsed_targets, settings).to_dict()
    if history_from:
        report["history_from"] = history_from
    report["scope"] = "cluster" if parsed_targets is None else "services"
    report["evaluated_at"] = round(evaluated_at, 3)
    report["builtin_queries"] = queries_sent
    if extra_matchers:
        report["selector"] = extra_matchers
    if methods:
        report["methods"] = list(methods)
    if checks:
        context = _check_context(parsed_targets or [], settings.window, route, extra_matchers)
        rows = run_metric_checks(client, checks, context, round(evaluated_at, 3))
        report["metrics"] = rows
        queries_sent += sum(row["queries"] for row in rows)
        report["verdict"], report["summary"] = combine_verdict(report["verdict"], report["summary"], rows)
    if compare is not None:
        row = run_compare_check(client, compare, settings.window, extra_matchers, round(evaluated_at, 3))
        report["compare"] = row
        queries_sent += row["queries"]
        report["verdict"], report["summary"] = _compare_check.combine(report["verdict"], report["summary"], row)
    report["queries"] = queries_sent
    return report


def run_metric_checks(
    client: PrometheusQuerier, checks: Sequence[MetricCheck], context: CheckContext | None, at: float
) -> list[dict[str, Any]]:
    """Each custom check as one instant query (two for comparisons) at the same time as the built-in ones."""
    return [
        run_metric_check(
            check,
            context,
            lambda promql: client.query(promql, time=at),
            lambda error: isinstance(error, PrometheusQueryError),
        )
        for check in checks
    ]


def run_compare_check(
    client: PrometheusQuerier, compare: _compare_check.CompareSettings, window: str, extra_matchers: str, at: float
) -> dict[str, Any]:
    """The difference check's two instant queries; a query Prometheus refuses propagates (the check's error)."""
    results_query, paths_query = _compare_check.queries(compare, window, extra_matchers)
    results = _compare_check.by_label(client.query(results_query, time=at), "result")
    paths = _compare_check.by_label(client.query(paths_query, time=at), "path")
    return {**_compare_check.judge(compare, window, results, paths), "query": results_query, "queries": 2}


def _check_context(
    targets: Sequence[Target], window: str, route: Mapping[str, Any] | None, extra_matchers: str
) -> CheckContext | None:
    shadows = sorted({target.service for target in targets if target.role == ROLE_SHADOW})
    mains = sorted(
        {pair for target in targets if target.role == ROLE_SHADOW for pair in target.pairs}
        or {target.service for target in targets if target.role == ROLE_MAIN}
    )
    if not shadows and not mains:
        return None
    route = route or {}
    return CheckContext(
        shadow="|".join(escape_regex(label) for label in shadows),
        main="|".join(escape_regex(label) for label in mains),
        namespace=str(route.get("namespace") or ""),
        route=str(route.get("route") or ""),
        window=window,
        selector=extra_matchers,
    )


def fetch_service_series(
    client: PrometheusQuerier, queries: AnomalyQueries, is_client_error: Callable[[str], bool] = lambda code: False
) -> dict[str, ServiceSeries]:
    """Run the constant set of queries and parse them into one series per service."""
    requests_by_code, latency_sum, latency_count = (
        client.query_range(promql, start=queries.start, end=queries.end, step=queries.step)
        for promql in queries.range_queries
    )
    latency_buckets = client.query(queries.latency_buckets, time=queries.end)
    return assemble_series(queries, requests_by_code, latency_sum, latency_count, latency_buckets, is_client_error)


def parse_targets(targets: Sequence[Mapping[str, Any]]) -> list[Target]:
    return [_parse_target(index, raw) for index, raw in enumerate(targets)]


def _parse_target(index: int, raw: Mapping[str, Any]) -> Target:
    if not isinstance(raw, Mapping):
        raise DarklaunchError(f"Anomaly target #{index} must be a mapping, got {type(raw).__name__}.")
    label = raw.get("service_label")
    if not isinstance(label, str) or not label:
        raise DarklaunchError(f"Anomaly target #{index} has no service_label (Traefik's metrics 'service' label).")
    role = raw.get("role") or "service"
    if role not in ROLES:
        raise DarklaunchError(f"Anomaly target {label} has role {role!r}; use one of {', '.join(ROLES)}.")
    return Target(
        service=label,
        role=role,
        name=_optional_text(raw.get("name")),
        namespace=_optional_text(raw.get("namespace")),
        pairs=_pairs(label, role, raw.get("pair")),
        percent=_optional_percent(label, raw.get("percent")),
        aliases=parse_patterns(label, raw.get("label_patterns")),
    )


def _optional_percent(label: str, value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        percent = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        percent = -1.0
    if not 0 <= percent <= 100:
        raise DarklaunchError(f"Anomaly target {label}: percent must be a number from 0 to 100, got {value!r}.")
    return percent


def _optional_time(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        since = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        since = math.nan
    if not math.isfinite(since):
        raise DarklaunchError(f"mirror_since must be a Unix time in seconds, got {value!r}.", field="mirror_since")
    return since


def _pairs(label: str, role: str, pair: Any) -> tuple[str, ...]:
    if pair is None or role != ROLE_SHADOW:
        return ()
    values = [pair] if isinstance(pair, str) else pair
    if not isinstance(values, (list, tuple)) or not all(isinstance(value, str) and value for value in values):
        raise DarklaunchError(f"Anomaly target {label}: pair must be a service label or a list of them.")
    return tuple(dict.fromkeys(values))


def _optional_text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _labels_to_fetch(targets: Sequence[Target] | None) -> list[str] | None:
    if targets is None:
        return None
    labels = {target.service for target in targets}
    labels.update(pair for target in targets for pair in target.pairs)
    return sorted(labels)
