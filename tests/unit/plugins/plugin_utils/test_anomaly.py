# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The statistics against values computed by hand (the arithmetic is spelled out next to each one)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly import (
    AnomalySettings,
    HistogramBucket,
    ServiceSeries,
    Target,
    WindowCounts,
    compare_shadow_to_main,
    compare_to_history,
    continuity_corrected,
    error_rate_stddev_floor,
    evaluate,
    family_wise_sigma,
    histogram_quantile,
    histogram_share_at_or_below,
    histogram_variance,
    history_z,
    latency_effect_z,
    mean_and_stddev,
    merge_series,
    normalise_buckets,
    p95_tail_z,
    parse_prometheus_duration,
    severity_for,
    two_proportion_z,
    welch_z,
)

INF = math.inf
SHADOW = "production-api-service-canary-80@kubernetescrd"
MAIN = "production-api-service-stable-80@kubernetescrd"
SETTINGS = AnomalySettings.from_options(sigma=2, window="1m", history_windows=6, min_requests=100)

# Traefik's default buckets (0.1, 0.3, 1.2, 5). Means are the bucket midpoints' weighted mean, so
# the exact _sum matches what the buckets say.
FAST = ((0.1, 50), (0.3, 80), (1.2, 95), (5, 100), (INF, 100))  # sum 35.25, p95 1.2
SLOW = ((0.1, 10), (0.3, 40), (1.2, 70), (5, 100), (INF, 100))  # sum 122, p95 4.3667


def buckets(pairs: Sequence[tuple[float, float]], scale: float = 1.0) -> tuple[HistogramBucket, ...]:
    return tuple(HistogramBucket(bound, count * scale) for bound, count in pairs)


def window(requests: float, errors: float = 0, latency_mean: float = 0.1) -> WindowCounts:
    return WindowCounts(requests, errors, latency_sum=latency_mean * requests, latency_count=requests)


def series(
    service: str, windows: Sequence[WindowCounts | None], histogram: tuple[HistogramBucket, ...] = ()
) -> ServiceSeries:
    return ServiceSeries(service, tuple(windows), histogram)


def shadow_target(*pairs: str) -> Target:
    return Target(SHADOW, role="shadow", name="api-service-canary", namespace="production", pairs=pairs or (MAIN,))


# ---- primitives ---------------------------------------------------------------------------------


def test_two_proportion_z_matches_hand_computation() -> None:
    # p_a = 30/200 = 0.15, p_b = 10/400 = 0.025, pooled = 40/600;
    # se = sqrt(0.0667 * 0.9333 * (1/200 + 1/400)) = 0.021602; z = 0.125 / 0.021602 = 5.7864
    assert two_proportion_z(30, 200, 10, 400) == pytest.approx(5.786376, abs=1e-6)


@pytest.mark.parametrize(
    ("hits_a", "total_a", "hits_b", "total_b", "expected"),
    [
        (5, 100, 10, 200, 0.0),  # same proportion
        (0, 100, 0, 500, 0.0),  # no errors anywhere: pooled p = 0, nothing to score
        (100, 100, 50, 50, 0.0),  # all errors on both sides: pooled p = 1
    ],
)
def test_two_proportion_z_without_difference_is_zero(
    hits_a: float, total_a: float, hits_b: float, total_b: float, expected: float
) -> None:
    assert two_proportion_z(hits_a, total_a, hits_b, total_b) == expected


def test_two_proportion_z_is_negative_when_a_is_better() -> None:
    assert two_proportion_z(10, 400, 30, 200) == pytest.approx(-5.786376, abs=1e-6)


def test_two_proportion_z_refuses_empty_samples() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        two_proportion_z(0, 0, 1, 10)


def test_welch_z_matches_hand_computation() -> None:
    # se = sqrt(0.01/100 + 0.04/400) = sqrt(0.0002) = 0.014142; z = 0.1 / 0.014142 = 7.0711
    assert welch_z(0.3, 0.01, 100, 0.2, 0.04, 400) == pytest.approx(7.071068, abs=1e-6)


