# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The statistics against values computed by hand (the arithmetic is spelled out next to each one)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly import evaluate
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    Anomaly,
    ServiceSeries,
    Target,
    WindowCounts,
    merge_series,
    severity_for,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_scoring import (
    TAIL_FLOOR_SECONDS,
    TAIL_RELATIVE_FLOOR,
    compare_shadow_to_main,
    compare_to_history,
    decisions_for,
    expected_copies,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import (
    AnomalySettings,
    parse_client_error_codes,
    parse_prometheus_duration,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_stats import (
    HistogramBucket,
    continuity_corrected,
    delivery_z,
    error_rate_stddev_floor,
    family_wise_sigma,
    histogram_quantile,
    histogram_share_at_or_below,
    histogram_variance,
    history_z,
    latency_effect_z,
    mean_and_stddev,
    normalise_buckets,
    tail_z,
    two_proportion_z,
    welch_z,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_wording import describe

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


def test_two_proportion_z_with_continuity_moves_half_a_hit_towards_the_baseline() -> None:
    # 29.5/200 = 0.1475 against 10/400 = 0.025; pooled 39.5/600 = 0.0658333
    # se = sqrt(0.0658333 * 0.9341667 * (1/200 + 1/400)) = 0.0214766; z = 0.1225 / 0.0214766 = 5.7039
    assert two_proportion_z(30, 200, 10, 400, continuity=True) == pytest.approx(5.703880, abs=1e-6)
    # never past the baseline: 2.2/200 = 1.1% against 1/100 = 1% moves to 2/200, the same proportion
    assert two_proportion_z(2.2, 200, 1, 100, continuity=True) == 0.0
    # not above the baseline: untouched
    assert two_proportion_z(10, 400, 30, 200, continuity=True) == pytest.approx(-5.786376, abs=1e-6)
    assert two_proportion_z(5, 100, 10, 200, continuity=True) == 0.0


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


def test_tail_z_at_p95_matches_hand_computation() -> None:
    # main p95 = 1.2; shares slower than 1.2 s: shadow 30/100, main 5/100; continuity: shadow 29.5/100
    # pooled 34.5/200 = 0.1725; se = sqrt(0.1725 * 0.8275 * 0.02) = 0.0534312; z = 0.245 / 0.0534312 = 4.5854
    assert tail_z(0.95, buckets(SLOW), buckets(FAST)) == pytest.approx(4.585350, abs=1e-6)
    assert tail_z(0.95, buckets(FAST), buckets(FAST)) == pytest.approx(0.0, abs=1e-9)


def test_tail_z_at_p99_matches_hand_computation() -> None:
    # main p99: rank 99 is the 4th of the 5 in (1.2, 5]: 1.2 + 3.8 * 4/5 = 4.24; main 1/100 slower.
    # shadow at or below 4.24: 70 + 30 * 3.04/3.8 = 94, so 6/100 slower; continuity: 5.5/100
    # pooled 6.5/200 = 0.0325; se = sqrt(0.0325 * 0.9675 * 0.02) = 0.0250774; z = 0.045 / 0.0250774 = 1.7944
    assert tail_z(0.99, buckets(SLOW), buckets(FAST)) == pytest.approx(1.794446, abs=1e-6)
    assert tail_z(0.99, buckets(FAST), buckets(FAST)) == pytest.approx(0.0, abs=1e-9)


def test_tail_z_refuses_empty_histograms() -> None:
    with pytest.raises(ValueError, match="tail_z"):
        tail_z(0.99, (), buckets(FAST))


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
    # judged: 5xx share, 4xx share, mean, p95 and p99; without percentages the delivery is not judged
    shadow = series(SHADOW, [window(1000, 10)], buckets(FAST, 10))
    main = series(MAIN, [window(1000, 10)], buckets(FAST, 10))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    assert (outcome.status, outcome.judged, outcome.anomalies) == ("ok", 5, [])


def only_anomaly(
    shadow_window: WindowCounts, main_window: WindowCounts, shadow_scale: float, main_scale: float
) -> Anomaly:
    """The one anomaly of a shadow against one main, each with one window of fast requests."""
    shadow = series(SHADOW, [shadow_window], buckets(FAST, shadow_scale))
    main = series(MAIN, [main_window], buckets(FAST, main_scale))
    [anomaly] = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS).anomalies
    return anomaly


def finding(anomaly: Anomaly) -> tuple[str, str, float, float]:
    return (anomaly.metric, anomaly.severity, anomaly.value, anomaly.baseline)


def test_shadow_with_more_errors_is_anomalous() -> None:
    anomaly = only_anomaly(window(200, 30), window(400, 10), 2, 4)
    assert finding(anomaly) == ("error_rate", "critical", 0.15, 0.025)
    # continuity: 29.5/200 = 0.1475 against 10/400 = 0.025; pooled 39.5/600 = 0.0658333
    # se = sqrt(0.0658333 * 0.9341667 * (1/200 + 1/400)) = 0.0214766; z = 0.1225 / 0.0214766 = 5.7039
    # (the value reported stays 30/200)
    assert anomaly.z_score == pytest.approx(5.703880, abs=1e-6)


def test_shadow_with_fewer_errors_is_fine() -> None:
    shadow = series(SHADOW, [window(200, 0)], buckets(FAST, 2))
    main = series(MAIN, [window(400, 40)], buckets(FAST, 4))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    assert outcome.status == "ok"


def test_slow_shadow_is_anomalous_on_mean_and_p95() -> None:
    # mean 1.22 vs 0.3525; histogram variances 1.957933 and 0.525577 (midpoint + width^2/12 per bucket)
    # z = 0.8675 / sqrt(1.957933/100 + 0.525577/100) = 5.5047; p95 tail z 4.5854 (see tail_z above);
    # p99 tail z 1.7944, capped by the effect (4.8733 - 4.24) / 0.424 = 1.49: not an anomaly
    shadow, main = slow_and_fast()
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    found = {anomaly.metric: anomaly for anomaly in outcome.anomalies}
    assert set(found) == {"latency_mean", "latency_p95"}
    assert found["latency_mean"].z_score == pytest.approx(5.504736, abs=1e-6)
    assert (found["latency_mean"].value, found["latency_mean"].baseline) == pytest.approx((1.22, 0.3525))
    assert found["latency_p95"].z_score == pytest.approx(4.585350, abs=1e-6)
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
    # 30/200 against (5 + 5)/(200 + 200): the same numbers as test_shadow_with_more_errors_is_anomalous
    shadow = series(SHADOW, [window(200, 30)], buckets(FAST, 2))
    mains = {"a": series("a", [window(200, 5)], buckets(FAST, 2)), "b": series("b", [window(200, 5)], buckets(FAST, 2))}
    outcome = compare_shadow_to_main(shadow_target("a", "b"), shadow, mains, SETTINGS)
    [anomaly] = outcome.anomalies
    assert anomaly.z_score == pytest.approx(5.703880, abs=1e-6)
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


# A route with a launch on it decides on 8 comparisons: the shadow's 6 against its main (delivery, 5xx share,
# 4xx share, mean, p95, p99) and its 5xx rate against history, and the main's 5xx rate against history.
# Bonferroni: 0.02275 / 8 = 0.0028438 one-sided, z 2.765; critical from twice that, 5.53.
ROUTE_SPAN = "over the last 1m at sigma 2 (z 2.8 per comparison across 8 comparisons)"


def test_verdict_ok_for_a_healthy_new_shadow_without_history() -> None:
    data = {
        MAIN: series(MAIN, [*STEADY, window(600, 6)], buckets(FAST, 6)),
        SHADOW: series(SHADOW, [None] * 6 + [window(600, 6)], buckets(FAST, 6)),
    }
    report = evaluate(data, route_targets(), SETTINGS).to_dict()
    assert report["verdict"] == "ok"
    assert report["summary"] == (
        f"No anomalies {ROUTE_SPAN}: 1 shadow behaves like its main service, "
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
    # z 5.70 (continuity-corrected, see test_shadow_with_more_errors_is_anomalous) >= 5.53: critical
    assert report["summary"] == (
        f"1 anomaly {ROUTE_SPAN}: shadow api-service-canary has an error rate of 15.00% "
        "against 2.50% on main (z 5.70, critical)."
    )
    [anomaly] = report["anomalies"]
    assert {key: anomaly[key] for key in ("service", "role", "metric", "value", "baseline", "z_score", "severity")} == {
        "service": SHADOW,
        "role": "shadow",
        "metric": "error_rate",
        "value": 0.15,
        "baseline": 0.025,
        "z_score": 5.704,
        "severity": "critical",
    }
    assert (report["window"], report["sigma"], report["history_windows"], report["min_requests"]) == ("1m", 2.0, 6, 100)


def test_main_degrading_against_its_history_also_counts_but_not_its_users_traffic() -> None:
    # main drops from 600 to 400 requests a minute (z -3.33) while its error rate rises to 3%
    # (floor sqrt(0.01 * 0.99 / 400) = 0.0049749, continuity-corrected 11.5 / 400 = 0.02875: z 3.769 >= 2.765):
    # its error rate is a warning besides the shadow's finding; its request rate is the users' traffic,
    # reported beside the verdict
    data = {
        MAIN: series(MAIN, [*STEADY, window(400, 12)], buckets(FAST, 4)),
        SHADOW: series(SHADOW, [window(200, 30)], buckets(FAST, 2)),
    }
    report = evaluate(data, route_targets(), SETTINGS)
    found = [(a.target.role, a.metric, a.severity, round(a.z_score, 3)) for a in report.anomalies]
    # the shadow: 29.5/200 against 12/400, pooled 41.5/600 = 0.0691667,
    # se = sqrt(0.0691667 * 0.9308333 * 0.0075) = 0.0219743: z 0.1175 / 0.0219743 = 5.347 < 5.53, a warning
    assert found == [("shadow", "error_rate", "warning", 5.347), ("main", "error_rate", "warning", 3.769)]
    aside = [(a.target.role, a.metric, a.severity, round(a.z_score, 3)) for a in report.informational]
    assert aside == [("main", "request_rate", "warning", -3.333)]
    assert (
        "(z 5.35, warning), and 1 more anomaly. Not part of the verdict, history that moves with the users' "
        "traffic: " in report.summary
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
    assert (
        "Not part of the verdict, history that moves with the users' traffic: api-service-stable has a request rate"
        in report.summary
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


def test_verdict_insufficient_when_the_shadow_gets_no_traffic_and_its_percentage_is_unknown() -> None:
    # Without the mirror's percentage nothing says how many copies the shadow should have had (compare
    # test_hung_shadow_without_any_series_is_anomalous_on_delivery).
    data = {MAIN: series(MAIN, [*STEADY, window(600, 6)], buckets(FAST, 6))}
    report = evaluate(data, route_targets(), SETTINGS).to_dict()
    assert report["verdict"] == "insufficient_data"
    assert report["summary"] == (
        f"Not enough data to judge {ROUTE_SPAN}: shadow api-service-canary: "
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
        "crit": series("crit", [*STEADY, window(200, 2)]),
    }
    # Two services, 3 history comparisons each: 0.02275 / 6 = 0.0037917, z 2.670, critical from 5.34.
    # warn: latency z 3.95 (warning); crit: 200 / 60 = 3.33 req/s against 10 (floor 1): z -6.67 (critical).
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
    # A latency bump that a single-service check flags (3 comparisons: z 2.428; here z = 0.035 / 0.012649 =
    # 2.77) ...
    bumped_history = [window(600, 6, latency) for latency in (0.1, 0.1, 0.1, 0.12, 0.08, 0.1)]
    bumped = series("bumped", [*bumped_history, window(600, 6, 0.135)])
    alone = evaluate({"bumped": bumped}, [Target("bumped")], SETTINGS)
    assert alone.settings.threshold == pytest.approx(2.428, abs=0.001)
    assert [a.metric for a in alone.anomalies] == ["latency_mean"]
    # ... is what 1 in ~120 healthy services shows by chance (3 x 0.28%): among 100 services checked
    # cluster-wide (300 comparisons, threshold z 3.79) it is not an alarm, while a real breakage still is.
    data = {f"svc-{i}": series(f"svc-{i}", [*STEADY, window(600, 6, 0.1)]) for i in range(97)}
    data["bumped"] = bumped
    data["broken"] = series("broken", [*STEADY, window(600, 120, 0.1)])
    data["slow"] = series("slow", [*STEADY, window(600, 6, 0.3)])
    report = evaluate(data, None, SETTINGS).to_dict()
    assert report["comparisons"] == 300 and report["sigma_applied"] == pytest.approx(3.788, abs=0.01)
    assert sorted({a["service"] for a in report["anomalies"]}) == ["broken", "slow"]
    assert "z 3.8 per comparison across 300 comparisons" in report["summary"]


# ---- delivery: the copies a shadow completed against what its mirror percentage predicts ----------


def launch_targets(shadow_percent: float | None = 20, main_percent: float | None = 100) -> list[Target]:
    """A route mirroring ``shadow_percent`` of its requests to the shadow; the main serves ``main_percent``."""
    return [
        Target(MAIN, role="main", name="api-service-stable", namespace="production", percent=main_percent),
        Target(
            SHADOW,
            role="shadow",
            name="api-service-canary",
            namespace="production",
            pairs=(MAIN,),
            percent=shadow_percent,
        ),
    ]


def test_delivery_z_counts_a_shortfall_below_a_quarter_only() -> None:
    # Poisson: (expected - delivered) / sqrt(expected); 29 of 120: 91 / 10.954451 = 8.3071
    assert delivery_z(29, 120) == pytest.approx(8.307125, abs=1e-6)
    assert delivery_z(0, 120) == pytest.approx(math.sqrt(120))
    assert delivery_z(30, 120) == 0.0  # a quarter of the copies: a ramp's mixed window, not a hung shadow
    assert delivery_z(120, 120) == 0.0
    assert delivery_z(0, 0) == 0.0


def test_expected_copies_scale_by_the_percentages_once_the_percentage_held_a_window() -> None:
    # 20% of the route's requests; the main serves all of them: 6000 * 20 / 100 = 1200
    assert expected_copies(20, 100, 6000, SETTINGS) == pytest.approx(1200)
    # the mains serve half the users (a weighted split): 3000 of 6000 route requests, 20% of those is 1200
    assert expected_copies(20, 50, 3000, SETTINGS) == pytest.approx(1200)
    # the percentage held a whole 1m window or longer: the same
    assert expected_copies(20, 100, 6000, replace(SETTINGS, mirror_seconds=60)) == pytest.approx(1200)
    assert expected_copies(20, 100, 6000, replace(SETTINGS, mirror_seconds=600)) == pytest.approx(1200)
    # held 15 s of the window, or "since" in the future: part of the window had another percentage, not judged
    assert expected_copies(20, 100, 6000, replace(SETTINGS, mirror_seconds=15)) is None
    assert expected_copies(20, 100, 6000, replace(SETTINGS, mirror_seconds=-5)) is None


@pytest.mark.parametrize(("shadow_percent", "main_percent"), [(None, 100), (20, None), (20, 0), (0, 100)])
def test_expected_copies_are_unknown_without_both_percentages(
    shadow_percent: float | None, main_percent: float | None
) -> None:
    assert expected_copies(shadow_percent, main_percent, 6000, SETTINGS) is None


def test_hung_shadow_without_any_series_is_anomalous_on_delivery() -> None:
    # The main served 600 requests in the window; 20% of them, 120 copies, should have reached the shadow.
    # None completed: z = 120 / sqrt(120) = 10.954 (critical from 5.53), although the shadow has fewer
    # than min_requests and no series at all.
    data = {MAIN: series(MAIN, [*STEADY, window(600, 6)], buckets(FAST, 6))}
    report = evaluate(data, launch_targets(), SETTINGS)
    assert report.verdict == "anomalous"
    [anomaly] = report.anomalies
    assert (anomaly.target.role, anomaly.check, anomaly.metric, anomaly.severity) == (
        "shadow",
        "shadow_vs_main",
        "delivery",
        "critical",
    )
    assert (anomaly.value, anomaly.baseline) == pytest.approx((0.0, 2.0))  # req/s: 0 of 120 / 60 s
    assert anomaly.z_score == pytest.approx(10.954451, abs=1e-6)
    assert report.summary == (
        f"1 anomaly {ROUTE_SPAN}: shadow api-service-canary completed 0.00 req/s of the copies its mirror "
        f"percentage sends, expected 2.00 req/s from 20% of {MAIN} (z 10.95, critical): its copies hang or fail "
        "before an answer."
    )
    # its history still says why it could not be judged; the shadow-vs-main check is anomalous, not a gap
    assert [gap.check for gap in report.insufficient if gap.target.role == "shadow"] == ["history"]


def test_a_shadow_completing_few_copies_is_anomalous_although_below_min_requests() -> None:
    # 20 of 120 copies (fewer than a quarter, 30): z = 100 / sqrt(120) = 9.1287
    main = series(MAIN, [window(600, 6)], buckets(FAST, 6))
    shadow = series(SHADOW, [window(20)], buckets(FAST, 0.2))
    [_main_target, target] = launch_targets()
    outcome = compare_shadow_to_main(target, shadow, {MAIN: main}, SETTINGS, main_percent=100)
    assert outcome.status == "anomalous"
    assert [(a.metric, round(a.z_score, 4)) for a in outcome.anomalies] == [("delivery", 9.1287)]
    assert outcome.gaps == ["the shadow had 20 requests in the last 1m, fewer than min_requests (100)"]


def test_healthy_delivery_is_judged_and_ok() -> None:
    # 120 of the 120 copies: delivery is judged beside 5xx, 4xx, mean and p95; the p99 tail needs 150 copies
    # (1% of them, 1.5, expected beyond the main's p99: TAIL_MIN_EXPECTED), so 120 leave it unjudged.
    main = series(MAIN, [window(600, 6)], buckets(FAST, 6))
    shadow = series(SHADOW, [window(120, 1)], buckets(FAST, 1.2))
    [_main_target, target] = launch_targets()
    outcome = compare_shadow_to_main(target, shadow, {MAIN: main}, SETTINGS, main_percent=100)
    assert (outcome.status, outcome.judged, outcome.anomalies) == ("ok", 5, [])
    shadow = series(SHADOW, [window(200, 2)], buckets(FAST, 2))
    main = series(MAIN, [window(1000, 10)], buckets(FAST, 10))
    outcome = compare_shadow_to_main(target, shadow, {MAIN: main}, SETTINGS, main_percent=100)
    assert (outcome.status, outcome.judged, outcome.anomalies) == ("ok", 6, [])


def test_a_tail_is_judged_only_with_enough_requests_beyond_the_mains_quantile() -> None:
    # 26 copies, 4 of them slow (cold connections after the attach): neither tail is judged (p95 needs 30
    # copies, p99 150), so a few slow first copies cannot fail a launch on their own.
    slow = (HistogramBucket(0.1, 22.0), HistogramBucket(0.5, 26.0), HistogramBucket(math.inf, 26.0))
    fast = (HistogramBucket(0.1, 450.0), HistogramBucket(0.5, 450.0), HistogramBucket(math.inf, 450.0))
    main = series(MAIN, [window(450, 0, latency_mean=0.005)], fast)
    shadow = series(SHADOW, [window(26, 0, latency_mean=(22 * 0.005 + 4 * 0.3) / 26)], slow)
    [_main_target, target] = launch_targets()
    settings = AnomalySettings(window="1m", window_seconds=60.0, history_windows=6, min_requests=20)
    outcome = compare_shadow_to_main(target, shadow, {MAIN: main}, settings)
    assert not [a for a in outcome.anomalies if a.metric in ("latency_p95", "latency_p99")]


def first_step_data(shadow_requests: float) -> dict[str, ServiceSeries]:
    """100 req/s on the main (6000 a window); the shadow completed ``shadow_requests`` copies."""
    return {
        MAIN: series(MAIN, [window(6000, 60)] * 7, buckets(FAST, 60)),
        SHADOW: series(SHADOW, [window(shadow_requests, shadow_requests / 100)], buckets(FAST, shadow_requests / 100)),
    }


def test_delivery_is_judged_once_the_percentage_held_a_whole_window() -> None:
    # 100 req/s * 20% = 1200 copies a window; 100 completed: a shortfall, z = 1100 / sqrt(1200) = 31.754,
    # when the percentage held the whole window (mirror_seconds None: unknown, taken as the whole window; or
    # the step began 60 s ago). The first step began 15 s ago: the window is mostly without the mirror, not
    # judged, and the shadow's other comparisons decide.
    data = first_step_data(100)
    for held in (None, 60):
        whole_window = evaluate(data, launch_targets(), replace(SETTINGS, mirror_seconds=held))
        assert [(a.metric, round(a.z_score, 3)) for a in whole_window.anomalies] == [("delivery", 31.754)]
    since_the_step = evaluate(data, launch_targets(), replace(SETTINGS, mirror_seconds=15))
    assert since_the_step.verdict == "ok", since_the_step.summary


@pytest.mark.parametrize(
    "delivered",
    [
        300,  # the window saw only the previous 5% step: 6000 * 5% = 300, a quarter of the 1200 now expected
        525,  # 45 s at 5% and 15 s at 20%: 4500 * 5% + 1500 * 20% = 225 + 300
    ],
)
def test_a_ramp_by_four_in_a_mixed_window_stays_ok(delivered: float) -> None:
    report = evaluate(first_step_data(delivered), launch_targets(shadow_percent=20), SETTINGS)
    assert report.verdict == "ok", report.summary


def test_delivery_is_not_judged_when_too_few_copies_are_expected() -> None:
    # 400 main requests at 20%: 80 copies expected, fewer than min_requests (100): a silent shadow is
    # insufficient data, not an anomaly
    data = {MAIN: series(MAIN, [*STEADY, window(400, 4)], buckets(FAST, 4))}
    report = evaluate(data, launch_targets(), SETTINGS)
    assert (report.verdict, report.anomalies) == ("insufficient_data", ())
    assert "the shadow had 0 requests" in report.summary


@pytest.mark.parametrize(("shadow_percent", "main_percent"), [(None, 100), (20, None)])
def test_delivery_is_not_judged_when_a_percentage_is_unknown(
    shadow_percent: float | None, main_percent: float | None
) -> None:
    data = {MAIN: series(MAIN, [*STEADY, window(600, 6)], buckets(FAST, 6))}
    report = evaluate(data, launch_targets(shadow_percent, main_percent), SETTINGS)
    assert (report.verdict, report.anomalies) == ("insufficient_data", ())


def test_delivery_of_a_weighted_split_sums_the_mains_percentages() -> None:
    # mains a and b serve 50% each, 300 requests each: 600 route requests, 20% = 120 copies; none completed:
    # z = sqrt(120) (with one main's 50% alone it would be 240 copies, z sqrt(240))
    data = {
        "a": series("a", [*STEADY, window(300, 3)], buckets(FAST, 3)),
        "b": series("b", [*STEADY, window(300, 3)], buckets(FAST, 3)),
    }
    targets = [
        Target("a", role="main", percent=50),
        Target("b", role="main", percent=50),
        Target(SHADOW, role="shadow", pairs=("a", "b"), percent=20),
    ]
    [anomaly] = evaluate(data, targets, SETTINGS).anomalies
    assert (anomaly.metric, anomaly.compared_to) == ("delivery", "20% of a + b")
    assert anomaly.z_score == pytest.approx(math.sqrt(120))
    # a main of unknown share: nothing predicts the copies
    unknown = [Target("a", role="main", percent=50), Target("b", role="main"), targets[2]]
    assert evaluate(data, unknown, SETTINGS).anomalies == ()


# ---- client errors (4xx) ------------------------------------------------------------------------


def client_window(requests: float, client_errors: float) -> WindowCounts:
    return WindowCounts(requests, 0, latency_sum=0.1 * requests, latency_count=requests, client_errors=client_errors)


def test_shadow_answering_404_to_a_fifth_of_its_requests_is_anomalous() -> None:
    # continuity: 199.5/1000 = 0.1995 against 10/1000 = 0.01; pooled 209.5/2000 = 0.10475
    # se = sqrt(0.10475 * 0.89525 * 0.002) = 0.0136951; z = 0.1895 / 0.0136951 = 13.837
    anomaly = only_anomaly(client_window(1000, 200), client_window(1000, 10), 10, 10)
    assert finding(anomaly) == ("client_error_rate", "critical", 0.2, 0.01)
    assert anomaly.z_score == pytest.approx(13.837, abs=1e-3)
    assert describe(anomaly).startswith(
        "shadow api-service-canary has a client error rate of 20.00% against 1.00% on main (z 13.84"
    )


def test_client_errors_like_the_mains_are_fine() -> None:
    shadow = series(SHADOW, [client_window(1000, 10)], buckets(FAST, 10))
    main = series(MAIN, [client_window(1000, 10)], buckets(FAST, 10))
    assert compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS).anomalies == []


def test_an_empty_client_error_code_list_turns_the_comparison_off() -> None:
    off = AnomalySettings.from_options(sigma=2, window="1m", client_error_codes=[])
    assert off.client_error_codes == ()
    shadow = series(SHADOW, [client_window(1000, 200)], buckets(FAST, 10))
    main = series(MAIN, [client_window(1000, 10)], buckets(FAST, 10))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, off)
    assert (outcome.status, outcome.judged, outcome.anomalies) == ("ok", 4, [])
    assert decisions_for(shadow_target(), True, off) == decisions_for(shadow_target(), True, SETTINGS) - 1 == 6
    report = evaluate({MAIN: main, SHADOW: shadow}, route_targets(), off).to_dict()
    assert (report["comparisons"], report["client_error_codes"]) == (7, [])


@pytest.mark.parametrize(
    ("codes", "code", "counted"),
    [
        (None, "404", True),
        (None, "400", True),
        (None, "429", True),
        (None, "500", False),
        (None, "200", False),
        (None, "", False),
        (["404"], "404", True),
        (["404"], "400", False),
        (["404", "5xx"], "503", True),
        ([], "404", False),
    ],
)
def test_which_codes_are_client_errors(codes: list[str] | None, code: str, counted: bool) -> None:
    settings = AnomalySettings.from_options(client_error_codes=codes)
    assert settings.is_client_error(code) is counted


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("4xx",)),
        ("4xx", ("4xx",)),
        ("4XX", ("4xx",)),
        (404, ("404",)),
        (["404", 404, " 429 "], ("404", "429")),
        (("4xx", "503"), ("4xx", "503")),
        ([], ()),
    ],
)
def test_parse_client_error_codes_accepts_classes_and_codes(value: object, expected: tuple[str, ...]) -> None:
    assert parse_client_error_codes(value) == expected


