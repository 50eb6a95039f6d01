# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole check against a fake Prometheus that evaluates our PromQL over synthetic Traefik data.

The fake understands exactly the query shapes the check sends (``sum by (...) (increase(metric{service
matcher}[window]))``), applies the service matcher with a real regex engine, and records every call,
so the tests can count queries and see that label escaping works.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    index_by_key,
    parse_ingress_route,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import anomaly_targets
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_check import check_anomalies, parse_targets

NOW = 1_700_000_000.0
WINDOW_SECONDS = 60.0
MAIN = "production-api-service-stable-80@kubernetescrd"
SHADOW = "production-api-service-canary-80@kubernetescrd"
BOUNDS = ("0.1", "0.3", "1.2", "5", "+Inf")
FAST_SHARES = (0.5, 0.8, 0.95, 1.0, 1.0)  # cumulative share of requests per bucket
SLOW_SHARES = (0.1, 0.4, 0.7, 1.0, 1.0)
FAST_MEAN, SLOW_MEAN = 0.3525, 1.22  # midpoint means of those shapes


@dataclass
class Traffic:
    """A service's requests per 1m window (oldest first, last = current), error shares and latency."""

    requests: Sequence[float | None]  # None: the series did not exist in that window
    error_share: float = 0.0
    latency_mean: float = FAST_MEAN
    shares: Sequence[float] = FAST_SHARES
    client_error_share: float = 0.0  # answered with client_error_code
    client_error_code: str = "404"


@dataclass
class FakePrometheus:
    traffic: dict[str, Traffic]
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def query_count(self) -> int:
        return len(self.calls)

    def query(self, promql: str, time: Any = None) -> list[dict[str, Any]]:
        self.calls.append(("query", promql, {"time": time}))
        metric, services = self._parse(promql)
        assert metric.endswith("_bucket"), promql
        return [
            {
                "metric": {"service": name, "le": bound},
                "value": [time, str((self.traffic[name].requests[-1] or 0) * share)],
            }
            for name in services
            for bound, share in zip(BOUNDS, self.traffic[name].shares, strict=True)
        ]

    def query_range(self, promql: str, start: Any, end: Any, step: Any) -> list[dict[str, Any]]:
        self.calls.append(("query_range", promql, {"start": start, "end": end, "step": step}))
        metric, services = self._parse(promql)
        result: list[dict[str, Any]] = []
        for name in services:
            traffic = self.traffic[name]
            times = [end - step * (len(traffic.requests) - 1 - index) for index in range(len(traffic.requests))]
            for label_values, per_window in self._series(metric, traffic):
                points = [[t, str(value)] for t, value in zip(times, per_window, strict=True) if value is not None]
                result.append({"metric": {**label_values, "service": name}, "values": points})
        return result

    @staticmethod
    def _series(metric: str, traffic: Traffic) -> list[tuple[dict[str, str], list[float | None]]]:
        requests = list(traffic.requests)

        def times(share: float) -> list[float | None]:
            return [None if count is None else count * share for count in requests]

        if metric == "traefik_service_requests_total":
            ok_share = 1 - traffic.error_share - traffic.client_error_share
            by_code = [({"code": "200"}, times(ok_share)), ({"code": "500"}, times(traffic.error_share))]
            if traffic.client_error_share:
                by_code.append(({"code": traffic.client_error_code}, times(traffic.client_error_share)))
            return by_code
        if metric.endswith("_sum"):
            return [({}, times(traffic.latency_mean))]
        return [({}, requests)]

    def _parse(self, promql: str) -> tuple[str, list[str]]:
        match = re.search(r'increase\((\w+)\{service(=~|!~)"((?:[^"\\]|\\.)*)"(?:,[^}]*)?\}\[1m\]\)', promql)
        assert match, promql
        metric, operator, quoted = match.groups()
        pattern = re.compile(re.sub(r"\\(.)", r"\1", quoted))  # undo PromQL string escaping
        keep_matches = operator == "=~"
        return metric, [name for name in self.traffic if bool(pattern.fullmatch(name)) == keep_matches]


def steady(current: float = 600, **kwargs: Any) -> Traffic:
    return Traffic(requests=[600] * 6 + [current], **kwargs)