def test_mean_and_sample_stddev() -> None:
    # mean 5; squared deviations sum to 32; sample variance 32/7; stddev 2.13809
    mean, stddev = mean_and_stddev([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5
    assert stddev == pytest.approx(2.138090, abs=1e-6)
    assert mean_and_stddev([3.0]) == (3.0, 0.0)


def test_history_z_uses_the_floor_when_history_is_flat() -> None:
    assert history_z(13, 10, 1, 0.5) == 3
    assert history_z(13, 10, 0, 2) == 1.5
    assert history_z(10, 10, 0, 0) == 0  # no spread and no difference: no division by zero


@pytest.mark.parametrize(
    ("z_score", "expected"),
    [(1.99, None), (2.0, "warning"), (3.99, "warning"), (4.0, "critical"), (9.0, "critical"), (-5.0, None)],
)
def test_severity_levels_at_sigma_2(z_score: float, expected: str | None) -> None:
    assert severity_for(z_score, 2.0) == expected


def test_error_rate_floor_is_binomial_noise_and_never_zero() -> None:
    # p = 0.05, n = 400: sqrt(0.05 * 0.95 / 400) = 0.010897
    assert error_rate_stddev_floor(0.05, 400) == pytest.approx(0.010897, abs=1e-6)
    # history without errors counts as one error per 100 requests: sqrt(0.01 * 0.99 / 100) = 0.009950
    assert error_rate_stddev_floor(0.0, 100) == pytest.approx(0.009950, abs=1e-6)


# ---- histograms ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantile", "expected"),
    [
        (0.5, 0.1),  # rank 50 = top of the first bucket
        (0.6, 0.1 + 0.2 * 10 / 30),  # rank 60: 10 of the 30 in (0.1, 0.3]
        (0.9, 0.3 + 0.9 * 10 / 15),  # rank 90: 10 of the 15 in (0.3, 1.2]
        (0.95, 1.2),
    ],
)
def test_histogram_quantile_interpolates_like_prometheus(quantile: float, expected: float) -> None:
    assert histogram_quantile(quantile, buckets(FAST)) == pytest.approx(expected)


def test_histogram_quantile_in_the_overflow_bucket_is_the_highest_finite_bound() -> None:
    overflowing = buckets(((0.1, 50), (0.3, 80), (1.2, 90), (5, 94), (INF, 100)))
    assert histogram_quantile(0.95, overflowing) == 5


def test_histogram_quantile_without_data_or_inf_bucket_is_none() -> None:
    assert histogram_quantile(0.95, buckets(((0.1, 0), (INF, 0)))) is None
    assert histogram_quantile(0.95, buckets(((0.1, 5), (0.3, 9)))) is None
    assert histogram_quantile(0.95, ()) is None


def test_normalise_buckets_sorts_and_makes_counts_monotonic() -> None:
    # increase() extrapolates each bucket separately, so counts can dip slightly
    messy = (HistogramBucket(INF, 100), HistogramBucket(0.3, 49.5), HistogramBucket(0.1, 50))
    assert normalise_buckets(messy) == buckets(((0.1, 50), (0.3, 50), (INF, 100)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.05, 0.25),  # half of the first bucket's 50
        (0.2, 0.65),  # 50 + 30 * (0.1 / 0.2) = 65
        (1.2, 0.95),
        (10.0, 1.0),  # beyond the last finite bound: that bound's share
        (0.0, 0.0),
    ],
)
def test_histogram_share_at_or_below(value: float, expected: float) -> None:
    assert histogram_share_at_or_below(value, buckets(FAST)) == pytest.approx(expected)


def test_histogram_variance_matches_hand_computation() -> None:
    # 60 in (0, 0.1], 40 in (0.1, 0.3]; sum = 60*0.05 + 40*0.2 = 11, mean 0.11
    # 60 * ((0.05-0.11)^2 + 0.1^2/12) + 40 * ((0.2-0.11)^2 + 0.2^2/12) = 0.266 + 0.457333 = 0.723333
    histogram = buckets(((0.1, 60), (0.3, 100), (INF, 100)))
    assert histogram_variance(histogram, 11.0) == pytest.approx(0.00723333, abs=1e-8)


