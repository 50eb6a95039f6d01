# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gate's difference check: its queries, its fail-closed judgement, and its place in the anomalies answer."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils import _compare_check
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_check import check_anomalies
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._compare_check import (
    CompareSettings,
    combine,
    judge,
    parse_compare,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._prometheus import PrometheusQueryError

ROUTE = {"route": "shop", "namespace": "prod"}
SETTINGS = CompareSettings(max_diff_rate=0.01, min_requests=100, namespace="prod", route="shop")


def results(same: float = 0, different: float = 0, noise: float = 0, skipped: float = 0, error: float = 0) -> dict:
    return {"same": same, "different": different, "noise": noise, "skipped": skipped, "error": error}


def test_a_candidate_that_differs_more_than_the_limit_is_anomalous_and_names_the_path() -> None:
    row = judge(SETTINGS, "1m", results(same=380, different=20), {"/price": 20.0, "/items/*/id": 3.0})
    assert (row["verdict"], row["value"], row["compared"]) == ("anomalous", 0.05, 400)
    assert row["top_paths"] == [{"path": "/price", "requests": 20.0}, {"path": "/items/*/id", "requests": 3.0}]
    assert "5.00% (20 of 400 compared answers differ from the main's; most at /price" in row["message"]
    assert "above max_diff_rate 1.00%" in row["message"]


def test_noise_is_compared_but_never_a_difference() -> None:
    row = judge(SETTINGS, "1m", results(same=10, noise=390), {})
    assert (row["verdict"], row["value"], row["compared"]) == ("ok", 0.0, 400)
    assert "within max_diff_rate" in row["message"]


def test_at_the_limit_passes_above_fails() -> None:
    assert judge(SETTINGS, "1m", results(same=99, different=1), {})["verdict"] == "ok"
    assert judge(SETTINGS, "1m", results(same=98, different=2), {})["verdict"] == "anomalous"


def test_too_few_compared_requests_is_inconclusive_whatever_the_share() -> None:
    # Skipped (unsafe methods) and errors are not comparisons: 500 of them still leave the check unjudged.
    row = judge(SETTINGS, "1m", results(same=40, different=40, skipped=500, error=3), {})
    assert (row["verdict"], row["reason"], row["value"]) == ("inconclusive", "too_few_compared", None)
    assert "only 80 compared requests over the last 1m (at least 100 needed; 500 skipped, 3 errors)" in row["message"]


def test_no_series_is_inconclusive_and_says_what_to_check() -> None:
    row = judge(SETTINGS, "1m", {}, {})
    assert (row["verdict"], row["reason"]) == ("inconclusive", "no_data")
    assert "--route prod/shop" in row["message"] and 'darklaunch_route="prod/shop"' in row["message"]


@pytest.mark.parametrize(
    ("verdict", "row_verdict", "expected"),
    [
        ("ok", "ok", "ok"),
        ("ok", "anomalous", "anomalous"),
        ("ok", "inconclusive", "insufficient_data"),
        ("anomalous", "inconclusive", "anomalous"),
        ("insufficient_data", "ok", "insufficient_data"),
        ("anomalous", "anomalous", "anomalous"),
    ],
)
def test_combined_verdict_fails_closed(verdict: str, row_verdict: str, expected: str) -> None:
    row = {"verdict": row_verdict, "reason": "no_data", "message": "difference_rate is ..."}
    assert combine(verdict, "built-in summary.", row)[0] == expected


def test_queries_select_the_route_and_the_prometheus_selector() -> None:
    requests, paths = _compare_check.queries(SETTINGS, "2m", 'cluster="eu"')
    assert requests == (
        'sum by (result) (increase(darklaunch_compare_requests_total{darklaunch_route="prod/shop",cluster="eu"}[2m]))'
    )
    selected = 'darklaunch_compare_differences_total{darklaunch_route="prod/shop",cluster="eu"}'
    # A path first seen within the window counts whole: increase() skips a new series' first sample.
    assert paths == (
        f"topk(5, (sum by (path) (increase({selected}[2m])) > 0) or sum by (path) ({selected} unless {selected} "
        "offset 2m))"
    )


@pytest.mark.parametrize("raw", ["1%", -0.1, 1, 1.5, "nan", True])
def test_bad_rates_are_refused_naming_the_option(raw: Any) -> None:
    with pytest.raises(DarklaunchError) as raised:
        parse_compare(raw, 100, ROUTE)
    assert raised.value.field == "compare_max_diff_rate" and "0.01 is 1%" in raised.value.msg


def test_off_when_not_given_and_needs_a_route() -> None:
    assert parse_compare(None, 100, ROUTE) is None and parse_compare("", 100, ROUTE) is None
    assert parse_compare("0.02", 50, ROUTE) == CompareSettings(0.02, 50, "prod", "shop")
    with pytest.raises(DarklaunchError, match="give route_name and namespace"):
        parse_compare(0.01, 100, None)


class ComparatorPrometheus:
    """Answers the comparator's two queries from counters; Traefik's built-in queries find no data."""

    def __init__(self, counts: dict[str, float], paths: dict[str, float], refuse: bool = False) -> None:
        self.counts, self.paths, self.refuse = counts, paths, refuse
        self.queries: list[str] = []

    def query(self, promql: str, time: Any = None) -> list[dict[str, Any]]:
        self.queries.append(promql)
        if "darklaunch_compare" in promql and self.refuse:
            raise PrometheusQueryError("bad_data: parse error")
        if "darklaunch_compare_requests_total" in promql:
            assert re.search(r'darklaunch_route="prod/shop"', promql), promql
            return [{"metric": {"result": key}, "value": [time, str(value)]} for key, value in self.counts.items()]
        if "darklaunch_compare_differences_total" in promql:
            return [{"metric": {"path": key}, "value": [time, str(value)]} for key, value in self.paths.items()]
        return []

    def query_range(self, promql: str, start: Any, end: Any, step: Any) -> list[dict[str, Any]]:
        self.queries.append(promql)
        return []


def test_the_anomalies_answer_carries_the_check_and_fails_on_it() -> None:
    fake = ComparatorPrometheus(results(same=300, different=30, noise=70, skipped=12), {"/price": 30.0})
    report = check_anomalies(
        fake, [], window="1m", now=1_700_000_000.0, route=ROUTE, compare_max_diff_rate=0.01, min_requests=100
    )
    assert report["compare"]["verdict"] == "anomalous" and report["compare"]["value"] == 0.075
    assert report["compare"]["results"] == results(same=300, different=30, noise=70, skipped=12)
    assert (report["verdict"], report["queries"], len(fake.queries)) == ("anomalous", 2, 2)
    assert report["summary"].startswith("Difference check: difference_rate is 7.50%")


def test_without_the_option_no_comparator_query_is_sent() -> None:
    fake = ComparatorPrometheus(results(same=300), {})
    report = check_anomalies(fake, [], window="1m", now=1_700_000_000.0, route=ROUTE)
    assert "compare" not in report and not any("darklaunch_compare" in q for q in fake.queries)


def test_a_refused_comparator_query_is_the_check_s_error_not_a_pass() -> None:
    fake = ComparatorPrometheus(results(same=300), {}, refuse=True)
    with pytest.raises(PrometheusQueryError):
        check_anomalies(fake, [], window="1m", now=1_700_000_000.0, route=ROUTE, compare_max_diff_rate=0.01)