@pytest.mark.parametrize("value", ["abc", 600, True, ["abc"], [600], [True], ["4xx,404"], {"4xx": 1}, 4.5])
def test_parse_client_error_codes_refuses_anything_else(value: object) -> None:
    with pytest.raises(DarklaunchError, match="client_error_codes") as raised:
        parse_client_error_codes(value)
    assert raised.value.field == "client_error_codes"


# ---- the p99 tail -------------------------------------------------------------------------------

# 10,000 requests each. The main answers all of them within (50, 100] ms; the shadow too, except 5% that take
# 500 ms more, in (0.5, 1.0] s.
TAIL_MAIN = ((0.05, 0), (0.1, 10_000), (0.5, 10_000), (1.0, 10_000), (INF, 10_000))  # sum 750
TAIL_SHADOW = ((0.05, 0), (0.1, 9_500), (0.5, 9_500), (1.0, 10_000), (INF, 10_000))  # sum 9500 * 0.075 + 500 * 0.575


def test_a_regression_on_five_percent_of_requests_is_caught_on_the_p99() -> None:
    # main p99 = 0.05 + 0.05 * 0.99 = 0.0995 s, 1% slower. Shadow at or below 0.0995: 9500 * 0.99 = 9405, so
    # 595 slower; continuity 594.5; pooled 694.5/20000 = 0.034725; se = sqrt(0.034725 * 0.965275 * 0.0002)
    # = 0.0025892; z = 0.04945 / 0.0025892 = 19.099. Shadow p99 = 0.5 + 0.5 * 400/500 = 0.9 s, far over
    # main's: the effect does not cap it.
    # The p95 barely moves: main 0.0975 s, shadow 0.1 s (the top of its 95% of normal requests), an effect
    # of 0.0025 / 0.00975 = 0.26: not an anomaly, whatever its statistical z.
    shadow = series(SHADOW, [WindowCounts(10_000, 0, 1_000.0, 10_000)], buckets(TAIL_SHADOW))
    main = series(MAIN, [WindowCounts(10_000, 0, 750.0, 10_000)], buckets(TAIL_MAIN))
    outcome = compare_shadow_to_main(shadow_target(), shadow, {MAIN: main}, SETTINGS)
    found = {anomaly.metric: anomaly for anomaly in outcome.anomalies}
    assert "latency_p99" in found and "latency_p95" not in found
    p99 = found["latency_p99"]
    assert (p99.value, p99.baseline) == pytest.approx((0.9, 0.0995))
    assert (p99.severity, round(p99.z_score, 3)) == ("critical", 19.099)
    assert describe(p99).startswith("shadow api-service-canary has a p99 latency of 900 ms against 100 ms on main")