def test_histogram_variance_places_overflow_where_the_sum_says() -> None:
    # 90 in (0, 0.1], 10 above 0.1 with sum 24.5: the 10 average (24.5 - 90*0.05) / 10 = 2.0 s
    # mean 0.245; 90 * ((0.05-0.245)^2 + 0.01/12) + 10 * (2.0-0.245)^2 = 3.49725 + 30.80025
    histogram = buckets(((0.1, 90), (INF, 100)))
    assert histogram_variance(histogram, 24.5) == pytest.approx(0.342975, abs=1e-8)


def test_histogram_variance_of_a_single_bucket_is_positive() -> None:
    # all requests in (0, 0.1]: uniform within the bucket, 0.1^2 / 12
    assert histogram_variance(buckets(((0.1, 100), (INF, 100))), 5.0) == pytest.approx(0.01 / 12)


def test_p95_tail_z_matches_hand_computation() -> None:
    # main p95 = 1.2; shares slower than 1.2 s: shadow 30/100, main 5/100
    # pooled 35/200; se = sqrt(0.175 * 0.825 * 0.02) = 0.053735; z = 0.25 / 0.053735 = 4.6524
    assert p95_tail_z(buckets(SLOW), buckets(FAST)) == pytest.approx(4.652421, abs=1e-6)
    assert p95_tail_z(buckets(FAST), buckets(FAST)) == pytest.approx(0.0, abs=1e-9)


def test_merge_series_adds_windows_and_buckets() -> None:
    first = series("a", [window(100, 1), window(200, 2)], buckets(((0.1, 150), (INF, 200))))
    second = series("b", [window(300, 3)], buckets(((0.1, 50), (INF, 300))))
    merged = merge_series("a + b", [first, second])
    assert merged.windows[0] == window(100, 1)  # "b" has no older window
    current = merged.current
    assert current is not None
    assert (current.requests, current.errors, current.latency_count) == (500, 5, 500)
    assert current.latency_sum == pytest.approx(50.0)
    assert merged.buckets == buckets(((0.1, 200), (INF, 500)))


# ---- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300), ("30s", 30), ("1h30m", 5400), ("1m500ms", 60.5)])
def test_parse_prometheus_duration(text: str, seconds: float) -> None:
    assert parse_prometheus_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "500ms", "5m;drop"])
def test_parse_prometheus_duration_rejects(text: str) -> None:
    with pytest.raises(DarklaunchError) as raised:
        parse_prometheus_duration(text)
    assert raised.value.field == "window"


def test_settings_accept_survey_strings() -> None:
    settings = AnomalySettings.from_options(sigma="2.5", window=90, history_windows="4", min_requests="50")
    assert settings == AnomalySettings(sigma=2.5, window="90s", window_seconds=90, history_windows=4, min_requests=50)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"sigma": 0}, "sigma"),
        ({"sigma": True}, "sigma"),
        ({"sigma": "nan"}, "sigma"),
        ({"history_windows": 1}, "history_windows"),
        ({"history_windows": 5000}, "history_windows"),
        ({"min_requests": 0}, "min_requests"),
        ({"min_requests": "many"}, "min_requests"),
        ({"window": "soon"}, "window"),
    ],
)
def test_settings_reject_bad_options(options: dict[str, object], field: str) -> None:
    with pytest.raises(DarklaunchError) as raised:
        AnomalySettings.from_options(**options)
    assert raised.value.field == field


# ---- shadow vs main -----------------------------------------------------------------------------


def slow_and_fast() -> tuple[ServiceSeries, ServiceSeries]:
    shadow = series(SHADOW, [WindowCounts(100, 0, 122.0, 100)], buckets(SLOW))
    main = series(MAIN, [WindowCounts(100, 0, 35.25, 100)], buckets(FAST))
    return shadow, main


def test_shadow_like_main_is_ok() -> None:
    shadow = series(SHADOW, [window(1000, 10)], buckets(FAST, 10))
    main = series(MAIN, [window(1000, 10)], buckets(FAST, 10))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    assert (outcome.status, outcome.judged, outcome.anomalies) == ("ok", 3, [])


def test_shadow_with_more_errors_is_anomalous() -> None:
    shadow = series(SHADOW, [window(200, 30)], buckets(FAST, 2))
    main = series(MAIN, [window(400, 10)], buckets(FAST, 4))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    [anomaly] = outcome.anomalies
    assert (anomaly.metric, anomaly.severity, anomaly.value, anomaly.baseline) == (
        "error_rate",
        "critical",
        0.15,
        0.025,
    )
    assert anomaly.z_score == pytest.approx(5.786376, abs=1e-6)


