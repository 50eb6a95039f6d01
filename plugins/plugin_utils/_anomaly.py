# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure statistics for anomaly checks on Traefik services: z-scores, histogram estimates, verdicts.

Nothing here talks to Prometheus; ``_anomaly_queries`` turns query results into ``ServiceSeries`` and
``_anomaly_check`` runs the whole check. Two comparisons exist:

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

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import (
    ROLE_MAIN,
    ROLE_OTHER_ROUTE,
    ROLE_SHADOW,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

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

# A sample standard deviation needs two points; fewer previous windows cannot define "usual".
MIN_HISTORY_POINTS = 2
# Steady synthetic traffic has a history stddev near zero: without a floor any wobble would alarm.
# A floor of 10% of the usual level means a steady service alarms from a change of sigma x 10%
# (20% at sigma 2; critical from 40%).
RELATIVE_STDDEV_FLOOR = 0.10
# Below a few milliseconds a service's mean latency moves with the node's CPU load, not with the code:
# on a busy 2-core node the same backends measured 1 ms, then 3 ms, then 15 ms. A latency change counts
# in units of at least 5 ms, so at sigma 2 it must be 10 ms or more before it alarms.
LATENCY_STDDEV_FLOOR_SECONDS = 0.005
P95 = 0.95
P99 = 0.99
# A shadow that completed fewer than a quarter of the copies its percentage predicts is not being
# delivered to (it hangs, or refuses connections). A healthy one sits at the expectation: mirroring is a
# counter, and the window is judged only once the percentage has held all of it (expected_copies); the
# margin absorbs Traefik applying the step a second or two late and Prometheus' extrapolation.
MIN_DELIVERED_SHARE = 0.25
# A tail test needs the main's tail share to predict at least this many of the shadow's requests beyond the
# main's quantile (p95: 30 requests, p99: 150). Below that, a few copies on cold connections right after the
# attach (Traefik's pool to the shadow starts empty) are a fifth of the sample and look like a heavier tail:
# on the 2-core test machine, 4 of 26 copies were slower than the main's p99. From 1.5 expected on, the
# continuity-corrected z agrees with the Poisson tail (7 of 150 beyond a 1% p99: z 3.0, Poisson 0.09%).
TAIL_MIN_EXPECTED = 1.5
# A tail must also be worse by a margin worth stopping a launch for, in units of max(25% of the main's
# quantile, 20 ms) (the mean uses 10% and 5 ms): tails are where CPU starvation, GC and cold connections show
# first. On the 2-core test machine at load 15, a healthy shadow's copies ran a p95 of 77 ms against the main's
# 50 ms and a p99 of 90 ms against 50; the faults the gate must catch are far beyond (+500 ms on 5% of
# requests: a p99 of 500 ms against 50).
TAIL_RELATIVE_FLOOR = 0.25
TAIL_FLOOR_SECONDS = 0.020
# Comparisons that decide the verdict, per target (see decisions_for).
SHADOW_VS_MAIN_COMPARISONS = 6  # delivery, 5xx share, 4xx share, mean, p95, p99
HISTORY_COMPARISONS_PER_SERVICE = 3  # request rate, error rate, mean latency
DEFAULT_CLIENT_ERROR_CODES = ("4xx",)
_CODE_PATTERN = re.compile(r"^[1-5](?:xx|\d\d)$")
MAX_HISTORY_WINDOWS = 1000  # Prometheus refuses range queries of more than 11,000 points per series.

_DURATION_RE = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_DURATION_UNIT_SECONDS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}


# --------------------------------------------------------------------------------------------------
# Settings and input records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnomalySettings:
    sigma: float = 2.0
    window: str = "5m"
    window_seconds: float = 300.0
    history_windows: int = 6
    min_requests: int = 100
    # The threshold the checks apply: ``sigma`` raised for the comparisons sharing it (see family_wise_sigma).
    applied_sigma: float | None = None
    comparisons: int = 1
    # The checks that share sigma's false-alarm budget with this one (the gate's checks per step).
    checks: int = 1
    # Answers counted as client errors: classes (``4xx``) or codes (``404``).
    client_error_codes: tuple[str, ...] = DEFAULT_CLIENT_ERROR_CODES
    # How long the mirror's current percentage has held within the window (None: all of it).
    mirror_seconds: float | None = None

    @property
    def threshold(self) -> float:
        return self.sigma if self.applied_sigma is None else self.applied_sigma

    @classmethod
    def from_options(
        cls,
        sigma: Any = 2.0,
        window: Any = "5m",
        history_windows: Any = 6,
        min_requests: Any = 100,
        checks_per_step: Any = 1,
        client_error_codes: Any = None,
    ) -> AnomalySettings:
        """Validate user options (they may arrive as strings from AWX surveys) into settings."""
        window_text = _window_text(window)
        return cls(
            sigma=_positive_float(sigma, "sigma"),
            window=window_text,
            window_seconds=parse_prometheus_duration(window_text),
            history_windows=_bounded_int(history_windows, "history_windows", MIN_HISTORY_POINTS, MAX_HISTORY_WINDOWS),
            min_requests=_bounded_int(min_requests, "min_requests", 1, None),
            checks=_bounded_int(checks_per_step, "checks_per_step", 1, None),
            client_error_codes=parse_client_error_codes(client_error_codes),
        )

    def is_client_error(self, code: str) -> bool:
        """Does a status code (Traefik's ``code`` label) count as a client error?"""
        return any(
            code == wanted or (wanted.endswith("xx") and code[:1] == wanted[0] and len(code) == 3)
            for wanted in self.client_error_codes
        )