# ---- one false-alarm budget ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "launch_on", "expected"),
    [
        ("shadow", True, 7),  # delivery, 5xx, 4xx, mean, p95, p99 against its main; 5xx against history
        ("main", True, 1),  # its 5xx rate against history; request rate and latency are informational
        ("main", False, 3),  # request rate, 5xx rate and mean latency against history
        ("service", False, 3),
        ("other_route", True, 0),
        ("other_route", False, 0),
    ],
)
def test_decisions_for_each_role(role: str, launch_on: bool, expected: int) -> None:
    pairs = (MAIN,) if role == "shadow" else ()
    assert decisions_for(Target(SHADOW, role=role, pairs=pairs), launch_on, SETTINGS) == expected


def healthy_route() -> dict[str, ServiceSeries]:
    return {
        MAIN: series(MAIN, [*STEADY, window(600, 6)], buckets(FAST, 6)),
        SHADOW: series(SHADOW, [*STEADY, window(600, 6)], buckets(FAST, 6)),
    }


def test_a_route_shares_the_budget_across_its_deciding_comparisons() -> None:
    report = evaluate(healthy_route(), route_targets(), SETTINGS).to_dict()
    # 7 + 1 comparisons: 0.02275 / 8 = 0.0028438 one-sided, z 2.765
    assert (report["comparisons"], report["checks_per_step"]) == (8, 1)
    assert report["sigma_applied"] == pytest.approx(2.765, abs=0.001)
    assert (report["sigma"], report["false_alarm_budget"]) == (2.0, 0.02275)  # 1 - Phi(2)
    assert report["client_error_codes"] == ["4xx"]