def test_shadow_with_fewer_errors_is_fine() -> None:
    shadow = series(SHADOW, [window(200, 0)], buckets(FAST, 2))
    main = series(MAIN, [window(400, 40)], buckets(FAST, 4))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    assert outcome.status == "ok"


def test_slow_shadow_is_anomalous_on_mean_and_p95() -> None:
    # mean 1.22 vs 0.3525; histogram variances 1.957933 and 0.525577 (midpoint + width^2/12 per bucket)
    # z = 0.8675 / sqrt(1.957933/100 + 0.525577/100) = 5.5047
    shadow, main = slow_and_fast()
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    found = {anomaly.metric: anomaly for anomaly in outcome.anomalies}
    assert set(found) == {"latency_mean", "latency_p95"}
    assert found["latency_mean"].z_score == pytest.approx(5.504736, abs=1e-6)
    assert (found["latency_mean"].value, found["latency_mean"].baseline) == pytest.approx((1.22, 0.3525))
    assert found["latency_p95"].z_score == pytest.approx(4.652421, abs=1e-6)
    assert (found["latency_p95"].value, found["latency_p95"].baseline) == pytest.approx((4.366667, 1.2), abs=1e-6)


def test_faster_shadow_is_fine() -> None:
    shadow, main = slow_and_fast()
    faster = compare_shadow_to_main(
        shadow_target(), series(SHADOW, main.windows, main.buckets), {MAIN: shadow}, SETTINGS
    )
    assert faster.status == "ok"


def test_latency_effect_z_caps_by_the_size_of_the_difference() -> None:
    # tolerance = max(10% of the baseline, 5 ms)
    assert latency_effect_z(5.0, 0.108, 0.1) == pytest.approx(0.8)  # 8 ms over 100 ms: 0.008 / 0.01
    assert latency_effect_z(5.0, 0.2, 0.1) == 5.0  # 100 ms over 100 ms: 10 tolerances, z stays
    assert latency_effect_z(9.0, 0.002, 0.001) == pytest.approx(0.2)  # 1 ms over 1 ms: 5 ms floor
    assert latency_effect_z(9.0, 0.003, 0.001) == pytest.approx(0.4)  # a loaded node's 1 -> 3 ms: no alarm
    assert latency_effect_z(-3.0, 0.05, 0.1) == -3.0  # faster: untouched (never alarms)


def test_a_few_percent_slower_shadow_never_alarms_however_many_requests() -> None:
    # Real Traefik: mirrored copies ~0.1 ms slower at ~1 ms. Here 8% slower over 100,000 requests each:
    # Welch z = 0.0282 / sqrt(2 * 0.525577 / 100000) = 8.7 (critical on its own), effect 0.0282 / 0.03525 = 0.8.
    main = series(MAIN, [WindowCounts(100_000, 0, 35_250.0, 100_000)], buckets(FAST, 1000))
    shadow = series(SHADOW, [WindowCounts(100_000, 0, 38_070.0, 100_000)], buckets(FAST, 1000))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    assert (outcome.status, outcome.anomalies) == ("ok", [])


def test_a_clearly_slower_shadow_still_alarms_with_many_requests() -> None:
    # 30% slower: effect 0.10575 / 0.03525 = 3.0 (warning at sigma 2), below the statistical z.
    main = series(MAIN, [WindowCounts(100_000, 0, 35_250.0, 100_000)], buckets(FAST, 1000))
    shadow = series(SHADOW, [WindowCounts(100_000, 0, 45_825.0, 100_000)], buckets(FAST, 1000))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    [anomaly] = outcome.anomalies
    assert (anomaly.metric, anomaly.severity) == ("latency_mean", "warning")
    assert anomaly.z_score == pytest.approx(3.0)


def test_shadow_with_few_requests_is_insufficient_not_ok() -> None:
    shadow = series(SHADOW, [window(50, 0)], buckets(FAST, 0.5))
    main = series(MAIN, [window(1000, 0)], buckets(FAST, 10))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    assert outcome.status == "insufficient_data"
    assert outcome.gaps == ["the shadow had 50 requests in the last 1m, fewer than min_requests (100)"]


