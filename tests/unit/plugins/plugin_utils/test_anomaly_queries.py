# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PromQL strings and parsing of Prometheus' JSON (shaped exactly as /api/v1/query_range returns it)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import WindowCounts
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_queries import (
    assemble_series,
    build_queries,
    escape_regex,
    parse_buckets,
    parse_matrix_by_service,
    parse_requests_and_errors,
    promql_string,
    sample_value,
    service_matcher,
    window_index,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import AnomalySettings
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_stats import HistogramBucket

SHADOW = "production-api-service-canary-80@kubernetescrd"
MAIN = "production-api-service-stable-80@kubernetescrd"
END = 1_700_000_000.0
SETTINGS = AnomalySettings.from_options(window="5m", history_windows=2)  # three windows: two past + current
QUERIES = build_queries([SHADOW, MAIN], SETTINGS, END)
T0, T1, T2 = END - 600, END - 300, END


def matrix(metric: dict[str, str], *points: tuple[float, str]) -> dict[str, Any]:
    return {"metric": metric, "values": [[timestamp, value] for timestamp, value in points]}


def test_escape_regex_makes_labels_literal() -> None:
    assert escape_regex("ns-a.b-80@kubernetescrd") == r"ns-a\.b-80@kubernetescrd"
    assert escape_regex("x(1)|y*") == r"x\(1\)\|y\*"
    label = "team.a-svc+1-http@kubernetescrd"
    assert re.fullmatch(escape_regex(label), label)
    assert not re.fullmatch(escape_regex(label), "teamXa-svc+1-http@kubernetescrd")


def test_promql_string_escapes_backslashes_and_quotes() -> None:
    assert promql_string(r"a\.b") == r'"a\\.b"'
    assert promql_string('say "hi"') == r'"say \"hi\""'


def test_service_matcher_lists_each_label_once_in_order() -> None:
    assert service_matcher(["b.x", "a", "b.x"]) == r'service=~"a|b\\.x"'
    assert service_matcher(None) == 'service!~".*@internal"'
    with pytest.raises(ValueError):
        service_matcher([])


def test_build_queries_for_two_services() -> None:
    selector = (
        r'service=~"production-api-service-canary-80@kubernetescrd|production-api-service-stable-80@kubernetescrd"'
    )
    # Series that did not exist one window ago started at 0 inside it: their first sample is added back.
    series = f"traefik_service_requests_total{{{selector}}}"
    assert QUERIES.requests_by_code == (
        f"sum by (service, code) ((increase({series}[5m]) + (min_over_time({series}[5m]) unless {series} offset 5m))"
        f" or increase({series}[5m]))"
    )
    assert QUERIES.latency_sum == (
        f"sum by (service) (increase(traefik_service_request_duration_seconds_sum{{{selector}}}[5m]))"
    )
    assert QUERIES.latency_count == (
        f"sum by (service) (increase(traefik_service_request_duration_seconds_count{{{selector}}}[5m]))"
    )
    assert QUERIES.latency_buckets == (
        f"sum by (service, le) (increase(traefik_service_request_duration_seconds_bucket{{{selector}}}[5m]))"
    )
    assert (QUERIES.start, QUERIES.end, QUERIES.step, QUERIES.count) == (T0, END, 300.0, 4)


def test_cluster_wide_queries_skip_traefik_internal_services() -> None:
    queries = build_queries(None, SETTINGS, END)
    series = 'traefik_service_requests_total{service!~".*@internal"}'
    assert queries.requests_by_code == (
        f"sum by (service, code) ((increase({series}[5m]) + (min_over_time({series}[5m]) unless {series} offset 5m))"
        f" or increase({series}[5m]))"
    )


def test_query_length_grows_with_services_but_not_the_number_of_queries() -> None:
    labels = [f"ns-svc{index}-80@kubernetescrd" for index in range(1000)]
    queries = build_queries(labels, SETTINGS, END)
    assert queries.count == 4
    assert queries.requests_by_code.count("|") == 4 * 999  # the selector appears four times


def test_window_index_maps_points_to_windows() -> None:
    assert [window_index(t, QUERIES) for t in (T0, T1, T2)] == [0, 1, 2]
    assert window_index(T1 + 0.001, QUERIES) == 1  # millisecond rounding
    assert window_index(T1 + 100, QUERIES) is None
    assert window_index(END + 300, QUERIES) is None
    assert window_index("not a time", QUERIES) is None


@pytest.mark.parametrize(("raw", "expected"), [("12.5", 12.5), ("0", 0.0), ("NaN", None), ("+Inf", None), (None, None)])
def test_sample_value(raw: Any, expected: float | None) -> None:
    assert sample_value(raw) == expected


# A realistic query_range answer: one series per (service, code); the canary only appeared in the
# last window; the stable service had a few 502s in the middle window.
REQUESTS_BY_CODE = json.loads(
    json.dumps(
        [
            matrix({"service": MAIN, "code": "200"}, (T0, "590.5"), (T1, "601"), (T2, "598")),
            matrix({"service": MAIN, "code": "404"}, (T0, "9.5"), (T1, "3"), (T2, "2")),
            matrix({"service": MAIN, "code": "502"}, (T1, "6")),
            matrix({"service": SHADOW, "code": "200"}, (T2, "110")),
            matrix({"service": SHADOW, "code": "500"}, (T2, "10")),
            matrix({"service": SHADOW, "code": "503"}, (T2, "NaN")),
            matrix({"code": "200"}, (T2, "5")),  # no service label: ignored
        ]
    )
)


def test_parse_matrix_adds_series_of_one_service() -> None:
    assert parse_matrix_by_service(REQUESTS_BY_CODE, QUERIES) == {
        MAIN: [600.0, 610.0, 600.0],
        SHADOW: [None, None, 120.0],
    }


def test_parse_requests_and_errors_counts_5xx_only() -> None:
    requests, errors, _client = parse_requests_and_errors(REQUESTS_BY_CODE, QUERIES)
    assert requests[MAIN] == [600.0, 610.0, 600.0]
    assert errors == {MAIN: [0.0, 6.0, 0.0], SHADOW: [None, None, 10.0]}


LATENCY_BUCKETS = [
    {"metric": {"service": MAIN, "le": "0.1"}, "value": [END, "500"]},
    {"metric": {"service": MAIN, "le": "0.3"}, "value": [END, "590"]},
    {"metric": {"service": MAIN, "le": "1.2"}, "value": [END, "599"]},
    {"metric": {"service": MAIN, "le": "5"}, "value": [END, "600"]},
    {"metric": {"service": MAIN, "le": "+Inf"}, "value": [END, "600"]},
    {"metric": {"service": SHADOW, "le": "+Inf"}, "value": [END, "120"]},
    {"metric": {"service": SHADOW, "le": "0.1"}, "value": [END, "100"]},
    {"metric": {"service": SHADOW}, "value": [END, "1"]},  # no le: ignored
]


def test_parse_buckets_sorts_bounds_with_inf_last() -> None:
    parsed = parse_buckets(LATENCY_BUCKETS)
    assert parsed[SHADOW] == (HistogramBucket(0.1, 100.0), HistogramBucket(math.inf, 120.0))
    assert [bucket.upper_bound for bucket in parsed[MAIN]] == [0.1, 0.3, 1.2, 5.0, math.inf]


def test_assemble_series_builds_windows_oldest_first() -> None:
    latency_sum = [
        matrix({"service": MAIN}, (T0, "60"), (T1, "61"), (T2, "66")),
        matrix({"service": SHADOW}, (T2, "24")),
    ]
    latency_count = [
        matrix({"service": MAIN}, (T0, "600"), (T1, "610"), (T2, "600")),
        matrix({"service": SHADOW}, (T2, "120")),
    ]
    series = assemble_series(QUERIES, REQUESTS_BY_CODE, latency_sum, latency_count, LATENCY_BUCKETS)
    assert series[MAIN].windows == (
        WindowCounts(600.0, 0.0, 60.0, 600.0),
        WindowCounts(610.0, 6.0, 61.0, 610.0),
        WindowCounts(600.0, 0.0, 66.0, 600.0),
    )
    assert series[SHADOW].windows == (None, None, WindowCounts(120.0, 10.0, 24.0, 120.0))
    current = series[SHADOW].current
    assert current is not None
    assert current.latency_mean == pytest.approx(0.2)
    assert len(series[SHADOW].buckets) == 2


def test_assemble_series_without_latency_metrics() -> None:
    series = assemble_series(QUERIES, REQUESTS_BY_CODE, [], [], [])
    assert series[SHADOW].current == WindowCounts(120.0, 10.0, None, None)
    assert series[SHADOW].buckets == ()


def test_parse_requests_and_errors_counts_no_client_errors_unless_asked() -> None:
    _requests, _errors, client_errors = parse_requests_and_errors(REQUESTS_BY_CODE, QUERIES)
    assert client_errors == {MAIN: [0.0, 0.0, 0.0], SHADOW: [None, None, 0.0]}


def test_parse_requests_and_errors_counts_client_errors_by_class() -> None:
    # the stable service's 404s; the canary answered, without any 4xx series: zero, not unknown
    _requests, errors, client_errors = parse_requests_and_errors(REQUESTS_BY_CODE, QUERIES, SETTINGS.is_client_error)
    assert client_errors == {MAIN: [9.5, 3.0, 2.0], SHADOW: [None, None, 0.0]}
    assert errors == {MAIN: [0.0, 6.0, 0.0], SHADOW: [None, None, 10.0]}  # 5xx unchanged


# Several 4xx codes, and series whose code is not three digits (never counted).
MIXED_CODES = [
    matrix({"service": MAIN, "code": "200"}, (T2, "880")),
    matrix({"service": MAIN, "code": "404"}, (T2, "50")),
    matrix({"service": MAIN, "code": "429"}, (T2, "30")),
    matrix({"service": MAIN, "code": "400"}, (T2, "20")),
    matrix({"service": MAIN, "code": "4xx"}, (T2, "7")),
    matrix({"service": MAIN}, (T2, "3")),
]


@pytest.mark.parametrize(
    ("codes", "counted"),
    [
        (None, 100.0),  # the default, 4xx: 404 + 429 + 400
        (["4xx"], 100.0),
        (["404"], 50.0),
        ([404, "429"], 80.0),
        ([], 0.0),
    ],
)
def test_parse_requests_and_errors_counts_the_chosen_client_error_codes(codes: Any, counted: float) -> None:
    settings = AnomalySettings.from_options(window="5m", history_windows=2, client_error_codes=codes)
    requests, _errors, client_errors = parse_requests_and_errors(MIXED_CODES, QUERIES, settings.is_client_error)
    assert requests[MAIN] == [None, None, 990.0]  # every series counts as requests
    assert client_errors[MAIN] == [None, None, counted]


def test_assemble_series_carries_client_errors_into_the_windows() -> None:
    series = assemble_series(QUERIES, REQUESTS_BY_CODE, [], [], [], SETTINGS.is_client_error)
    assert [window.client_errors for window in series[MAIN].windows if window is not None] == [9.5, 3.0, 2.0]
    current = series[MAIN].current
    assert current is not None
    assert current.client_error_rate == pytest.approx(2 / 600)
    assert series[SHADOW].current == WindowCounts(120.0, 10.0, None, None, client_errors=0.0)


def test_a_mirror_of_some_methods_compares_requests_of_those_methods_only() -> None:
    """mirror_methods: the main's requests of the mirrored methods, like the shadow's copies (Traefik's method
    label), in every built-in query and after the prometheus_selector."""
    queries = build_queries([MAIN], SETTINGS, END, 'cluster="eu"', methods=("head", "GET", "GET"))
    matcher = 'cluster="eu",method=~"GET|HEAD"}'
    for query in (queries.requests_by_code, queries.latency_sum, queries.latency_count, queries.latency_buckets):
        assert matcher in query, query
    assert queries.requests_by_code.count(matcher) == 4
    assert "method" not in build_queries([MAIN], SETTINGS, END, methods=()).requests_by_code
