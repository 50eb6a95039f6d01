# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The records of an anomaly check: what Traefik counted per service and window, whom to judge, what was found."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    ROLE_MAIN,
    ROLE_OTHER_ROUTE,
    ROLE_SHADOW,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import (
    AnomalySettings,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_stats import (
    HistogramBucket,
)

VERDICT_OK = "ok"
VERDICT_ANOMALOUS = "anomalous"
VERDICT_INSUFFICIENT = "insufficient_data"

# The roles of a route's backends are the distribution's (main, shadow, other_route: a backend of another
# route of the IngressRoute than the mirrored one, checked against its own history for information, never an
# input to the verdict, so an idle ``/health`` route does not leave the mirrored route unjudged); "service" is
# a backend judged cluster-wide, without a route.
ROLE_SERVICE = "service"
ROLES = (ROLE_MAIN, ROLE_SHADOW, ROLE_SERVICE, ROLE_OTHER_ROUTE)
CHECK_SHADOW_VS_MAIN = "shadow_vs_main"
CHECK_HISTORY = "history"
METRIC_ERROR_RATE = "error_rate"
METRIC_CLIENT_ERROR_RATE = "client_error_rate"
METRIC_LATENCY_MEAN = "latency_mean"
METRIC_LATENCY_P95 = "latency_p95"
METRIC_LATENCY_P99 = "latency_p99"
METRIC_REQUEST_RATE = "request_rate"
METRIC_DELIVERY = "delivery"
UNIT_RATIO = "ratio"
UNIT_SECONDS = "seconds"
UNIT_PER_SECOND = "requests_per_second"
SEVERITY_WARNING = "warning"
SEVERITY_CRITICAL = "critical"


@dataclass(frozen=True)
class WindowCounts:
    """What one service did in one window (increases of Traefik's counters)."""

    requests: float
    errors: float
    latency_sum: float | None = None
    latency_count: float | None = None
    client_errors: float = 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None

    @property
    def client_error_rate(self) -> float | None:
        return self.client_errors / self.requests if self.requests > 0 else None

    @property
    def latency_mean(self) -> float | None:
        if self.latency_sum is None or not self.latency_count:
            return None
        return self.latency_sum / self.latency_count


@dataclass(frozen=True)
class ServiceSeries:
    """A service's counts per window, oldest first; the last window is the current one.

    ``None`` marks a window in which the service had no series at all (it did not exist yet, or
    Prometheus did not scrape Traefik), which is different from a window with zero requests.
    ``buckets`` is the latency histogram of the current window.
    """

    service: str
    windows: tuple[WindowCounts | None, ...]
    buckets: tuple[HistogramBucket, ...] = ()

    @property
    def current(self) -> WindowCounts | None:
        return self.windows[-1] if self.windows else None

    @property
    def history(self) -> tuple[WindowCounts | None, ...]:
        return self.windows[:-1]


@dataclass(frozen=True)
class Target:
    """A service to check. ``pairs`` lists, for a shadow, the metric labels of the main service(s).

    ``percent``: for a shadow, the share of the route's requests copied to it; for a main service, the
    share of the route's users it serves (``None`` when unknown).
    """

    service: str
    role: str = ROLE_SERVICE
    name: str | None = None
    namespace: str | None = None
    pairs: tuple[str, ...] = ()
    percent: float | None = None
    # Regular expressions of other labels of the same backend: its history where ``service`` has none (an
    # HTTPRoute's main before attach, see _anomaly_aliases).
    aliases: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.name or self.service

    def fields(self) -> dict[str, Any]:
        """Who a finding is about, as every answer row names it."""
        return {"service": self.service, "name": self.name, "namespace": self.namespace, "role": self.role}


def severity_for(worse_z: float, sigma: float) -> str | None:
    """``warning`` from ``sigma``, ``critical`` from ``2 * sigma``; ``None`` below (or when better)."""
    if worse_z >= 2 * sigma:
        return SEVERITY_CRITICAL
    if worse_z >= sigma:
        return SEVERITY_WARNING
    return None


def merge_series(service: str, parts: Sequence[ServiceSeries]) -> ServiceSeries:
    """Add several services' windows and buckets together (a shadow's main may be a weighted split
    over several Services: the shadow receives a copy of all of their requests)."""
    length = max((len(part.windows) for part in parts), default=0)
    windows = tuple(_merge_windows([_window_at(part, index, length) for part in parts]) for index in range(length))
    bucket_counts: dict[float, float] = {}
    for part in parts:
        for bucket in part.buckets:
            bucket_counts[bucket.upper_bound] = bucket_counts.get(bucket.upper_bound, 0.0) + bucket.cumulative_count
    buckets = tuple(HistogramBucket(bound, count) for bound, count in sorted(bucket_counts.items()))
    return ServiceSeries(service, windows, buckets)


def _window_at(series: ServiceSeries, index: int, length: int) -> WindowCounts | None:
    # Series are right-aligned: the last window is "current" for every one of them.
    offset = length - len(series.windows)
    return series.windows[index - offset] if index >= offset else None


def _merge_windows(windows: Sequence[WindowCounts | None]) -> WindowCounts | None:
    present = [window for window in windows if window is not None]
    if not present:
        return None
    return WindowCounts(
        requests=sum(window.requests for window in present),
        errors=sum(window.errors for window in present),
        client_errors=sum(window.client_errors for window in present),
        latency_sum=_sum_known(window.latency_sum for window in present),
        latency_count=_sum_known(window.latency_count for window in present),
    )


def _sum_known(values: Iterable[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


@dataclass(frozen=True)
class Anomaly:
    target: Target
    check: str
    metric: str
    unit: str
    value: float
    baseline: float
    z_score: float
    severity: str
    compared_to: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.target.fields(),
            "check": self.check,
            "metric": self.metric,
            "unit": self.unit,
            "value": round(self.value, 6),
            "baseline": round(self.baseline, 6),
            "z_score": round(self.z_score, 3),
            "severity": self.severity,
            "compared_to": self.compared_to,
        }


@dataclass(frozen=True)
class Insufficient:
    target: Target
    check: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.target.fields(),
            "check": self.check,
            "reason": self.reason,
        }


@dataclass
class CheckOutcome:
    """One check of one service: the anomalies found and, if some metric could not be judged, why."""

    target: Target
    check: str
    anomalies: list[Anomaly] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    judged: int = 0
    # Findings reported beside the verdict but never deciding it (see compare_to_history).
    informational: list[Anomaly] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.anomalies:
            return VERDICT_ANOMALOUS
        if self.gaps or not self.judged:
            return VERDICT_INSUFFICIENT
        return VERDICT_OK

    def insufficient(self) -> Insufficient | None:
        if self.status != VERDICT_INSUFFICIENT:
            return None
        return Insufficient(self.target, self.check, "; ".join(self.gaps) or "nothing could be judged")

    def score(
        self,
        settings: AnomalySettings,
        metric: str,
        unit: str,
        value: float,
        baseline: float,
        z_score: float,
        *,
        worse_is_lower: bool = False,
        compared_to: str,
        deciding: bool = True,
    ) -> None:
        self.judged += 1
        severity = severity_for(-z_score if worse_is_lower else z_score, settings.threshold)
        if severity is not None:
            found = Anomaly(self.target, self.check, metric, unit, value, baseline, z_score, severity, compared_to)
            (self.anomalies if deciding else self.informational).append(found)


def main_label(target: Target) -> str:
    return " + ".join(target.pairs)
