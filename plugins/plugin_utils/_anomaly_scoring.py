# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One service judged: a shadow against its main service(s) in the same window, any service against its history."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    ROLE_OTHER_ROUTE,
    ROLE_SHADOW,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    CHECK_HISTORY,
    CHECK_SHADOW_VS_MAIN,
    METRIC_CLIENT_ERROR_RATE,
    METRIC_DELIVERY,
    METRIC_ERROR_RATE,
    METRIC_LATENCY_MEAN,
    METRIC_LATENCY_P95,
    METRIC_LATENCY_P99,
    METRIC_REQUEST_RATE,
    UNIT_PER_SECOND,
    UNIT_RATIO,
    UNIT_SECONDS,
    CheckOutcome,
    ServiceSeries,
    Target,
    WindowCounts,
    main_label,
    merge_series,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import (
    MIN_HISTORY_POINTS,
    AnomalySettings,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_stats import (
    LATENCY_STDDEV_FLOOR_SECONDS,
    P95,
    P99,
    RELATIVE_STDDEV_FLOOR,
    continuity_corrected,
    delivery_z,
    error_rate_stddev_floor,
    histogram_quantile,
    histogram_total,
    histogram_variance,
    history_z,
    latency_effect_z,
    mean_and_stddev,
    tail_z,
    two_proportion_z,
    welch_z,
)

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