def route(shadow_pair: str | list[str] = MAIN) -> list[dict[str, Any]]:
    return [
        {"service_label": MAIN, "name": "api-service-stable", "namespace": "production", "role": "main", "pair": None},
        {
            "service_label": SHADOW,
            "name": "api-service-canary",
            "namespace": "production",
            "role": "shadow",
            "pair": shadow_pair,
        },
    ]


def run(fake: FakePrometheus, targets: list[dict[str, Any]] | None, **options: Any) -> dict[str, Any]:
    return check_anomalies(fake, targets, window="1m", now=NOW, **options)


# A route with a launch on it decides on 8 comparisons (the shadow's 6 against its main and 1 against its
# history, the main's 1 against its history): 0.02275 / 8 one-sided is z 2.765.
ROUTE_OK = "No anomalies over the last 1m at sigma 2 (z 2.8 per comparison across 8 comparisons): 1 shadow behaves"


def test_identical_shadow_is_ok() -> None:
    fake = FakePrometheus({MAIN: steady(error_share=0.01), SHADOW: steady(error_share=0.01)})
    result = run(fake, route())
    assert (result["verdict"], result["anomalies"], result["queries"]) == ("ok", [], 4)
    assert result["summary"].startswith(f"{ROUTE_OK} like its main")


def test_erroring_shadow_is_anomalous() -> None:
    fake = FakePrometheus({MAIN: steady(error_share=0.01), SHADOW: steady(error_share=0.2)})
    result = run(fake, route())
    assert result["verdict"] == "anomalous"
    # the shadow has always failed 20% of its copies: its own history is flat, only main shows it up
    found = [(anomaly["role"], anomaly["check"], anomaly["metric"]) for anomaly in result["anomalies"]]
    assert found == [("shadow", "shadow_vs_main", "error_rate")]
    assert "shadow api-service-canary has an error rate of 20.00% against 1.00% on main" in result["summary"]


def test_slow_shadow_is_anomalous() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: Traffic([600] * 7, latency_mean=SLOW_MEAN, shares=SLOW_SHARES)})
    result = run(fake, route())
    metrics = {anomaly["metric"] for anomaly in result["anomalies"] if anomaly["check"] == "shadow_vs_main"}
    assert (result["verdict"], metrics) == ("anomalous", {"latency_mean", "latency_p95"})


def test_shadow_without_traffic_is_insufficient() -> None:
    fake = FakePrometheus({MAIN: steady()})
    result = run(fake, route())
    assert result["verdict"] == "insufficient_data"
    assert result["insufficient_data"][0]["service"] == SHADOW


def test_shadow_below_min_requests_is_insufficient_not_ok() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: Traffic([0] * 6 + [99])})
    assert run(fake, route())["verdict"] == "insufficient_data"
    assert run(fake, route(), min_requests=50)["verdict"] == "ok"


def test_shadow_of_a_weighted_split_compares_with_both_mains() -> None:
    other = "production-api-service-blue-80@kubernetescrd"
    fake = FakePrometheus({MAIN: steady(300), other: steady(300), SHADOW: steady(error_share=0.2)})
    result = run(fake, route([MAIN, other]))
    [anomaly] = [a for a in result["anomalies"] if a["check"] == "shadow_vs_main"]
    assert (anomaly["compared_to"], anomaly["baseline"]) == (f"{MAIN} + {other}", 0.0)
    assert other in fake.calls[0][1]  # the pair was fetched although it is not itself a target


def test_route_check_sends_exactly_the_expected_queries() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady()})
    run(fake, route())
    assert [(kind, args) for kind, _query, args in fake.calls] == [
        ("query_range", {"start": NOW - 6 * WINDOW_SECONDS, "end": NOW, "step": WINDOW_SECONDS}),
        ("query_range", {"start": NOW - 6 * WINDOW_SECONDS, "end": NOW, "step": WINDOW_SECONDS}),
        ("query_range", {"start": NOW - 6 * WINDOW_SECONDS, "end": NOW, "step": WINDOW_SECONDS}),
        ("query", {"time": NOW}),
    ]


@pytest.mark.parametrize("service_count", [1, 3, 1000])
def test_query_count_does_not_depend_on_the_number_of_services(service_count: int) -> None:
    traffic = {f"ns-svc-{index}-80@kubernetescrd": steady() for index in range(service_count)}
    targets = [{"service_label": label, "role": "service"} for label in traffic]
    for scoped in (targets, None):
        fake = FakePrometheus(traffic)
        result = run(fake, scoped)
        assert fake.query_count == result["queries"] == 4
        assert result["verdict"] == "ok"
        assert len(result["services"]) == service_count