def test_checks_per_step_raise_the_threshold_of_each_comparison() -> None:
    five = AnomalySettings.from_options(sigma=2, window="1m", checks_per_step="5")
    assert five.checks == 5
    report = evaluate(healthy_route(), route_targets(), five).to_dict()
    # 5 checks x 8 comparisons: 0.02275 / 40 = 0.00056875 one-sided, z 3.254
    assert (report["comparisons"], report["checks_per_step"]) == (40, 5)
    assert report["sigma_applied"] == pytest.approx(3.254, abs=0.001)
    assert report["verdict"] == "ok"
    assert "at sigma 2 (z 3.3 per comparison across 40 comparisons):" in report["summary"]


@pytest.mark.parametrize("value", [0, -1, "many"])
def test_checks_per_step_must_be_a_positive_count(value: object) -> None:
    with pytest.raises(DarklaunchError) as raised:
        AnomalySettings.from_options(checks_per_step=value)
    assert raised.value.field == "checks_per_step"


def test_cluster_wide_still_counts_three_comparisons_per_service() -> None:
    data = {f"svc-{index}": series(f"svc-{index}", [*STEADY, window(600, 6)]) for index in range(100)}
    for settings in (SETTINGS, AnomalySettings.from_options(sigma=2, window="1m", client_error_codes=[])):
        report = evaluate(data, None, settings).to_dict()
        assert report["comparisons"] == 300
        assert report["sigma_applied"] == pytest.approx(3.788, abs=0.001)