def parse_client_error_codes(value: Any) -> tuple[str, ...]:
    """``client_error_codes``: classes such as ``4xx`` or codes such as ``404`` (numbers too); an empty
    list turns the client-error comparison off."""
    if value is None:
        return DEFAULT_CLIENT_ERROR_CODES
    if isinstance(value, str):  # survey and extra-var text: "4xx" or "404, 429"
        value = [item for item in value.replace("[", "").replace("]", "").split(",") if item.strip()]
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)):
        raise DarklaunchError(
            f"client_error_codes must be a list of status codes or classes such as [4xx] or [404, 429], got {value!r}.",
            field="client_error_codes",
        )
    codes = []
    for item in items:
        text = str(item).strip().lower() if not isinstance(item, bool) else ""
        if not _CODE_PATTERN.match(text):
            raise DarklaunchError(
                f"client_error_codes: {item!r} is not a status code (404) or class (4xx).", field="client_error_codes"
            )
        codes.append(text)
    return tuple(dict.fromkeys(codes))


def parse_prometheus_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5m``, ``1h30m`` or ``500ms``."""
    match = _DURATION_RE.match(text.strip()) if text else None
    if not text or match is None or not any(match.groupdict().values()):
        raise DarklaunchError(
            f"window {text!r} is not a Prometheus duration: use a number and a unit, like 30s, 5m or 1h.",
            field="window",
        )
    seconds = sum(int(amount) * _DURATION_UNIT_SECONDS[unit] for unit, amount in match.groupdict().items() if amount)
    if seconds < 1:
        raise DarklaunchError(f"window {text!r} is too short: use at least 1s.", field="window")
    return seconds


def _window_text(window: Any) -> str:
    if isinstance(window, bool):
        raise DarklaunchError("window must be a Prometheus duration such as 5m.", field="window")
    if isinstance(window, int):
        return f"{window}s"
    return str(window).strip()


def _positive_float(value: Any, name: str) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not (number > 0 and math.isfinite(number)):
        raise DarklaunchError(f"{name} must be a positive number, got {value!r}.", field=name)
    return number


def _bounded_int(value: Any, name: str, low: int, high: int | None) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        limits = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise DarklaunchError(f"{name} must be an integer {limits}, got {value!r}.", field=name)
    return number


@dataclass(frozen=True)
class HistogramBucket:
    """One cumulative bucket: how many observations were at most ``upper_bound`` (``le``)."""

    upper_bound: float
    cumulative_count: float


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

    @property
    def display_name(self) -> str:
        return self.name or self.service


# --------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------


def two_proportion_z(
    hits_a: float, total_a: float, hits_b: float, total_b: float, *, continuity: bool = False
) -> float:
    """Pooled two-proportion z-score of ``hits_a/total_a`` above ``hits_b/total_b``.

    ``z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b))`` with ``p`` the pooled proportion. When both
    samples are all-hits or all-misses the proportions are equal and there is nothing to score: 0.

    ``continuity`` moves ``hits_a`` half a hit towards ``b``'s proportion when it is above it: hits
    are whole and rare (errors, requests in a 1% tail), and the normal approximation alone calls 5 of
    100 in a 1% tail (main 10 of 1,000) z 3.29, although 5 or more happen 0.37% of the time (z 2.68);
    corrected it scores 2.93.
    """
    if total_a <= 0 or total_b <= 0:
        raise ValueError("two_proportion_z needs two non-empty samples")
    if continuity and hits_a / total_a > hits_b / total_b:
        hits_a = max(hits_a - 0.5, hits_b / total_b * total_a)
    proportion_a = hits_a / total_a
    proportion_b = hits_b / total_b
    pooled = (hits_a + hits_b) / (total_a + total_b)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / total_a + 1 / total_b))
    return _safe_ratio(proportion_a - proportion_b, standard_error)


def welch_z(
    mean_a: float, variance_a: float, count_a: float, mean_b: float, variance_b: float, count_b: float
) -> float:
    """z-score of ``mean_a`` above ``mean_b`` for two independent samples (Welch's standard error).

    With hundreds of requests per window the t distribution is indistinguishable from the normal one,
    so the statistic is read as a z-score against ``sigma``.
    """
    if count_a <= 0 or count_b <= 0:
        raise ValueError("welch_z needs two non-empty samples")
    standard_error = math.sqrt(variance_a / count_a + variance_b / count_b)
    return _safe_ratio(mean_a - mean_b, standard_error)


def mean_and_stddev(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0 for a single value)."""
    if not values:
        raise ValueError("mean_and_stddev needs at least one value")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def history_z(current: float, history_mean: float, history_stddev: float, stddev_floor: float) -> float:
    """``(current - mean) / max(stddev, floor)``: the floor keeps a flat history from alarming on noise."""
    return _safe_ratio(current - history_mean, max(history_stddev, stddev_floor))


def severity_for(worse_z: float, sigma: float) -> str | None:
    """``warning`` from ``sigma``, ``critical`` from ``2 * sigma``; ``None`` below (or when better)."""
    if worse_z >= 2 * sigma:
        return SEVERITY_CRITICAL
    if worse_z >= sigma:
        return SEVERITY_WARNING
    return None


def family_wise_sigma(sigma: float, comparisons: int) -> float:
    """The per-comparison z threshold that keeps the chance of ANY false alarm among ``comparisons``
    one-sided tests at that of a single ``sigma`` test (Bonferroni).

    Cluster-wide, thousands of healthy services are each compared three times: at a plain sigma 2
    (2.3% per comparison) about 7% of them would be flagged on every check. Holding the whole answer to
    sigma's false-alarm rate turns sigma 2 over 3,000 comparisons into z >= 4.3. A launch's gate holds
    each step to it: one shadow and one main (8 deciding comparisons) over 5 checks is z >= 3.3.
    """
    if comparisons <= 1:
        return sigma
    normal = NormalDist()
    tail = (1.0 - normal.cdf(sigma)) / comparisons
    return max(sigma, normal.inv_cdf(1.0 - tail))


def normalise_buckets(buckets: Iterable[HistogramBucket]) -> tuple[HistogramBucket, ...] | None:
    """Sort buckets, make counts monotonic (``increase()`` extrapolation can break that, as Prometheus'
    own ``histogram_quantile`` also corrects) and require the ``+Inf`` bucket; ``None`` if unusable."""
    ordered = sorted(buckets, key=lambda bucket: bucket.upper_bound)
    if len(ordered) < 2 or not math.isinf(ordered[-1].upper_bound):
        return None
    monotonic: list[HistogramBucket] = []
    running = 0.0
    for bucket in ordered:
        running = max(running, bucket.cumulative_count)
        monotonic.append(HistogramBucket(bucket.upper_bound, running))
    return tuple(monotonic)


def histogram_total(buckets: Sequence[HistogramBucket]) -> float:
    usable = normalise_buckets(buckets)
    return usable[-1].cumulative_count if usable else 0.0


def histogram_quantile(quantile: float, buckets: Sequence[HistogramBucket]) -> float | None:
    """The same estimate as PromQL's ``histogram_quantile``: linear interpolation inside the bucket
    that holds the rank, and the highest finite bound when the rank falls into ``+Inf``.

    Computed here rather than in PromQL so the p95 and the share of requests above the main service's
    p95 come from the very same bucket counts (and without a further query).
    """
    usable = normalise_buckets(buckets)
    if usable is None or not 0 < quantile < 1:
        return None
    observations = usable[-1].cumulative_count
    if observations <= 0:
        return None
    rank = quantile * observations
    index = next(i for i, bucket in enumerate(usable) if bucket.cumulative_count >= rank)
    if index == len(usable) - 1:
        return usable[-2].upper_bound
    if index == 0 and usable[0].upper_bound <= 0:
        return usable[0].upper_bound
    lower_bound = usable[index - 1].upper_bound if index > 0 else 0.0
    below = usable[index - 1].cumulative_count if index > 0 else 0.0
    in_bucket = usable[index].cumulative_count - below
    return lower_bound + (usable[index].upper_bound - lower_bound) * (rank - below) / in_bucket


def histogram_share_at_or_below(value: float, buckets: Sequence[HistogramBucket]) -> float | None:
    """Share of observations at most ``value``, interpolating linearly inside a bucket (the inverse
    of ``histogram_quantile``). Beyond the highest finite bound nothing is known, so that bound's
    share is returned."""
    usable = normalise_buckets(buckets)
    if usable is None or usable[-1].cumulative_count <= 0:
        return None
    total = usable[-1].cumulative_count
    lower_bound, below = 0.0, 0.0
    for bucket in usable:
        if math.isinf(bucket.upper_bound) or value <= lower_bound:
            return below / total
        if value <= bucket.upper_bound:
            fraction = (value - lower_bound) / (bucket.upper_bound - lower_bound)
            return (below + (bucket.cumulative_count - below) * fraction) / total
        lower_bound, below = bucket.upper_bound, bucket.cumulative_count
    return below / total  # pragma: no cover - normalise_buckets guarantees a +Inf bucket


def histogram_variance(buckets: Sequence[HistogramBucket], total_sum: float) -> float | None:
    """Variance of the observations estimated from the buckets and the exact ``_sum``.

    Each finite bucket counts as uniform over its width: its observations contribute
    ``(midpoint - mean)^2 + width^2 / 12``. The overflow (``+Inf``) bucket is placed where the exact
    sum says its observations are on average (at least the highest finite bound). The width term
    keeps the estimate above zero even when all requests land in one bucket, so a z-score never
    divides by zero.
    """
    usable = normalise_buckets(buckets)
    if usable is None or usable[-1].cumulative_count <= 0:
        return None
    total = usable[-1].cumulative_count
    mean = total_sum / total
    squares = 0.0
    finite_sum = 0.0
    lower_bound, below = 0.0, 0.0
    for bucket in usable[:-1]:
        count = bucket.cumulative_count - below
        midpoint = (lower_bound + bucket.upper_bound) / 2
        width = bucket.upper_bound - lower_bound
        squares += count * ((midpoint - mean) ** 2 + width**2 / 12)
        finite_sum += count * midpoint
        lower_bound, below = bucket.upper_bound, bucket.cumulative_count
    overflow = total - below
    if overflow > 0:
        overflow_mean = max(lower_bound, (total_sum - finite_sum) / overflow)
        squares += overflow * (overflow_mean - mean) ** 2
    return squares / total


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


def _safe_ratio(numerator: float, denominator: float) -> float:
    # Callers floor their denominators; should a zero slip through, a huge finite z keeps results
    # JSON-serialisable (JSON has no infinity).
    if denominator > 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else math.copysign(1e9, numerator)


# --------------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------------


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

    def describe(self) -> str:
        who = f"shadow {self.target.display_name}" if self.target.role == ROLE_SHADOW else self.target.display_name
        if self.metric == METRIC_DELIVERY:
            return (
                f"{who} completed {format_value(self.value, self.unit)} of the copies its mirror percentage sends, "
                f"expected {format_value(self.baseline, self.unit)} from {self.compared_to} (z {self.z_score:.2f}, "
                f"{self.severity}): its copies hang or fail before an answer"
            )
        where = "on main" if self.check == CHECK_SHADOW_VS_MAIN else "in its recent history"
        return (
            f"{who} has {_METRIC_PHRASE[self.metric]} {format_value(self.value, self.unit)} against "
            f"{format_value(self.baseline, self.unit)} {where} (z {self.z_score:.2f}, {self.severity})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.target.service,
            "name": self.target.name,
            "namespace": self.target.namespace,
            "role": self.target.role,
            "check": self.check,
            "metric": self.metric,
            "unit": self.unit,
            "value": round(self.value, 6),
            "baseline": round(self.baseline, 6),
            "z_score": round(self.z_score, 3),
            "severity": self.severity,
            "compared_to": self.compared_to,
            "description": self.describe(),
        }


_METRIC_PHRASE = {
    METRIC_ERROR_RATE: "an error rate of",
    METRIC_CLIENT_ERROR_RATE: "a client error rate of",
    METRIC_LATENCY_MEAN: "a mean latency of",
    METRIC_LATENCY_P95: "a p95 latency of",
    METRIC_LATENCY_P99: "a p99 latency of",
    METRIC_REQUEST_RATE: "a request rate of",
    METRIC_DELIVERY: "copies completed at",
}


def format_value(value: float, unit: str) -> str:
    if unit == UNIT_RATIO:
        return f"{value:.2%}"
    if unit == UNIT_SECONDS:
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.2f} req/s"