def test_shadow_without_main_metrics_is_insufficient() -> None:
    shadow = series(SHADOW, [window(500, 0)], buckets(FAST, 5))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {}, SETTINGS)
    assert outcome.status == "insufficient_data"
    assert MAIN in outcome.gaps[0]


def test_shadow_of_a_weighted_split_is_compared_with_all_mains_together() -> None:
    # 30/200 against (5 + 5)/(200 + 200): the same numbers as the hand-computed two-proportion case
    shadow = series(SHADOW, [window(200, 30)], buckets(FAST, 2))
    mains = {"a": series("a", [window(200, 5)], buckets(FAST, 2)), "b": series("b", [window(200, 5)], buckets(FAST, 2))}
    outcome = compare_shadow_to_main(shadow_target("a", "b"), shadow, mains, SETTINGS)
    [anomaly] = outcome.anomalies
    assert anomaly.z_score == pytest.approx(5.786376, abs=1e-6)
    assert anomaly.compared_to == "a + b"


# ---- history ------------------------------------------------------------------------------------

STEADY = [window(600, 6, 0.1)] * 6  # 10 req/s for a 1m window, 1% errors, 100 ms


def history_anomalies(history: Sequence[WindowCounts | None], current: WindowCounts | None) -> dict[str, float]:
    """``{metric: z_score}`` of the anomalies found; the other metrics were judged and fine."""
    outcome = compare_to_history(Target(MAIN, role="main"), series(MAIN, [*history, current]), SETTINGS)
    assert outcome.judged == 3
    return {anomaly.metric: anomaly.z_score for anomaly in outcome.anomalies}


def test_steady_service_matches_its_history() -> None:
    outcome = compare_to_history(Target(MAIN), series(MAIN, [*STEADY, window(600, 6, 0.1)]), SETTINGS)
    assert (outcome.status, outcome.judged) == ("ok", 3)


def test_request_rate_drop_is_anomalous() -> None:
    # history 10 req/s with zero spread; floor max(sqrt(600), 0.1 * 600) / 60 = 1 req/s
    # current 300 / 60 = 5 req/s: z = (5 - 10) / 1 = -5 (a drop is the worse direction)
    assert history_anomalies(STEADY, window(300, 3, 0.1)) == {"request_rate": -5.0}


def test_request_rate_spike_is_not_an_anomaly() -> None:
    assert history_anomalies(STEADY, window(1200, 12, 0.1)) == {}


def test_a_shadows_request_rate_is_set_by_the_mirror_not_judged_against_its_history() -> None:
    # A canary that served half the users behind a weighted split now gets 20% copies: its rate "drops"
    # by design. The same drop on a main service is anomalous (test_request_rate_drop_is_anomalous).
    shadow = compare_to_history(Target(SHADOW, role="shadow"), series(SHADOW, [*STEADY, window(300, 3, 0.1)]), SETTINGS)
    assert (shadow.status, shadow.judged, shadow.anomalies) == ("ok", 2, [])
    # Its errors still count against its history.
    failing = compare_to_history(
        Target(SHADOW, role="shadow"), series(SHADOW, [*STEADY, window(300, 60, 0.1)]), SETTINGS
    )
    assert [anomaly.metric for anomaly in failing.anomalies] == ["error_rate"]


def test_error_rate_rise_against_history() -> None:
    # history rates 1%, 2%, 1%, 2%, 1%, 2%: mean 0.015, sample stddev sqrt(6 * 0.005^2 / 5) = 0.0054772
    # floor sqrt(0.015 * 0.985 / 600) = 0.0049624 < stddev; continuity-corrected current 29.5 / 600:
    # z = (0.0491667 - 0.015) / 0.0054772 = 6.2380 (the value reported stays 30 / 600 = 0.05)
    history = [window(600, errors) for errors in (6, 12, 6, 12, 6, 12)]
    result = history_anomalies(history, window(600, 30))
    assert result["error_rate"] == pytest.approx(6.237951, abs=1e-6)


def test_continuity_correction_moves_half_an_error_towards_the_baseline() -> None:
    assert continuity_corrected(3 / 100, 0.01, 100) == pytest.approx(0.025)
    assert continuity_corrected(0.011, 0.01, 100) == 0.01  # never past the baseline
    assert continuity_corrected(0.0, 0.01, 100) == 0.0  # better than usual: untouched