def test_cluster_wide_discovers_services_and_ignores_traefik_internals() -> None:
    fake = FakePrometheus({MAIN: steady(), "api@internal": steady(), "idle-80@kubernetescrd": Traffic([0] * 7)})
    result = run(fake, None)
    assert result["scope"] == "cluster"
    assert [row["service"] for row in result["services"]] == ["idle-80@kubernetescrd", MAIN]
    assert result["verdict"] == "ok"
    assert [gap["service"] for gap in result["insufficient_data"]] == ["idle-80@kubernetescrd"]


def test_cluster_wide_traffic_drop_is_anomalous() -> None:
    fake = FakePrometheus({MAIN: steady(current=100)})
    result = run(fake, None)
    [anomaly] = result["anomalies"]
    assert (anomaly["metric"], anomaly["role"], anomaly["severity"]) == ("request_rate", "service", "critical")


def test_regex_metacharacters_in_labels_match_literally() -> None:
    dotted = "team.a-web-80@kubernetescrd"
    lookalike = "teamXa-web-80@kubernetescrd"
    fake = FakePrometheus({dotted: steady(), lookalike: steady(current=10)})
    result = run(fake, [{"service_label": dotted}])
    assert [row["service"] for row in result["services"]] == [dotted]
    assert result["verdict"] == "ok"  # the look-alike's traffic drop was not fetched


def test_result_shape() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady()})
    result = run(fake, route(), sigma=3, history_windows=6, min_requests=100)
    assert set(result) == {
        "verdict",
        "summary",
        "anomalies",
        "informational",
        "insufficient_data",
        "services",
        "window",
        "window_seconds",
        "sigma",
        "sigma_applied",
        "comparisons",
        "checks_per_step",
        "false_alarm_budget",
        "client_error_codes",
        "history_windows",
        "min_requests",
        "scope",
        "evaluated_at",
        "queries",
        "builtin_queries",
    }
    assert (result["window"], result["sigma"], result["evaluated_at"]) == ("1m", 3.0, NOW)
    # Per route too, the 8 deciding comparisons share sigma 3's budget: 1 - Phi(3) = 0.0013499;
    # 0.0013499 / 8 = 0.00016874 one-sided is z 3.585.
    assert (result["sigma_applied"], result["comparisons"]) == (pytest.approx(3.585, abs=0.001), 8)
    assert (result["checks_per_step"], result["false_alarm_budget"], result["client_error_codes"]) == (
        1,
        0.00135,
        ["4xx"],
    )
    shadow_row = next(row for row in result["services"] if row["role"] == "shadow")
    assert shadow_row["checks"] == {"shadow_vs_main": "ok", "history": "ok"}
    assert shadow_row["requests"] == 600
    assert shadow_row["latency_p95"] == pytest.approx(1.2)
    # rank 594 of 600 is the 24th of the 30 in (1.2, 5]: 1.2 + 3.8 * 24 / 30 = 4.24
    assert shadow_row["latency_p99"] == pytest.approx(4.24)
    assert shadow_row["client_error_rate"] == 0.0


def test_empty_target_list_sends_no_query() -> None:
    fake = FakePrometheus({})
    result = run(fake, [])
    assert (result["verdict"], result["queries"], fake.query_count) == ("insufficient_data", 0, 0)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([{"role": "main"}], "service_label"),
        ([{"service_label": MAIN, "role": "canary"}], "role 'canary'"),
        ([{"service_label": SHADOW, "role": "shadow", "pair": 80}], "pair must be"),
        (["not a mapping"], "mapping"),
    ],
)
def test_bad_targets_are_refused(targets: list[Any], message: str) -> None:
    with pytest.raises(DarklaunchError, match=message):
        run(FakePrometheus({}), targets)


def test_bad_options_fail_before_any_query() -> None:
    fake = FakePrometheus({MAIN: steady()})
    with pytest.raises(DarklaunchError) as raised:
        check_anomalies(fake, None, window="five minutes")
    assert (raised.value.field, fake.query_count) == ("window", 0)


def test_prometheus_errors_propagate() -> None:
    class BrokenPrometheus(FakePrometheus):
        def query_range(self, promql: str, start: Any, end: Any, step: Any) -> list[dict[str, Any]]:
            raise DarklaunchError("Cannot reach Prometheus at http://127.0.0.1:1", field="prometheus_url")

    with pytest.raises(DarklaunchError, match="Cannot reach Prometheus"):
        run(BrokenPrometheus({}), None)


