"""The anomaly gate on an IngressRoute with three routes, against the real Traefik and Prometheus.

One IngressRoute, three routes (the shape most real IngressRoutes have):

    route 0  Host(<host>)                       -> the mirror (stable serves users, 50% copied to canary)
    route 1  Host(<host>) && Path(`/health`)    -> staging, on its own; nobody calls it (idle)
    route 2  Host(<busy host>)                  -> busy, on its own; steady traffic of its own

Routes 1 and 2 have exactly one Service each, so Traefik names their metrics after the route
(``<ns>-<ingressroute>-<hash>@kubernetescrd``), not after the Service. Before the fix both counted as
part of the shadow's main service: the idle one has no metrics at all, so every check of the
mirrored route was ``insufficient_data``, and a shadow failing 30% of its requests passed the gate.

The module sends steady traffic through Traefik to both hosts, then checks, in order: identical
versions are ``ok`` (the idle route never makes it ``insufficient_data``) with the traffic counted at
the backends; a busy other route that starts failing is reported but does not change the verdict; a
shadow failing 20% of its copies is ``anomalous``, compared with stable alone, while users see no error.
Windows are 10 s (Prometheus scrapes every second); the module takes two to three minutes.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from reports import poll_report, reports_in_a_row
from routes import shadow_route
from steady import SteadyTraffic
from test_anomalies import (  # the anomaly tests' settings and helpers
    MIN_REQUESTS,
    WINDOW_SECONDS,
    anomalies,
    brief,
    require_prompt_backends,
)

pytestmark = pytest.mark.integration

MIRROR_PERCENT = 50
RATE = 40.0  # requests per second on the mirrored route: 400 per window at stable, ~200 copies
BUSY_RATE = 20.0  # requests per second on the busy route: 200 per window
TRAFFIC_LIMIT_SECONDS = 360.0  # a hard stop for the traffic threads, whatever happens to the tests
HEALTH_MATCH = "Path(`/health`)"


@dataclass
class ThreeRoutes:
    world: Any
    busy_backend: Any
    busy_host: str
    route_traffic: SteadyTraffic
    busy_traffic: SteadyTraffic
    # Traefik's own names for the services of routes 1 and 2, read from its API (not computed by the
    # code under test): a route with one Service gets a service named after the route.
    idle: str
    busy: str

    @property
    def stable(self) -> str:
        return str(self.world.metrics_label("stable"))

    @property
    def canary(self) -> str:
        return str(self.world.metrics_label("canary"))


def add_routes(kube: Any, world: Any, busy_port: int, busy_host: str) -> dict[str, Any]:
    """The seed IngressRoute plus an idle health route (with the seed's middleware) and a second host."""
    ingress_route = kube.get(f"{world.api_group}/v1alpha1", "IngressRoute", world.route, world.namespace)
    assert ingress_route is not None
    routes = ingress_route["spec"]["routes"]
    health = copy.deepcopy(routes[0])
    health["match"] = f"Host(`{world.host}`) && {HEALTH_MATCH}"
    health["services"] = [{"name": world.service("staging"), "port": world.port("staging")}]
    second_host = {
        "match": f"Host(`{busy_host}`)",
        "kind": "Rule",
        "services": [{"name": world.service("busy"), "port": busy_port}],
    }
    applied = {
        "apiVersion": ingress_route["apiVersion"],
        "kind": "IngressRoute",
        "metadata": {"name": world.route, "namespace": world.namespace},
        "spec": {**ingress_route["spec"], "routes": [routes[0], health, second_host]},
    }
    result: dict[str, Any] = kube.apply(applied)
    return result


def busy_service(world: Any, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": world.service("busy"), "namespace": world.namespace},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def wait_routers(
    traefik_api_get: Callable[[str], Any], world: Any, count: int, timeout: float = 30.0
) -> dict[str, str]:
    """Until Traefik has ``count`` enabled routers for the IngressRoute; their rule -> service label."""
    deadline = time.monotonic() + timeout
    prefix = f"{world.namespace}-{world.route}-"
    while True:
        routers = traefik_api_get("/api/http/routers?per_page=1000")
        enabled = [r for r in routers if r["name"].startswith(prefix) and r.get("status") == "enabled"]
        if len(enabled) >= count:
            return {
                r["rule"]: r["service"] if "@" in r["service"] else f"{r['service']}@kubernetescrd" for r in enabled
            }
        if time.monotonic() > deadline:
            raise TimeoutError(f"Traefik has {len(enabled)} of {count} routers of {world.route} enabled")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def three_routes(
    seed_world: Callable[..., Any],
    kube: Any,
    backends: Any,
    cluster: Any,
    traefik_api_get: Callable[[str], Any],
    traffic: Callable[..., Any],
) -> Iterator[ThreeRoutes]:
    world = seed_world(app="multi-route")
    require_prompt_backends(world)
    busy_backend = backends.add(f"{world.namespace}/{world.service('busy')}", name=world.service("busy"))
    busy_host = f"busy.{world.host}"
    try:
        kube.apply(busy_service(world, busy_backend.port))
        add_routes(kube, world, busy_backend.port, busy_host)
        services = wait_routers(traefik_api_get, world, 3)
        idle_label = services[f"Host(`{world.host}`) && {HEALTH_MATCH}"]
        busy_label = services[f"Host(`{busy_host}`)"]
        assert f"-{world.route}-" in idle_label and f"-{world.route}-" in busy_label, services
        shadow_route(world, traefik_api_get, MIRROR_PERCENT)
        # Attaching repointed route 0 only: the other two still go to their own Service.
        routes = kube.get(f"{world.api_group}/v1alpha1", "IngressRoute", world.route, world.namespace)["spec"]["routes"]
        assert [r["services"][0]["name"] for r in routes] == [
            f"{world.route}-mirror",
            world.service("staging"),
            world.service("busy"),
        ]
        assert traffic(busy_host, 1).statuses == [200]
        world.reset_backends()
        busy_backend.reset()
        route_traffic = SteadyTraffic(cluster.traefik_url, world.host, RATE, TRAFFIC_LIMIT_SECONDS).start()
        busy_traffic = SteadyTraffic(cluster.traefik_url, busy_host, BUSY_RATE, TRAFFIC_LIMIT_SECONDS).start()
        setup = ThreeRoutes(world, busy_backend, busy_host, route_traffic, busy_traffic, idle_label, busy_label)
        try:
            # The history windows and the current one must be full of traffic, and scraped.
            time.sleep(3 * WINDOW_SECONDS + 3)
            yield setup
        finally:
            route_traffic.stop()
            busy_traffic.stop()
            for backend in (*world.backends.values(), busy_backend):
                backend.set_knobs(error_rate=0, latency_ms=0)
    finally:
        backends.remove(busy_backend.id)


def check(new_lookup: Callable[[], Any], setup: ThreeRoutes) -> dict[str, Any]:
    return anomalies(new_lookup, route_name=setup.world.route, namespace=setup.world.namespace)


def rows_by_service(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["service"]: row for row in report["services"]}


def assert_only_the_mirrored_route_is_judged(report: dict[str, Any], setup: ThreeRoutes) -> None:
    rows = rows_by_service(report)
    assert [row["service"] for row in report["services"] if row["role"] == "main"] == [setup.stable], brief(report)
    [shadow] = [row for row in report["services"] if row["role"] == "shadow"]
    assert shadow["service"] == setup.canary and shadow["compared_to"] == setup.stable, brief(report)
    assert rows[setup.idle]["role"] == "other_route" and rows[setup.busy]["role"] == "other_route", brief(report)
    # The idle route is checked and reported as unjudged, but never enters the verdict.
    assert rows[setup.idle]["checks"] == {"history": "insufficient_data"}, brief(report)
    assert report["verdict"] != "insufficient_data", brief(report)
    assert not [gap for gap in report["insufficient_data"] if gap["role"] == "other_route"], brief(report)
    assert report["queries"] == 4


def wait_for(
    new_lookup: Callable[[], Any], setup: ThreeRoutes, wanted: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    return poll_report(partial(check, new_lookup, setup), wanted, what, 3 * WINDOW_SECONDS, brief)


def shadow_error_findings(report: dict[str, Any], setup: ThreeRoutes) -> list[dict[str, Any]]:
    return [
        a
        for a in report["anomalies"]
        if a["service"] == setup.canary and a["check"] == "shadow_vs_main" and a["metric"] == "error_rate"
    ]


# --- the tests, in order ---------------------------------------------------------------------------


def test_identical_versions_are_ok_and_the_idle_route_never_makes_it_insufficient(
    new_lookup: Callable[[], Any], three_routes: ThreeRoutes
) -> None:
    setup = three_routes
    # Only what this test sends is judged here: an earlier test may have made the busy route fail.
    route_before, busy_before = Counter(setup.route_traffic.statuses), Counter(setup.busy_traffic.statuses)
    failures_before = (setup.route_traffic.failures, setup.busy_traffic.failures)
    reports = reports_in_a_row(partial(check, new_lookup, setup), 6)
    for report in reports:
        assert report["verdict"] == "ok", brief(report)
        assert report["anomalies"] == [], brief(report)
        assert_only_the_mirrored_route_is_judged(report, setup)
        rows = rows_by_service(report)
        stable, canary, busy = rows[setup.stable], rows[setup.canary], rows[setup.busy]
        # increase() extrapolates, so counts are close to, not exactly, rate x window (x percent).
        assert 0.7 * RATE * WINDOW_SECONDS <= stable["requests"] <= 1.3 * RATE * WINDOW_SECONDS, brief(report)
        assert 0.3 <= canary["requests"] / stable["requests"] <= 0.7, brief(report)
        assert 0.7 * BUSY_RATE * WINDOW_SECONDS <= busy["requests"] <= 1.3 * BUSY_RATE * WINDOW_SECONDS, brief(report)
        assert rows[setup.idle]["requests"] is None, brief(report)
        for row in (stable, canary):
            assert row["error_rate"] == 0 and row["latency_p95"] is not None, brief(report)

    # The traffic as the backends counted it: each host's requests reached its own backend only,
    # the canary got a copy of every other request of the mirrored route, the idle route nothing.
    route_sent = sum(setup.route_traffic.statuses.values())
    busy_sent = sum(setup.busy_traffic.statuses.values())
    counts = {**setup.world.counts(), "busy": setup.busy_backend.total}
    assert set(setup.route_traffic.statuses - route_before) == {200}, setup.route_traffic.statuses
    assert set(setup.busy_traffic.statuses - busy_before) == {200}, setup.busy_traffic.statuses
    assert (setup.route_traffic.failures, setup.busy_traffic.failures) == failures_before
    assert route_sent >= 0.8 * RATE * 4 * WINDOW_SECONDS and busy_sent >= 0.8 * BUSY_RATE * 4 * WINDOW_SECONDS
    assert abs(counts["stable"] - route_sent) <= RATE, (counts, route_sent)
    assert abs(counts["busy"] - busy_sent) <= BUSY_RATE, (counts, busy_sent)
    assert abs(counts["canary"] - counts["stable"] * MIRROR_PERCENT / 100) <= RATE, counts
    assert counts["staging"] == 0, counts


def test_a_failing_other_route_is_reported_but_is_not_the_verdict(
    new_lookup: Callable[[], Any], three_routes: ThreeRoutes
) -> None:
    setup = three_routes
    setup.busy_backend.set_knobs(error_rate=0.3)
    try:
        report = wait_for(new_lookup, setup, lambda r: bool(r["informational"]), "finding on the busy route")
        time.sleep(WINDOW_SECONDS / 2)
        report = check(new_lookup, setup)
        assert report["verdict"] == "ok" and report["anomalies"] == [], brief(report)
        findings = {(a["service"], a["role"], a["metric"]) for a in report["informational"]}
        assert (setup.busy, "other_route", "error_rate") in findings, report["informational"]
        assert "Not part of the verdict" in report["summary"], report["summary"]
        assert rows_by_service(report)[setup.busy]["error_rate"] > 0.1, brief(report)
        assert_only_the_mirrored_route_is_judged(report, setup)
    finally:
        setup.busy_backend.set_knobs(error_rate=0)
    assert setup.busy_backend.counters()["errors"] > 0  # the busy backend really did fail requests


def test_bad_shadow_is_anomalous_against_stable_alone(new_lookup: Callable[[], Any], three_routes: ThreeRoutes) -> None:
    setup = three_routes
    canary = setup.world.backends["canary"]
    served_before = dict(setup.route_traffic.statuses)
    canary.set_knobs(error_rate=0.2)
    try:
        wait_for(new_lookup, setup, lambda r: bool(shadow_error_findings(r, setup)), "error alarm on the shadow")
        # Once a whole window has the failing canary, the rate measured is the knob's.
        time.sleep(WINDOW_SECONDS + 1)
        report = check(new_lookup, setup)
        assert report["verdict"] == "anomalous", brief(report)
        [finding] = shadow_error_findings(report, setup)
        assert finding["compared_to"] == setup.stable and finding["baseline"] == 0.0, brief(report)
        assert finding["value"] == pytest.approx(0.2, abs=0.05), brief(report)
        assert finding["severity"] == "critical"
        assert setup.world.service("canary") in report["summary"] and "error rate" in report["summary"]
        assert_only_the_mirrored_route_is_judged(report, setup)
        canary_counters = canary.counters()
        assert canary_counters["errors"] >= 0.15 * MIN_REQUESTS, canary_counters
    finally:
        canary.set_knobs(error_rate=0)
    # Users only ever got answers from stable: no error reached them while the shadow failed.
    assert set(setup.route_traffic.statuses) == {200}, setup.route_traffic.statuses
    assert sum(setup.route_traffic.statuses.values()) > sum(served_before.values())
    wait_for(new_lookup, setup, lambda r: r["verdict"] == "ok", "recovery to ok after the shadow's errors stopped")