@dataclass(frozen=True)
class Insufficient:
    target: Target
    check: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.target.service,
            "name": self.target.name,
            "namespace": self.target.namespace,
            "role": self.target.role,
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


# --------------------------------------------------------------------------------------------------
# Shadow vs main
# --------------------------------------------------------------------------------------------------


def compare_shadow_to_main(
    target: Target,
    shadow: ServiceSeries | None,
    mains: Mapping[str, ServiceSeries],
    settings: AnomalySettings,
    main_percent: float | None = None,
) -> CheckOutcome:
    """Delivery, 5xx and 4xx shares, mean, p95 and p99 latency of a shadow against its main service(s),
    same window.

    ``mains`` maps metric labels to series; the ones named in ``target.pairs`` are used. ``main_percent``
    is the share of the route's users those mains serve (for the copies the shadow should receive).
    """
    outcome = CheckOutcome(target, CHECK_SHADOW_VS_MAIN)
    if not target.pairs:
        outcome.gaps.append("no main service is known to compare the shadow with")
        return outcome
    missing = [label for label in target.pairs if label not in mains or mains[label].current is None]
    if missing:
        outcome.gaps.append(f"the main service {', '.join(missing)} has no metrics in the last {settings.window}")
        return outcome
    main = merge_series(main_label(target), [mains[label] for label in target.pairs])
    shadow_now = shadow.current if shadow is not None else None
    main_now = main.current
    if main_now is None:  # cannot happen: every part had a current window
        raise AssertionError("merged main series has no current window")
    _score_delivery(outcome, shadow_now, main_now, main_percent, settings)
    if not _enough_requests(outcome, "the shadow", shadow_now, settings):
        return outcome
    if not _enough_requests(outcome, "the main service", main_now, settings):
        return outcome
    if shadow is None or shadow_now is None:  # cannot happen: _enough_requests refuses a missing window
        raise AssertionError("shadow series has no current window")
    _score_error_rate_vs_main(outcome, shadow_now, main_now, settings)
    _score_latency_vs_main(outcome, shadow, main, settings)
    return outcome