def test_ok_summary_counts_services() -> None:
    fake = FakePrometheus({f"ns-svc-{index}-80@kubernetescrd": steady() for index in range(3)})
    assert (
        run(fake, None)["summary"]
        == "No anomalies over the last 1m at sigma 2 (z 2.8 per comparison across 9 comparisons): "
        "3 services match their recent history."
    )


# --- an IngressRoute with several routes: only the mirrored one is under test ------------------------

FIXTURES = Path(__file__).parents[1] / "module_utils" / "fixtures" / "objects"
# ir-three-routes: route 0 /api -> mirror (stable, 20% to canary), route 1 /health -> stable alone,
# route 2 admin host -> staging alone. A route with one Service has a metrics label named after it.
HEALTH = "production-api-service-route-9aa6710bc5b963b4b9a7@kubernetescrd"
ADMIN = "production-api-service-route-5c8bbacd5f6a7d0d0541@kubernetescrd"


def three_route_targets() -> list[dict[str, Any]]:
    def load(name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
        return loaded

    distribution = resolve_route(
        parse_ingress_route(load("ir-three-routes")), index_by_key([parse_traefik_service(load("ts-mirror-20"))])
    )
    return anomaly_targets(distribution)


def rows_by_service(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["service"]: row for row in result["services"]}


def test_idle_second_route_never_leaves_the_mirrored_route_unjudged() -> None:
    # /health has no metrics at all (nobody calls it); before the fix its label was part of the
    # shadow's main service, and every check said insufficient_data.
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady(), ADMIN: steady(300)})
    result = run(fake, three_route_targets())
    assert result["verdict"] == "ok", result["summary"]
    assert result["summary"].startswith(f"{ROUTE_OK} like its main")
    assert (result["queries"], fake.query_count) == (4, 4)
    assert all(HEALTH in promql and ADMIN in promql for _kind, promql, _args in fake.calls)
    rows = rows_by_service(result)
    assert rows[SHADOW]["compared_to"] == MAIN and rows[SHADOW]["checks"]["shadow_vs_main"] == "ok"
    assert (rows[HEALTH]["role"], rows[HEALTH]["checks"], rows[HEALTH]["requests"]) == (
        "other_route",
        {"history": "insufficient_data"},
        None,
    )
    assert rows[ADMIN]["role"] == "other_route" and rows[ADMIN]["requests"] == 300
    assert [gap["service"] for gap in result["insufficient_data"]] == []


def test_bad_shadow_on_a_three_route_ingress_is_anomalous() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady(error_share=0.3), ADMIN: steady(300)})
    result = run(fake, three_route_targets())
    assert result["verdict"] == "anomalous"
    [finding] = [a for a in result["anomalies"] if a["check"] == "shadow_vs_main"]
    assert (finding["service"], finding["metric"], finding["compared_to"]) == (SHADOW, "error_rate", MAIN)
    assert finding["value"] == pytest.approx(0.3)


def test_busy_other_route_is_never_the_shadow_s_main() -> None:
    # The admin host fails 30% of its requests. Pooled into the main service it would hide a shadow
    # failing 10% (main at 15% errors); compared with stable alone the shadow is caught.
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady(error_share=0.1), ADMIN: steady(error_share=0.3)})
    result = run(fake, three_route_targets())
    assert result["verdict"] == "anomalous"
    [finding] = [a for a in result["anomalies"] if a["check"] == "shadow_vs_main"]
    assert (finding["compared_to"], finding["baseline"]) == (MAIN, 0.0)
    main_rows = [row["service"] for row in result["services"] if row["role"] == "main"]
    assert main_rows == [MAIN]


def test_anomaly_on_another_route_is_reported_but_not_the_verdict() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady(), ADMIN: steady(current=100)})
    result = run(fake, three_route_targets())
    assert (result["verdict"], result["anomalies"]) == ("ok", [])
    [note] = result["informational"]
    assert (note["service"], note["role"], note["metric"]) == (ADMIN, "other_route", "request_rate")
    assert "Not part of the verdict, on another route of the IngressRoute: api-service-staging" in result["summary"]
    assert rows_by_service(result)[ADMIN]["checks"] == {"history": "anomalous"}


