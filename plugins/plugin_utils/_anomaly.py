# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verdict of an anomaly check: every comparison of an answer under one false-alarm budget, one verdict.

Nothing here talks to Prometheus; ``_anomaly_queries`` turns query results into ``ServiceSeries`` and
``_anomaly_check`` runs the whole check. The analysis is split by job: ``_anomaly_settings`` (options),
``_anomaly_stats`` (statistics), ``_anomaly_model`` (records), ``_anomaly_scoring`` (one service judged),
``_anomaly_wording`` (sentences) and this module (the verdict). Two comparisons exist:

* shadow vs main over the same window, the same users' traffic: the copies delivered against what the
  mirror's percentage predicts, the 5xx and the 4xx shares (pooled two-proportion z-tests), mean latency
  (Welch z-test, variances estimated from the duration histogram) and the p95 and p99 tails
  (two-proportion z-tests on the share of requests slower than the main service's p95 / p99), the latency
  scores capped by the size of the difference so a few percent never alarm however many requests there are;
* each service against its own previous windows: request rate, error rate and mean latency, as
  ``(current - mean) / stddev`` with a floor on the standard deviation.

Only the "worse" direction alarms: more errors, slower answers, and for request rates a drop.

Every deciding comparison of an answer, times the checks that share the budget (``checks``: the gate's
checks per step), is held to one false-alarm budget, the one-sided tail of ``sigma`` (Bonferroni, see
family_wise_sigma). While a launch is on a route (it has a shadow), only what the launch can change
decides: the shadow against its main, and the error rates against history; a main's request rate and the
latency histories move with the users' traffic and are reported, never deciding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    ROLE_MAIN,
    ROLE_OTHER_ROUTE,
    ROLE_SHADOW,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    CHECK_HISTORY,
    CHECK_SHADOW_VS_MAIN,
    ROLE_SERVICE,
    SEVERITY_CRITICAL,
    VERDICT_ANOMALOUS,
    VERDICT_INSUFFICIENT,
    VERDICT_OK,
    Anomaly,
    CheckOutcome,
    Insufficient,
    ServiceSeries,
    Target,
    main_label,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_scoring import (
    compare_shadow_to_main,
    compare_to_history,
    decisions_for,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import (
    AnomalySettings,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_stats import (
    P95,
    P99,
    family_wise_sigma,
    histogram_quantile,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_wording import (
    describe,
    informational_note,
    summary,
)


@dataclass(frozen=True)
class AnomalyReport:
    verdict: str
    summary: str
    anomalies: tuple[Anomaly, ...]
    insufficient: tuple[Insufficient, ...]
    services: tuple[dict[str, Any], ...]
    settings: AnomalySettings
    # Findings on other routes of the IngressRoute (role other_route): reported, not part of the verdict.
    informational: tuple[Anomaly, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "summary": self.summary,
            "anomalies": [_finding(anomaly) for anomaly in self.anomalies],
            "informational": [_finding(anomaly) for anomaly in self.informational],
            "insufficient_data": [gap.to_dict() for gap in self.insufficient],  # a field name, not a verdict
            "services": list(self.services),
            "window": self.settings.window,
            "window_seconds": self.settings.window_seconds,
            "sigma": self.settings.sigma,
            # The z-score each comparison had to reach (see family_wise_sigma), and the family it shares
            # sigma's false-alarm budget with: this answer's deciding comparisons times ``checks``.
            "sigma_applied": round(self.settings.threshold, 3),
            "comparisons": self.settings.comparisons,
            "checks_per_step": self.settings.checks,
            "false_alarm_budget": round(1 - NormalDist().cdf(self.settings.sigma), 6),
            "client_error_codes": list(self.settings.client_error_codes),
            "history_windows": self.settings.history_windows,
            "min_requests": self.settings.min_requests,
        }


def evaluate(
    series_by_service: Mapping[str, ServiceSeries],
    targets: Sequence[Target] | None,
    settings: AnomalySettings,
) -> AnomalyReport:
    """Run every check and reach one verdict.

    ``targets=None`` means cluster-wide: every service found in the metrics, each against its history.
    With targets, the *primary* checks decide between ``ok`` and ``insufficient_data``: the
    shadow-vs-main comparisons when there are shadows (a brand-new shadow has no history yet, and its
    main is the baseline that matters), otherwise every target's history check. Cluster-wide, idle
    services are reported but only make the verdict ``insufficient_data`` when no service at all
    could be judged. Any anomaly in any check makes the verdict ``anomalous``, except a main's request
    rate while a shadow is on the route (the users' traffic, see compare_to_history), and on
    ``other_route`` targets: their history checks are reported (``informational``, ``services``) and
    never change the verdict.

    Every comparison that can decide, times ``settings.checks``, shares sigma's false-alarm budget: each is
    tested at family_wise_sigma (``sigma_applied`` in the answer).
    """
    cluster_wide = targets is None
    checked = _dedupe(targets) if targets is not None else _discovered_targets(series_by_service)
    launch_on = any(target.role == ROLE_SHADOW for target in checked)
    comparisons = settings.checks * sum(decisions_for(target, launch_on, settings) for target in checked)
    settings = replace(
        settings, applied_sigma=family_wise_sigma(settings.sigma, comparisons), comparisons=max(comparisons, 1)
    )
    main_percents = {target.service: target.percent for target in checked if target.role == ROLE_MAIN}
    outcomes = [
        outcome
        for target in checked
        for outcome in _checks_for(target, series_by_service, settings, launch_on, main_percents)
    ]
    judged = [outcome for outcome in outcomes if outcome.target.role != ROLE_OTHER_ROUTE]
    shadow_outcomes = [outcome for outcome in judged if outcome.check == CHECK_SHADOW_VS_MAIN]
    primary = shadow_outcomes or [outcome for outcome in judged if outcome.check == CHECK_HISTORY]
    anomalies = _by_severity(anomaly for outcome in judged for anomaly in outcome.anomalies)
    other_routes = _by_severity(
        anomaly for outcome in outcomes if outcome.target.role == ROLE_OTHER_ROUTE for anomaly in outcome.anomalies
    )
    users_traffic = _by_severity(anomaly for outcome in judged for anomaly in outcome.informational)
    informational = [*users_traffic, *other_routes]
    verdict = _verdict(anomalies, primary, cluster_wide)
    gaps = tuple(gap for outcome in judged if (gap := outcome.insufficient()) is not None)
    # One pass, not one scan of every outcome per service: cluster-wide there are thousands of both.
    statuses: dict[Target, dict[str, str]] = {}
    for outcome in outcomes:
        statuses.setdefault(outcome.target, {})[outcome.check] = outcome.status
    return AnomalyReport(
        verdict=verdict,
        summary=summary(verdict, anomalies, primary, judged, settings)
        + informational_note(users_traffic, "history that moves with the users' traffic")
        + informational_note(other_routes, "on another route of the IngressRoute"),
        anomalies=tuple(anomalies),
        insufficient=gaps,
        services=tuple(
            _service_row(target, series_by_service, statuses.get(target, {}), settings) for target in checked
        ),
        settings=settings,
        informational=tuple(informational),
    )


def _by_severity(anomalies: Iterable[Anomaly]) -> list[Anomaly]:
    return sorted(anomalies, key=lambda anomaly: (anomaly.severity != SEVERITY_CRITICAL, -abs(anomaly.z_score)))


def _checks_for(
    target: Target,
    series_by_service: Mapping[str, ServiceSeries],
    settings: AnomalySettings,
    launch_on: bool,
    main_percents: Mapping[str, float | None],
) -> list[CheckOutcome]:
    series = series_by_service.get(target.service)
    outcomes = []
    if target.role == ROLE_SHADOW:
        main_percent = _sum_percents(main_percents.get(label) for label in target.pairs)
        outcomes.append(compare_shadow_to_main(target, series, series_by_service, settings, main_percent))
    outcomes.append(compare_to_history(target, series, settings, launch_on=launch_on))
    return outcomes


def _sum_percents(percents: Iterable[float | None]) -> float | None:
    values = list(percents)
    return sum(value for value in values if value is not None) if values and None not in values else None


def _dedupe(targets: Sequence[Target]) -> list[Target]:
    seen: set[Target] = set()
    unique = []
    for target in targets:
        if target not in seen:
            seen.add(target)
            unique.append(target)
    return unique


def _discovered_targets(series_by_service: Mapping[str, ServiceSeries]) -> list[Target]:
    return [Target(service=label, role=ROLE_SERVICE) for label in sorted(series_by_service)]


def _verdict(anomalies: Sequence[Anomaly], primary: Sequence[CheckOutcome], cluster_wide: bool) -> str:
    if anomalies:
        return VERDICT_ANOMALOUS
    judged_ok = [outcome for outcome in primary if outcome.status == VERDICT_OK]
    if cluster_wide:
        return VERDICT_OK if judged_ok else VERDICT_INSUFFICIENT
    return VERDICT_OK if primary and len(judged_ok) == len(primary) else VERDICT_INSUFFICIENT


def _service_row(
    target: Target,
    series_by_service: Mapping[str, ServiceSeries],
    checks: Mapping[str, str],
    settings: AnomalySettings,
) -> dict[str, Any]:
    series = series_by_service.get(target.service)
    current = series.current if series is not None else None
    p95 = histogram_quantile(P95, series.buckets) if series is not None else None
    p99 = histogram_quantile(P99, series.buckets) if series is not None else None
    return {
        "service": target.service,
        "name": target.name,
        "namespace": target.namespace,
        "role": target.role,
        "compared_to": main_label(target) or None,
        "requests": _rounded(current.requests if current else None),
        "request_rate": _rounded(current.requests / settings.window_seconds if current else None),
        "error_rate": _rounded(current.error_rate if current else None),
        "client_error_rate": _rounded(current.client_error_rate if current else None),
        "latency_mean": _rounded(current.latency_mean if current else None),
        "latency_p95": _rounded(p95),
        "latency_p99": _rounded(p99),
        "checks": dict(checks),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _finding(anomaly: Anomaly) -> dict[str, Any]:
    return {**anomaly.to_dict(), "description": describe(anomaly)}