def test_a_single_comparison_keeps_the_plain_summary() -> None:
    # One service's history on its own is 3 comparisons; sigma is raised and the summary says so. The plain
    # "at sigma 2" stays when nothing is raised: no deciding comparison at all (an other_route target only).
    data = {MAIN: series(MAIN, [*STEADY, window(600, 6)])}
    alone = evaluate(data, [Target(MAIN, role="other_route")], SETTINGS)
    assert (alone.settings.comparisons, alone.settings.threshold) == (1, 2.0)
    assert "at sigma 2:" in alone.summary


# ---- latency against history: deciding without a launch, informational with one ---------------


def test_latency_history_is_informational_while_a_launch_is_on() -> None:
    # flat 100 ms history, floor 10 ms: 200 ms is z 10
    rising = series(MAIN, [*STEADY, window(600, 6, 0.2)])
    for target in (Target(MAIN, role="main"), Target(MAIN, role="shadow")):
        during = compare_to_history(target, rising, SETTINGS, launch_on=True)
        assert during.anomalies == []
        assert [(a.metric, a.z_score) for a in during.informational] == [("latency_mean", pytest.approx(10.0))]
    without = compare_to_history(Target(MAIN, role="main"), rising, SETTINGS, launch_on=False)
    assert [(a.metric, a.z_score) for a in without.anomalies] == [("latency_mean", pytest.approx(10.0))]
    assert without.informational == []