def expected_copies(
    shadow_percent: float | None, main_percent: float | None, main_requests: float, settings: AnomalySettings
) -> float | None:
    """The copies the shadow should have completed in the window: its share of the route's requests per
    request the mains served. ``None`` (not judged) when a percentage is unknown, or when the mirror's
    current percentage has not held for a whole window yet (``mirror_seconds``): part of the window had
    another percentage, and a brand-new shadow series loses its first requests to Prometheus' ``increase()``
    until it has been scraped twice, so a young window would call a healthy shadow short."""
    if not shadow_percent or not main_percent or main_percent <= 0:
        return None
    if settings.mirror_seconds is not None and settings.mirror_seconds < settings.window_seconds:
        return None
    return main_requests * shadow_percent / main_percent


def delivery_z(delivered: float, expected: float) -> float:
    """How far below ``expected`` the completed copies are, in Poisson standard deviations; 0 unless fewer
    than MIN_DELIVERED_SHARE of them completed. Mirroring is a counter (every n-th request), so a healthy
    shadow sits at the expectation give or take requests in flight; a shortfall this large is a shadow
    that does not answer, not chance."""
    if expected <= 0 or delivered >= MIN_DELIVERED_SHARE * expected:
        return 0.0
    return (expected - delivered) / math.sqrt(expected)