def test_flat_error_free_history_does_not_alarm_on_one_error() -> None:
    # floor uses p = 1/600: sqrt(p (1 - p) / 600) = 0.0016653; minus half an error (continuity),
    # one error: z = 0.5004; two: z = 1.5013; three: z = 2.5021 (warning)
    clean = [window(600, 0)] * 6
    assert history_anomalies(clean, window(600, 1)) == {}
    assert history_anomalies(clean, window(600, 2)) == {}
    assert history_anomalies(clean, window(600, 3))["error_rate"] == pytest.approx(2.502086, abs=1e-6)


def test_latency_rise_against_history() -> None:
    # means 0.1, 0.1, 0.1, 0.12, 0.08, 0.1: mean 0.1, stddev sqrt(0.0008 / 5) = 0.012649 > floor 0.01
    history = [window(600, 6, latency) for latency in (0.1, 0.1, 0.1, 0.12, 0.08, 0.1)]
    assert history_anomalies(history, window(600, 6, 0.15))["latency_mean"] == pytest.approx(3.952847, abs=1e-6)
    assert history_anomalies(history, window(600, 6, 0.2))["latency_mean"] == pytest.approx(7.905694, abs=1e-6)


def test_flat_latency_history_uses_the_relative_floor() -> None:
    # stddev 0, floor 10% of 0.1 s = 0.01 s: 0.115 s is z 1.5 (fine), 0.125 s is z 2.5 (warning)
    assert history_anomalies(STEADY, window(600, 6, 0.115)) == {}
    assert history_anomalies(STEADY, window(600, 6, 0.125))["latency_mean"] == pytest.approx(2.5)


def test_millisecond_latency_moves_in_units_of_the_absolute_floor() -> None:
    # History flat at 1 ms: the floor is 5 ms (not 10% of 1 ms). A loaded node's 1 -> 3 ms is z 0.4
    # (the CI run that saw it); a 12 ms shadow is z 2.2 (warning).
    fast = [window(600, 6, 0.001)] * 6
    assert history_anomalies(fast, window(600, 6, 0.003)) == {}
    assert history_anomalies(fast, window(600, 6, 0.012))["latency_mean"] == pytest.approx(2.2)


def test_quiet_service_is_insufficient_never_ok() -> None:
    quiet = [window(50, 0)] * 6
    outcome = compare_to_history(Target(MAIN), series(MAIN, [*quiet, window(50, 0)]), SETTINGS)
    assert outcome.status == "insufficient_data"
    assert outcome.judged == 0


def test_new_service_without_history_is_insufficient() -> None:
    outcome = compare_to_history(Target(MAIN), series(MAIN, [None] * 6 + [window(600)]), SETTINGS)
    assert outcome.status == "insufficient_data"
    assert "only 0 of the previous 6 windows" in outcome.gaps[0]


def test_service_without_metrics_is_insufficient() -> None:
    outcome = compare_to_history(Target(MAIN), None, SETTINGS)
    assert (outcome.status, outcome.gaps) == ("insufficient_data", ["no metrics for this service in the last 1m"])


# ---- verdict ------------------------------------------------------------------------------------


def route_targets() -> list[Target]:
    return [Target(MAIN, role="main", name="api-service-stable", namespace="production"), shadow_target()]


def test_verdict_ok_for_a_healthy_new_shadow_without_history() -> None:
    data = {
        MAIN: series(MAIN, [*STEADY, window(600, 6)], buckets(FAST, 6)),
        SHADOW: series(SHADOW, [None] * 6 + [window(600, 6)], buckets(FAST, 6)),
    }
    report = evaluate(data, route_targets(), SETTINGS).to_dict()
    assert report["verdict"] == "ok"
    assert report["summary"] == (
        "No anomalies over the last 1m at sigma 2: 1 shadow behaves like its main service, "
        "1 service matches its recent history, 1 service has too little history to compare."
    )
    assert [gap["service"] for gap in report["insufficient_data"]] == [SHADOW]
    json.dumps(report)  # plain data all the way down