def test_users_traffic_slowing_the_main_does_not_fail_a_launch_but_fails_a_route_without_one() -> None:
    # Main and shadow both 200 ms now (the load, not the launch): alike in the same window.
    data = {
        MAIN: series(MAIN, [*STEADY, window(600, 6, 0.2)], buckets(FAST, 6)),
        SHADOW: series(SHADOW, [window(600, 6, 0.2)], buckets(FAST, 6)),
    }
    during = evaluate(data, route_targets(), SETTINGS)
    assert during.verdict == "ok", during.summary
    assert [(a.target.role, a.metric) for a in during.informational] == [("main", "latency_mean")]
    assert "Not part of the verdict, history that moves with the users' traffic: api-service-stable has a mean" in (
        during.summary
    )
    without = evaluate({MAIN: data[MAIN]}, [Target(MAIN, role="main")], SETTINGS)
    assert (without.verdict, [a.metric for a in without.anomalies]) == ("anomalous", ["latency_mean"])


def test_a_main_5xx_rise_still_decides_during_a_launch() -> None:
    # 30 errors of 600 against a flat 1%: floor sqrt(0.01 * 0.99 / 600) = 0.0040620; continuity 29.5 / 600
    # z = (0.0491667 - 0.01) / 0.0040620 = 9.642 (critical from 5.53)
    data = healthy_route()
    data[MAIN] = series(MAIN, [*STEADY, window(600, 30)], buckets(FAST, 6))
    report = evaluate(data, route_targets(), SETTINGS)
    assert [(a.target.role, a.check, a.metric, a.severity, round(a.z_score, 3)) for a in report.anomalies] == [
        ("main", "history", "error_rate", "critical", 9.642)
    ]


def test_a_tail_must_be_worse_by_a_margin_worth_stopping_for() -> None:
    # Measured on a starved 2-core machine with a healthy shadow: p95 77 ms against 50 (z 4.89 statistically).
    # In units of max(25% of 50 ms, 20 ms): 27 / 20 = 1.35, under any threshold the gate uses.
    tail = latency_effect_z(4.89, 0.077, 0.050, relative=TAIL_RELATIVE_FLOOR, floor=TAIL_FLOOR_SECONDS)
    assert tail == pytest.approx(1.35)
    # +500 ms on 5% of requests: a p99 of 500 ms against 50, (0.5 - 0.05) / 0.02 = 22.5, capped by z 8.
    assert latency_effect_z(8.0, 0.5, 0.05, relative=TAIL_RELATIVE_FLOOR, floor=TAIL_FLOOR_SECONDS) == 8.0
    # The mean keeps its finer unit, max(10%, 5 ms): 27 ms slower is 5.4 units.
    assert latency_effect_z(9.0, 0.077, 0.050) == pytest.approx(5.4)