def _score_delivery(
    outcome: CheckOutcome,
    shadow: WindowCounts | None,
    main: WindowCounts,
    main_percent: float | None,
    settings: AnomalySettings,
) -> None:
    expected = expected_copies(outcome.target.percent, main_percent, main.requests, settings)
    if expected is None or expected < settings.min_requests:
        return  # too few copies expected to call a shortfall; the request counts below say so
    delivered = shadow.requests if shadow is not None else 0.0
    outcome.score(
        settings,
        METRIC_DELIVERY,
        UNIT_PER_SECOND,
        delivered / settings.window_seconds,
        expected / settings.window_seconds,
        delivery_z(delivered, expected),
        compared_to=f"{_percent_text(outcome.target.percent)} of {main_label(outcome.target)}",
    )


def _percent_text(percent: float | None) -> str:
    return f"{percent:g}%" if percent is not None else "its share"


def _enough_requests(outcome: CheckOutcome, who: str, window: WindowCounts | None, settings: AnomalySettings) -> bool:
    requests = window.requests if window is not None else 0.0
    if requests >= settings.min_requests:
        return True
    outcome.gaps.append(
        f"{who} had {requests:.0f} requests in the last {settings.window}, "
        f"fewer than min_requests ({settings.min_requests})"
    )
    return False


def _score_error_rate_vs_main(
    outcome: CheckOutcome, shadow: WindowCounts, main: WindowCounts, settings: AnomalySettings
) -> None:
    compared_to = main_label(outcome.target)
    for metric, shadow_hits, main_hits in (
        (METRIC_ERROR_RATE, shadow.errors, main.errors),
        (METRIC_CLIENT_ERROR_RATE, shadow.client_errors, main.client_errors),
    ):
        if metric == METRIC_CLIENT_ERROR_RATE and not settings.client_error_codes:
            continue
        z_score = two_proportion_z(shadow_hits, shadow.requests, main_hits, main.requests, continuity=True)
        outcome.score(
            settings,
            metric,
            UNIT_RATIO,
            shadow_hits / shadow.requests,
            main_hits / main.requests,
            z_score,
            compared_to=compared_to,
        )