def test_verdict_anomalous_with_one_sentence_summary() -> None:
    data = {
        MAIN: series(MAIN, [window(400, 10)] * 7, buckets(FAST, 4)),
        SHADOW: series(SHADOW, [window(200, 30)], buckets(FAST, 2)),
    }
    report = evaluate(data, route_targets(), SETTINGS).to_dict()
    assert report["verdict"] == "anomalous"
    assert report["summary"] == (
        "1 anomaly over the last 1m at sigma 2: shadow api-service-canary has an error rate of 15.00% "
        "against 2.50% on main (z 5.79, critical)."
    )
    [anomaly] = report["anomalies"]
    assert {key: anomaly[key] for key in ("service", "role", "metric", "value", "baseline", "z_score", "severity")} == {
        "service": SHADOW,
        "role": "shadow",
        "metric": "error_rate",
        "value": 0.15,
        "baseline": 0.025,
        "z_score": 5.786,
        "severity": "critical",
    }
    assert (report["window"], report["sigma"], report["history_windows"], report["min_requests"]) == ("1m", 2.0, 6, 100)


def test_main_degrading_against_its_history_also_counts_but_not_its_users_traffic() -> None:
    # main drops from 600 to 400 requests a minute (z -3.33) while its error rate rises to 2.5%
    # (floor sqrt(0.01 * 0.99 / 400) = 0.004975, continuity-corrected 9.5 / 400: z 2.764): its error rate is a
    # warning besides the shadow's finding; its request rate is the users' traffic, reported beside the verdict
    data = {
        MAIN: series(MAIN, [*STEADY, window(400, 10)], buckets(FAST, 4)),
        SHADOW: series(SHADOW, [window(200, 30)], buckets(FAST, 2)),
    }
    report = evaluate(data, route_targets(), SETTINGS)
    found = [(a.target.role, a.metric, a.severity, round(a.z_score, 3)) for a in report.anomalies]
    assert found == [("shadow", "error_rate", "critical", 5.786), ("main", "error_rate", "warning", 2.764)]
    aside = [(a.target.role, a.metric, a.severity, round(a.z_score, 3)) for a in report.informational]
    assert aside == [("main", "request_rate", "warning", -3.333)]
    assert "(z 5.79, critical), and 1 more anomaly. Not part of the verdict, the users' traffic changed: " in (
        report.summary
    )


def test_users_traffic_falling_back_after_a_surge_never_fails_a_launch() -> None:
    # Users' traffic tripled, then fell back: against a history of the surge, the main's request rate drops
    # (z about -6.7). The shadow behaves like its main, so a launch on the route passes; the drop is reported.
    surge = [window(1800, 18, 0.1)] * 6
    data = {
        MAIN: series(MAIN, [*surge, window(600, 6, 0.1)], buckets(FAST, 6)),
        SHADOW: series(SHADOW, [window(300, 3, 0.1)], buckets(FAST, 3)),
    }
    report = evaluate(data, route_targets(), SETTINGS)
    assert report.verdict == "ok", report.summary
    assert [(a.target.role, a.metric) for a in report.informational] == [("main", "request_rate")]
    assert "Not part of the verdict, the users' traffic changed: api-service-stable has a request rate" in (
        report.summary
    )
    assert report.to_dict()["informational"][0]["metric"] == "request_rate"


def test_without_a_launch_a_main_whose_traffic_drops_is_still_anomalous() -> None:
    # No shadow on the route (the status or anomaly-check question "is this route healthy?"): a drop counts.
    surge = [window(1800, 18, 0.1)] * 6
    data = {MAIN: series(MAIN, [*surge, window(600, 6, 0.1)], buckets(FAST, 6))}
    report = evaluate(data, [Target(MAIN, role="main")], SETTINGS)
    assert report.verdict == "anomalous"
    assert [a.metric for a in report.anomalies] == ["request_rate"]
    assert evaluate(data, None, SETTINGS).verdict == "anomalous"


def test_verdict_insufficient_when_the_shadow_gets_no_traffic() -> None:
    data = {MAIN: series(MAIN, [*STEADY, window(600, 6)], buckets(FAST, 6))}
    report = evaluate(data, route_targets(), SETTINGS).to_dict()
    assert report["verdict"] == "insufficient_data"
    assert report["summary"] == (
        "Not enough data to judge over the last 1m at sigma 2: shadow api-service-canary: "
        "the shadow had 0 requests in the last 1m, fewer than min_requests (100)."
    )