def test_rows_give_one_line_per_check() -> None:
    """What the role prints per interval check: shadow and main requests, error rate and p95."""
    fake = FakePrometheus({MAIN: steady(error_share=0.01), SHADOW: steady(120), ADMIN: steady(300)})
    result = run(fake, three_route_targets())
    rows = result["services"]
    [shadow] = [row for row in rows if row["role"] == "shadow"]
    [main] = [row for row in rows if row["role"] == "main"]
    assert (shadow["requests"], main["requests"]) == (120, 600)
    assert (shadow["error_rate"], main["error_rate"]) == (0.0, pytest.approx(0.01))
    assert shadow["latency_p95"] == pytest.approx(1.2) and main["latency_p95"] == pytest.approx(1.2)


# --- the gate's options: client errors, checks per step, the mirror's percentage and since when ------------


def test_shadow_answering_404_is_anomalous_on_client_errors() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady(client_error_share=0.2)})
    result = run(fake, route())
    found = [(anomaly["role"], anomaly["check"], anomaly["metric"]) for anomaly in result["anomalies"]]
    assert found == [("shadow", "shadow_vs_main", "client_error_rate")]
    assert rows_by_service(result)[SHADOW]["client_error_rate"] == pytest.approx(0.2)
    assert "has a client error rate of 20.00% against 0.00% on main" in result["summary"]


@pytest.mark.parametrize(("codes", "verdict"), [(["404"], "anomalous"), (["429"], "ok"), ([], "ok")])
def test_client_error_codes_choose_what_counts(codes: list[str], verdict: str) -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady(client_error_share=0.2)})
    result = run(fake, route(), client_error_codes=codes)
    assert (result["verdict"], result["client_error_codes"]) == (verdict, codes)
    assert result["comparisons"] == (7 if codes == [] else 8)


def test_bad_client_error_codes_fail_before_any_query() -> None:
    fake = FakePrometheus({MAIN: steady()})
    with pytest.raises(DarklaunchError) as raised:
        run(fake, route(), client_error_codes=["abc"])
    assert (raised.value.field, fake.query_count) == ("client_error_codes", 0)


def test_checks_per_step_share_the_budget() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady()})
    result = run(fake, route(), checks_per_step="5")
    # 5 checks x 8 comparisons: 0.02275 / 40 = 0.00056875 one-sided, z 3.254
    assert (result["checks_per_step"], result["comparisons"]) == (5, 40)
    assert result["sigma_applied"] == pytest.approx(3.254, abs=0.001)
    with pytest.raises(DarklaunchError) as raised:
        run(fake, route(), checks_per_step=0)
    assert raised.value.field == "checks_per_step"


def percent_route(shadow_percent: Any = 20, main_percent: Any = 100) -> list[dict[str, Any]]:
    main, shadow = route()
    return [{**main, "percent": main_percent}, {**shadow, "percent": shadow_percent}]


def first_step() -> FakePrometheus:
    """100 req/s on the main; the shadow, new, completed 100 copies in the current 1m window (of 1200 at 20%)."""
    return FakePrometheus({MAIN: Traffic([6000] * 7), SHADOW: Traffic([0] * 6 + [100])})


def test_a_shadow_short_of_copies_is_anomalous_once_its_percentage_held_a_window() -> None:
    # 1200 copies expected, 100 completed: z = 1100 / sqrt(1200) = 31.754
    for since in ({}, {"mirror_since": NOW - 60}, {"mirror_since": str(NOW - 300)}):
        result = run(first_step(), percent_route(), **since)
        [anomaly] = result["anomalies"]
        assert (anomaly["metric"], anomaly["z_score"], anomaly["compared_to"]) == ("delivery", 31.754, f"20% of {MAIN}")


def test_mirror_since_within_the_window_leaves_delivery_unjudged() -> None:
    # The step began 15 s ago: most of the window had no mirror; the shadow's 100 copies are judged otherwise.
    result = run(first_step(), percent_route(), mirror_since=NOW - 15)
    assert result["verdict"] == "ok", result["summary"]


def test_hung_shadow_of_a_route_is_anomalous() -> None:
    # no series for the shadow at all; 600 * 20% = 120 copies expected: z = 120 / sqrt(120) = 10.954
    fake = FakePrometheus({MAIN: steady()})
    result = run(fake, percent_route())
    assert result["verdict"] == "anomalous"
    [anomaly] = result["anomalies"]
    assert (anomaly["service"], anomaly["metric"], anomaly["z_score"]) == (SHADOW, "delivery", 10.954)