def _score_latency_vs_main(
    outcome: CheckOutcome, shadow: ServiceSeries, main: ServiceSeries, settings: AnomalySettings
) -> None:
    shadow_stats = _latency_stats(shadow)
    main_stats = _latency_stats(main)
    if shadow_stats is None or main_stats is None:
        outcome.gaps.append("no usable latency histogram for the shadow or its main service")
        return
    for who, stats in (("the shadow", shadow_stats), ("the main service", main_stats)):
        if stats.count < settings.min_requests:
            outcome.gaps.append(
                f"{who} has {stats.count:.0f} latency observations, fewer than min_requests ({settings.min_requests})"
            )
            return
    compared_to = main_label(outcome.target)
    mean_z = welch_z(
        shadow_stats.mean,
        shadow_stats.variance,
        shadow_stats.count,
        main_stats.mean,
        main_stats.variance,
        main_stats.count,
    )
    outcome.score(
        settings,
        METRIC_LATENCY_MEAN,
        UNIT_SECONDS,
        shadow_stats.mean,
        main_stats.mean,
        latency_effect_z(mean_z, shadow_stats.mean, main_stats.mean),
        compared_to=compared_to,
    )
    for metric, quantile, shadow_value, main_value in (
        (METRIC_LATENCY_P95, P95, shadow_stats.p95, main_stats.p95),
        (METRIC_LATENCY_P99, P99, shadow_stats.p99, main_stats.p99),
    ):
        if shadow_stats.count * (1 - quantile) < TAIL_MIN_EXPECTED:
            continue  # too few requests for this tail: it stays unjudged, never a pass on its own
        outcome.score(
            settings,
            metric,
            UNIT_SECONDS,
            shadow_value,
            main_value,
            latency_effect_z(
                tail_z(quantile, shadow.buckets, main.buckets),
                shadow_value,
                main_value,
                relative=TAIL_RELATIVE_FLOOR,
                floor=TAIL_FLOOR_SECONDS,
            ),
            compared_to=compared_to,
        )


@dataclass(frozen=True)
class LatencyStats:
    count: float
    mean: float
    variance: float
    p95: float
    p99: float


def _latency_stats(series: ServiceSeries) -> LatencyStats | None:
    window = series.current
    if window is None or window.latency_sum is None:
        return None
    count = histogram_total(series.buckets)
    variance = histogram_variance(series.buckets, window.latency_sum)
    p95 = histogram_quantile(P95, series.buckets)
    p99 = histogram_quantile(P99, series.buckets)
    if count <= 0 or variance is None or p95 is None or p99 is None:
        return None
    return LatencyStats(count=count, mean=window.latency_sum / count, variance=variance, p95=p95, p99=p99)


def latency_effect_z(
    statistical_z: float,
    value: float,
    baseline: float,
    *,
    relative: float = RELATIVE_STDDEV_FLOOR,
    floor: float = LATENCY_STDDEV_FLOOR_SECONDS,
) -> float:
    """A shadow-vs-main latency z-score that also requires a difference worth reporting.

    With thousands of requests per window a significance test flags differences of a few percent
    (on the local cluster, mirrored copies are routinely 0.1 ms slower than the user-facing requests
    at about 1 ms). The difference is therefore also measured in units of the history check's floor,
    ``max(10% of the baseline, 5 ms)``, and the smaller of the two z-scores counts: at sigma 2 a
    shadow alarms only when it is significantly AND at least 20% (and 10 ms) slower. ``relative`` and
    ``floor`` set that unit (the tails use a larger one: TAIL_RELATIVE_FLOOR, TAIL_FLOOR_SECONDS).
    """
    if statistical_z <= 0:
        return statistical_z
    tolerance = max(relative * baseline, floor)
    return min(statistical_z, (value - baseline) / tolerance)


def tail_z(
    quantile: float, shadow_buckets: Sequence[HistogramBucket], main_buckets: Sequence[HistogramBucket]
) -> float:
    """Is the shadow's tail heavier? Take the main service's ``quantile`` (p95, p99) as a threshold and
    compare the shares of requests slower than it (5% or 1% on main) with a two-proportion z-test. A
    quantile has no simple standard error of its own; a share of requests does. A regression on 5% of
    requests barely moves the p95 but puts five times the main's share beyond its p99."""
    threshold = histogram_quantile(quantile, main_buckets)
    shadow_share = histogram_share_at_or_below(threshold, shadow_buckets) if threshold is not None else None
    main_share = histogram_share_at_or_below(threshold, main_buckets) if threshold is not None else None
    if shadow_share is None or main_share is None:
        raise ValueError("tail_z needs two non-empty histograms")
    shadow_total = histogram_total(shadow_buckets)
    main_total = histogram_total(main_buckets)
    return two_proportion_z(
        (1 - shadow_share) * shadow_total,
        shadow_total,
        (1 - main_share) * main_total,
        main_total,
        continuity=True,
    )


def main_label(target: Target) -> str:
    return " + ".join(target.pairs)


# --------------------------------------------------------------------------------------------------
# Each service against its own history
# --------------------------------------------------------------------------------------------------