def test_route_without_shadow_needs_history_of_every_target() -> None:
    data = {MAIN: series(MAIN, [window(600)])}
    report = evaluate(data, [Target(MAIN, role="main")], SETTINGS)
    assert report.verdict == "insufficient_data"


def test_cluster_wide_ok_while_idle_services_are_listed() -> None:
    data = {
        MAIN: series(MAIN, [*STEADY, window(600, 6)]),
        "idle-svc-80@kubernetescrd": series("idle-svc-80@kubernetescrd", [window(0)] * 7),
    }
    report = evaluate(data, None, SETTINGS).to_dict()
    assert report["verdict"] == "ok"
    assert [row["service"] for row in report["services"]] == ["idle-svc-80@kubernetescrd", MAIN]
    assert [gap["service"] for gap in report["insufficient_data"]] == ["idle-svc-80@kubernetescrd"]


def test_cluster_wide_with_nothing_to_judge_is_insufficient() -> None:
    assert evaluate({}, None, SETTINGS).verdict == "insufficient_data"
    assert evaluate({}, None, SETTINGS).summary.endswith("there are no services to check.")
    idle = {"idle": series("idle", [window(3)] * 7)}
    assert evaluate(idle, None, SETTINGS).verdict == "insufficient_data"


def test_critical_anomalies_come_first() -> None:
    warning_history = [window(600, 6, latency) for latency in (0.1, 0.1, 0.1, 0.12, 0.08, 0.1)]
    data = {
        "warn": series("warn", [*warning_history, window(600, 6, 0.15)]),
        "crit": series("crit", [*STEADY, window(300, 3)]),
    }
    # Named targets: the plain sigma applies (cluster-wide it would be raised, see below).
    report = evaluate(data, [Target("warn"), Target("crit")], SETTINGS)
    assert [(a.target.service, a.severity) for a in report.anomalies] == [("crit", "critical"), ("warn", "warning")]


@pytest.mark.parametrize(
    ("sigma", "comparisons", "expected"),
    [
        # Bonferroni by hand: tail = (1 - Phi(sigma)) / m; threshold = Phi^-1(1 - tail).
        (2.0, 1, 2.0),  # one comparison: sigma itself
        (2.0, 3, 2.428),  # 0.02275 / 3 = 0.007583 -> z 2.428
        (2.0, 3000, 4.326),  # 7.58e-6 -> z 4.326
        (3.0, 30, 3.916),  # 0.00135 / 30 = 4.5e-5 -> z 3.916
    ],
)
def test_family_wise_sigma(sigma: float, comparisons: int, expected: float) -> None:
    assert family_wise_sigma(sigma, comparisons) == pytest.approx(expected, abs=0.01)


def test_cluster_wide_holds_many_services_to_the_family_wise_threshold() -> None:
    # A latency bump that a single-service check flags at sigma 2 (z = 0.03 / 0.0126 = 2.37) ...
    bumped_history = [window(600, 6, latency) for latency in (0.1, 0.1, 0.1, 0.12, 0.08, 0.1)]
    bumped = series("bumped", [*bumped_history, window(600, 6, 0.13)])
    alone = evaluate({"bumped": bumped}, [Target("bumped")], SETTINGS)
    assert [a.metric for a in alone.anomalies] == ["latency_mean"]
    # ... is what 1 in ~40 healthy services shows by chance: among 100 services checked cluster-wide
    # (300 comparisons, threshold z 3.79) it is not an alarm, while a real breakage still is.
    data = {f"svc-{i}": series(f"svc-{i}", [*STEADY, window(600, 6, 0.1)]) for i in range(97)}
    data["bumped"] = bumped
    data["broken"] = series("broken", [*STEADY, window(600, 120, 0.1)])
    data["slow"] = series("slow", [*STEADY, window(600, 6, 0.3)])
    report = evaluate(data, None, SETTINGS).to_dict()
    assert report["comparisons"] == 300 and report["sigma_applied"] == pytest.approx(3.788, abs=0.01)
    assert sorted({a["service"] for a in report["anomalies"]}) == ["broken", "slow"]
    assert "z 3.8 per comparison across 300 comparisons" in report["summary"]