@pytest.mark.parametrize("since", ["soon", [1], {"at": 1}])
def test_bad_mirror_since_fails_before_any_query(since: Any) -> None:
    fake = FakePrometheus({MAIN: steady()})
    with pytest.raises(DarklaunchError) as raised:
        run(fake, route(), mirror_since=since)
    assert (raised.value.field, fake.query_count) == ("mirror_since", 0)


@pytest.mark.parametrize(("given", "parsed"), [(20, 20.0), ("20", 20.0), (12.5, 12.5), (0, 0.0), (100, 100.0)])
def test_target_percent_is_read_as_a_number(given: Any, parsed: float) -> None:
    [main, shadow] = parse_targets(percent_route(shadow_percent=given))
    assert (main.percent, shadow.percent) == (100.0, parsed)
    [main, shadow] = parse_targets(percent_route(shadow_percent=None, main_percent=""))
    assert (main.percent, shadow.percent) == (None, None)


@pytest.mark.parametrize("percent", [150, -1, "x", True, [20]])
def test_bad_target_percent_is_refused(percent: Any) -> None:
    fake = FakePrometheus({MAIN: steady()})
    with pytest.raises(DarklaunchError, match=r"percent must be a number from 0 to 100"):
        run(fake, percent_route(shadow_percent=percent))
    assert fake.query_count == 0


def test_a_mirror_of_some_methods_counts_the_mains_requests_of_those_methods() -> None:
    fake = FakePrometheus({MAIN: steady(), SHADOW: steady()})
    result = run(fake, route(), methods=("GET", "HEAD"))
    assert result["verdict"] == "ok" and result["methods"] == ["GET", "HEAD"]
    assert len(fake.calls) == 4 and all('method=~"GET|HEAD"' in query for _kind, query, _args in fake.calls)
    assert "methods" not in run(FakePrometheus({MAIN: steady(), SHADOW: steady()}), route())


# --- an HTTPRoute's main: its history before attach under the Gateway provider's labels -------------------------

GATEWAY_374 = "production-api-service-stable-http-80@kubernetesgateway"
GATEWAY_3713 = (
    "httproute-production-api-route-gw-infra-traefik-gateway-ep-web-1-4a99d300094a93cec00d-svc-production-"
    "api-service-stable-0@kubernetesgateway"
)


@pytest.mark.parametrize(("gateway_label", "form"), [(GATEWAY_374, "3.2-3.7.5"), (GATEWAY_3713, "3.7.6 and later")])
def test_an_httproute_main_keeps_its_history_from_before_attach(gateway_label: str, form: str) -> None:
    from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_labels import gateway_label_patterns

    patterns = gateway_label_patterns("production", "api-route", 1, 0, "production", "api-service-stable", 80)
    targets = route()
    targets[0]["label_patterns"] = list(patterns)
    # The mirror was attached in the current window: before, the main counted under the Gateway label only.
    fake = FakePrometheus(
        {
            MAIN: Traffic([None] * 6 + [600], error_share=0.3),
            gateway_label: Traffic([600] * 6 + [0], error_share=0.01),
            SHADOW: steady(error_share=0.01),
            # Another backend of the cluster is never taken for the main's history.
            "production-api-service-stable-9000@kubernetescrd": steady(),
        }
    )
    report = run(fake, targets)
    (used,) = report["history_from"]
    assert (used["service"], used["history_labels"], used["windows"]) == (MAIN, [gateway_label], 6)
    assert [f"Traefik {form} " in text for text in used["label_forms"]] == [True]
    # Six windows of history at 1% errors: the main's 30% now is judged against them (without them: too little).
    main = next(row for row in report["services"] if row["service"] == MAIN)
    assert main["checks"]["history"] == "anomalous", main
    assert report["builtin_queries"] == 4
    without = run(FakePrometheus(dict(fake.traffic)), route())
    main = next(row for row in without["services"] if row["service"] == MAIN)
    assert main["checks"]["history"] == "insufficient_data" and "history_from" not in without


def test_label_patterns_must_be_regular_expressions() -> None:
    targets = route()
    targets[0]["label_patterns"] = ["("]
    with pytest.raises(DarklaunchError, match="label_patterns"):
        run(FakePrometheus({MAIN: steady(), SHADOW: steady()}), targets)