def compare_to_history(
    target: Target, series: ServiceSeries | None, settings: AnomalySettings, *, launch_on: bool = False
) -> CheckOutcome:
    """Request rate, error rate and mean latency of the current window against the previous windows.

    A shadow's request rate is left out: the mirror's percentage sets it (a canary that served 50% of
    users behind a weighted split and now gets 20% copies "drops" by design, and every ramp moves it).
    Its errors and latency still count, against its history and, in compare_shadow_to_main, its main.

    While a launch is on the route (``launch_on``: the route mirrors to a shadow), a main service's request
    rate is the users' traffic, not the launch's doing: peaks, batch jobs and failovers elsewhere move it
    every day, and latency follows load. Both are reported (``informational``) and never decide the verdict;
    the shadow's latency is judged against its main in the same window instead. Error rates, normalised by
    the traffic, still decide.
    """
    outcome = CheckOutcome(target, CHECK_HISTORY)
    current = series.current if series is not None else None
    if series is None or current is None:
        outcome.gaps.append(f"no metrics for this service in the last {settings.window}")
        return outcome
    # Another route's backends are reported as such by evaluate(), whatever they find.
    users_traffic = launch_on and target.role != ROLE_OTHER_ROUTE
    if target.role != ROLE_SHADOW:
        _score_request_rate_history(outcome, current, series.history, settings, deciding=not users_traffic)
    if current.requests < settings.min_requests:
        outcome.gaps.append(
            f"{current.requests:.0f} requests in the last {settings.window}, fewer than min_requests "
            f"({settings.min_requests}), too few to judge its error rate and latency"
        )
        return outcome
    _score_error_rate_history(outcome, current, series.history, settings)
    _score_latency_history(outcome, current, series.history, settings, deciding=not users_traffic)
    return outcome


def decisions_for(target: Target, launch_on: bool, settings: AnomalySettings) -> int:
    """How many comparisons of one check of ``target`` can decide the verdict (the family that shares
    sigma's false-alarm budget): a shadow's six against its main and its error rate against history; while
    a launch is on, a main's error rate against history; otherwise a service's three history comparisons;
    none for another route's backends (information only)."""
    if target.role == ROLE_OTHER_ROUTE:
        return 0
    if target.role == ROLE_SHADOW:
        return SHADOW_VS_MAIN_COMPARISONS - (0 if settings.client_error_codes else 1) + 1
    if launch_on:
        return 1
    return HISTORY_COMPARISONS_PER_SERVICE


def _score_request_rate_history(
    outcome: CheckOutcome,
    current: WindowCounts,
    history: Sequence[WindowCounts | None],
    settings: AnomalySettings,
    *,
    deciding: bool,
) -> None:
    counts = [window.requests for window in history if window is not None]
    if len(counts) < MIN_HISTORY_POINTS:
        outcome.gaps.append(_short_history(len(counts), "metrics", settings))
        return
    mean_count, stddev_count = mean_and_stddev(counts)
    if mean_count < settings.min_requests:
        outcome.gaps.append(
            f"its previous windows averaged {mean_count:.0f} requests, "
            f"fewer than min_requests ({settings.min_requests})"
        )
        return
    seconds = settings.window_seconds
    # Counting noise (Poisson: stddev = sqrt(count)) and a relative floor bound the stddev from below.
    floor = max(math.sqrt(mean_count), RELATIVE_STDDEV_FLOOR * mean_count) / seconds
    mean_rate, stddev_rate = mean_count / seconds, stddev_count / seconds
    current_rate = current.requests / seconds
    z_score = history_z(current_rate, mean_rate, stddev_rate, floor)
    outcome.score(
        settings,
        METRIC_REQUEST_RATE,
        UNIT_PER_SECOND,
        current_rate,
        mean_rate,
        z_score,
        worse_is_lower=True,
        compared_to="history",
        deciding=deciding,
    )


def error_rate_stddev_floor(history_mean: float, current_requests: float) -> float:
    """Binomial sampling noise of an error rate over ``current_requests`` requests. A history without
    errors (mean 0) is treated as one error per window's worth of requests, so the floor stays > 0."""
    proportion = min(max(history_mean, 1 / current_requests), 1 - 1 / current_requests)
    return math.sqrt(proportion * (1 - proportion) / current_requests)


def continuity_corrected(rate: float, baseline: float, requests: float) -> float:
    """``rate`` moved half an error towards ``baseline`` (never past it).

    Errors are whole counts and rare, so the normal approximation behind the z-score is skewed: with
    about one error per window as usual, three errors already score z 2 although that happens about
    8% of the time. On Poisson-like synthetic traffic (bench/anomaly_bench.py) the uncorrected history
    check flagged ~4% of healthy services at sigma 2 instead of the promised 2.3%; corrected, ~2%.
    """
    if rate <= baseline:
        return rate
    return max(baseline, rate - 0.5 / requests)


def _score_error_rate_history(
    outcome: CheckOutcome, current: WindowCounts, history: Sequence[WindowCounts | None], settings: AnomalySettings
) -> None:
    rates = [
        window.errors / window.requests
        for window in history
        if window is not None and window.requests >= settings.min_requests
    ]
    if len(rates) < MIN_HISTORY_POINTS:
        outcome.gaps.append(_short_history(len(rates), f"at least {settings.min_requests} requests", settings))
        return
    mean, stddev = mean_and_stddev(rates)
    current_rate = current.errors / current.requests
    floor = error_rate_stddev_floor(mean, current.requests)
    z_score = history_z(continuity_corrected(current_rate, mean, current.requests), mean, stddev, floor)
    outcome.score(settings, METRIC_ERROR_RATE, UNIT_RATIO, current_rate, mean, z_score, compared_to="history")


def _score_latency_history(
    outcome: CheckOutcome,
    current: WindowCounts,
    history: Sequence[WindowCounts | None],
    settings: AnomalySettings,
    *,
    deciding: bool,
) -> None:
    current_mean = current.latency_mean
    if current_mean is None or (current.latency_count or 0) < settings.min_requests:
        outcome.gaps.append("too few latency observations in the current window")
        return
    means = [
        mean
        for window in history
        if window is not None
        and (window.latency_count or 0) >= settings.min_requests
        and (mean := window.latency_mean) is not None
    ]
    if len(means) < MIN_HISTORY_POINTS:
        outcome.gaps.append(_short_history(len(means), "enough latency observations", settings))
        return
    mean, stddev = mean_and_stddev(means)
    floor = max(RELATIVE_STDDEV_FLOOR * mean, LATENCY_STDDEV_FLOOR_SECONDS)
    z_score = history_z(current_mean, mean, stddev, floor)
    outcome.score(
        settings,
        METRIC_LATENCY_MEAN,
        UNIT_SECONDS,
        current_mean,
        mean,
        z_score,
        compared_to="history",
        deciding=deciding,
    )


def _short_history(points: int, what: str, settings: AnomalySettings) -> str:
    return (
        f"only {points} of the previous {settings.history_windows} windows of {settings.window} had {what} "
        f"(at least {MIN_HISTORY_POINTS} needed)"
    )


# --------------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------------


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
            "anomalies": [anomaly.to_dict() for anomaly in self.anomalies],
            "informational": [anomaly.to_dict() for anomaly in self.informational],
            "insufficient_data": [gap.to_dict() for gap in self.insufficient],
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
        summary=_summary(verdict, anomalies, primary, judged, settings)
        + _informational_note(users_traffic, "history that moves with the users' traffic")
        + _informational_note(other_routes, "on another route of the IngressRoute"),
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


def _informational_note(informational: Sequence[Anomaly], why: str) -> str:
    if not informational:
        return ""
    more = f" (and {len(informational) - 1} more)" if len(informational) > 1 else ""
    return f" Not part of the verdict, {why}: {informational[0].describe()}{more}."


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


def _summary(
    verdict: str,
    anomalies: Sequence[Anomaly],
    primary: Sequence[CheckOutcome],
    outcomes: Sequence[CheckOutcome],
    settings: AnomalySettings,
) -> str:
    span = f"over the last {settings.window} at sigma {settings.sigma:g}"
    if settings.threshold > settings.sigma:
        span += f" (z {settings.threshold:.1f} per comparison across {settings.comparisons} comparisons)"
    if verdict == VERDICT_ANOMALOUS:
        more = f", and {_count(len(anomalies) - 1, 'more anomaly', 'more anomalies')}" if len(anomalies) > 1 else ""
        return f"{_count(len(anomalies), 'anomaly', 'anomalies')} {span}: {anomalies[0].describe()}{more}."
    if verdict == VERDICT_INSUFFICIENT:
        unjudged = [outcome for outcome in primary if outcome.status == VERDICT_INSUFFICIENT]
        if not unjudged:
            return f"Not enough data to judge {span}: there are no services to check."
        first = unjudged[0]
        more = f", and {_count(len(unjudged) - 1, 'more service', 'more services')} too" if len(unjudged) > 1 else ""
        return f"Not enough data to judge {span}: {_label_of(first)} {first.gaps[0] if first.gaps else ''}{more}."
    return f"No anomalies {span}: {_ok_details(outcomes)}."


def _ok_details(outcomes: Sequence[CheckOutcome]) -> str:
    shadows_ok = sum(1 for o in outcomes if o.check == CHECK_SHADOW_VS_MAIN and o.status == VERDICT_OK)
    history_ok = sum(1 for o in outcomes if o.check == CHECK_HISTORY and o.status == VERDICT_OK)
    history_unjudged = sum(1 for o in outcomes if o.check == CHECK_HISTORY and o.status == VERDICT_INSUFFICIENT)
    parts = []
    if shadows_ok:
        parts.append(
            _count(shadows_ok, "shadow behaves like its main service", "shadows behave like their main services")
        )
    if history_ok:
        parts.append(_count(history_ok, "service matches its recent history", "services match their recent history"))
    if history_unjudged:
        parts.append(f"{_count(history_unjudged, 'service has', 'services have')} too little history to compare")
    return ", ".join(parts) if parts else "nothing to report"


def _label_of(outcome: CheckOutcome) -> str:
    name = outcome.target.display_name
    return f"shadow {name}:" if outcome.target.role == ROLE_SHADOW else f"{name}:"


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


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
