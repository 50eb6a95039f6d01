"""The anomaly check of ``lookup('darklaunch.traefik.traffic', 'anomalies')`` against the real Traefik
and Prometheus of the local cluster, with real traffic and the backends' knobs.

One seed world gets a mirror (stable serves users, 50% of requests copied to the canary) and a
steady, bounded stream of requests through Traefik in a background thread. The tests then run in
order: identical backends never alarm (10 checks), the canary failing 10% of requests is named with
its error rate, the canary 300 ms slower is named with its latency, and each time the verdict comes
back to ``ok`` once the canary is repaired. Other tests cover a route without traffic, Prometheus
being unreachable or not Prometheus at all, and the constant number of PromQL queries of the
cluster-wide check (server-side counted, with a synthetic exporter of bench/anomaly_bench.py).

Windows are short (10 s, Prometheus scrapes every second) so the whole module takes a few minutes.
"""

from __future__ import annotations

import http.client
import http.server
import importlib.util
import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleLookupError
from reports import poll_report, reports_in_a_row
from routes import shadow_route, shadowed_under_traffic
from shadow import run_anomaly_check
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / ".state" / "collections"

WINDOW = "10s"
WINDOW_SECONDS = 10.0
HISTORY_WINDOWS = 3
MIN_REQUESTS = 100
MIRROR_PERCENT = 50
RATE = 40.0  # requests per second through Traefik: 400 per window at stable, ~200 copies at the canary
TRAFFIC_LIMIT_SECONDS = 420.0  # a hard stop for the traffic thread, whatever happens to the tests


# --- the lookup, as Ansible loads it ---------------------------------------------------------------


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """bench/anomaly_bench.py: the synthetic Traefik exporter, a throwaway Prometheus, the timed client."""
    spec = importlib.util.spec_from_file_location("anomaly_bench", REPO_ROOT / "bench" / "anomaly_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def anomalies(new_lookup: Callable[[], Any], **options: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "sigma": 2,
        "window": WINDOW,
        "history_windows": HISTORY_WINDOWS,
        "min_requests": MIN_REQUESTS,
        "prometheus_url": os.environ.get("PROMETHEUS_URL"),
    }
    settings.update(options)
    result: list[dict[str, Any]] = new_lookup().run(["anomalies"], variables={}, **settings)
    assert len(result) == 1
    return result[0]


def brief(report: dict[str, Any]) -> str:
    """What a failing assertion should show: verdict, summary, anomalies, gaps and per-service rows."""
    rows = [
        {k: row[k] for k in ("service", "role", "requests", "error_rate", "latency_mean", "latency_p95", "checks")}
        for row in report.get("services", [])
    ]
    return json.dumps(
        {
            "verdict": report.get("verdict"),
            "summary": report.get("summary"),
            "anomalies": [a.get("description") for a in report.get("anomalies", [])],
            "insufficient_data": report.get("insufficient_data"),
            "services": rows,
        },
        indent=1,
    )


# --- the shadowed route ----------------------------------------------------------------------------


def require_prompt_backends(world: Any) -> None:
    """Identical backends must answer in about the same time on every request, or a latency history
    alone makes the main service "anomalous". A Python http.server without TCP_NODELAY writes headers
    and body separately and stalls ~40 ms on most keep-alive requests (Nagle + delayed ACK), so its
    mean latency swings between windows: that is a harness defect, reported as such."""
    backend = urllib.parse.urlsplit(world.backends["stable"].url)
    conn = http.client.HTTPConnection(backend.hostname, backend.port, timeout=5)
    timings = []
    try:
        for _attempt in range(7):
            started = time.perf_counter()
            conn.request("GET", "/__darklaunch_probe")
            conn.getresponse().read()
            timings.append(time.perf_counter() - started)
    finally:
        conn.close()
    slow = sorted(timings)[len(timings) // 2]
    if slow > 0.02:
        pytest.fail(
            f"the test backends take {slow * 1000:.0f} ms per keep-alive request (median): tests/cluster/dlcluster/"
            "backends.py must set disable_nagle_algorithm = True on its handler (TCP_NODELAY), otherwise "
            "their latency swings between 0.3 and 44 ms and no latency statistic can call them steady.",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def shadowed(
    seed_world: Callable[..., Any], traefik_api_get: Callable[[str], Any], cluster: Any
) -> Iterator[tuple[Any, SteadyTraffic]]:
    world = seed_world()
    require_prompt_backends(world)
    with shadowed_under_traffic(
        world, traefik_api_get, cluster.traefik_url, MIRROR_PERCENT, RATE, TRAFFIC_LIMIT_SECONDS, WINDOW_SECONDS
    ) as traffic:
        yield world, traffic


def route_check(new_lookup: Callable[[], Any], world: Any, **options: Any) -> dict[str, Any]:
    return anomalies(new_lookup, route_name=world.route, namespace=world.namespace, **options)


def wait_for_report(
    new_lookup: Callable[[], Any],
    world: Any,
    wanted: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 3 * WINDOW_SECONDS,
) -> dict[str, Any]:
    return poll_report(partial(route_check, new_lookup, world), wanted, what, timeout, brief)


def canary_findings(report: dict[str, Any], world: Any, prefix: str) -> list[dict[str, Any]]:
    canary = world.metrics_label("canary")
    return [a for a in report["anomalies"] if a["service"] == canary and a["metric"].startswith(prefix)]


def is_healthy(report: dict[str, Any]) -> bool:
    return bool(report["verdict"] == "ok")


@contextmanager
def canary_fault(
    new_lookup: Callable[[], Any], world: Any, metric_prefix: str, what: str, **knobs: Any
) -> Iterator[dict[str, Any]]:
    """The canary set to ``knobs`` until the block ends: entered with the first anomalous report made once a
    whole window has the fault (the measured value is then the knob's), left once the canary is healthy
    again and the check says ok."""
    canary = world.backends["canary"]
    canary.set_knobs(**knobs)
    try:
        wait_for_report(new_lookup, world, lambda r: bool(canary_findings(r, world, metric_prefix)), what)
        time.sleep(WINDOW_SECONDS + 1)
        report = route_check(new_lookup, world)
        assert report["verdict"] == "anomalous", brief(report)
        yield report
    finally:
        canary.set_knobs(error_rate=0, error_status=500, latency_ms=0)
    wait_for_report(new_lookup, world, is_healthy, f"recovery to ok after the {what}")


# --- the tests, in order on the shadowed route -------------------------------------------------------


def test_lookup_is_found_by_ansible(new_lookup: Callable[[], Any]) -> None:
    lookup = new_lookup()
    assert type(lookup).__module__ == "ansible_collections.darklaunch.traefik.plugins.lookup.traffic"


def test_identical_backends_never_alarm(new_lookup: Callable[[], Any], shadowed: tuple[Any, SteadyTraffic]) -> None:
    world, traffic = shadowed
    reports = reports_in_a_row(partial(route_check, new_lookup, world), 10)
    assert traffic.running and traffic.failures == 0 and set(traffic.statuses) == {200}, traffic.statuses
    for report in reports:
        assert report["verdict"] == "ok", brief(report)
        assert report["anomalies"] == [], brief(report)
        assert report["queries"] == 4
        rows = {row["service"]: row for row in report["services"]}
        canary, stable = rows[world.metrics_label("canary")], rows[world.metrics_label("stable")]
        assert canary["role"] == "shadow" and canary["compared_to"] == world.metrics_label("stable")
        assert canary["checks"]["shadow_vs_main"] == "ok"
        assert stable["role"] == "main"
        # increase() extrapolates, so counts are close to, not exactly, rate x window (x percent).
        assert 0.7 * RATE * WINDOW_SECONDS <= stable["requests"] <= 1.3 * RATE * WINDOW_SECONDS, brief(report)
        assert 0.3 <= canary["requests"] / stable["requests"] <= 0.7, brief(report)
        assert report["route"]["route"] == world.route


def test_canary_failing_10_percent_is_named_with_its_error_rate(
    new_lookup: Callable[[], Any], shadowed: tuple[Any, SteadyTraffic]
) -> None:
    world = shadowed[0]
    with canary_fault(new_lookup, world, "error_rate", "error alarm", error_rate=0.1) as report:
        finding = next(a for a in canary_findings(report, world, "error_rate") if a["check"] == "shadow_vs_main")
        assert finding["role"] == "shadow" and finding["name"] == world.service("canary")
        assert finding["compared_to"] == world.metrics_label("stable")
        assert finding["value"] == pytest.approx(0.10, abs=0.03), brief(report)
        assert finding["baseline"] == 0.0
        assert finding["z_score"] >= 4 and finding["severity"] == "critical"
        assert world.service("canary") in report["summary"] and "error rate" in report["summary"]
        # Users never saw those errors: the canary only gets copies.
        assert not [a for a in report["anomalies"] if a["service"] == world.metrics_label("stable")], brief(report)
        run_playbook_expecting_anomaly(world)


def test_canary_300ms_slower_is_named_with_its_latency(
    new_lookup: Callable[[], Any], shadowed: tuple[Any, SteadyTraffic]
) -> None:
    world = shadowed[0]
    with canary_fault(new_lookup, world, "latency_", "latency alarm", latency_ms=300) as report:
        by_metric = {
            a["metric"]: a for a in canary_findings(report, world, "latency_") if a["check"] == "shadow_vs_main"
        }
        assert set(by_metric) == {"latency_mean", "latency_p95", "latency_p99"}, brief(report)
        mean = by_metric["latency_mean"]
        assert mean["role"] == "shadow" and mean["unit"] == "seconds" and mean["severity"] == "critical"
        assert 0.28 <= mean["value"] <= 0.45 and mean["baseline"] < 0.05, brief(report)
        assert by_metric["latency_p95"]["value"] >= 0.3, brief(report)
        assert not canary_findings(report, world, "error_rate"), brief(report)
        assert world.service("canary") in report["summary"] and "latency" in report["summary"]


def test_canary_answering_404_to_a_fifth_is_named_with_its_client_errors(
    new_lookup: Callable[[], Any], shadowed: tuple[Any, SteadyTraffic]
) -> None:
    """A build whose routing is broken answers 404: not a 5xx, as broken for its users."""
    world = shadowed[0]
    with canary_fault(new_lookup, world, "client_", "404 alarm", error_rate=0.2, error_status=404) as report:
        finding = next(a for a in canary_findings(report, world, "client_") if a["check"] == "shadow_vs_main")
        assert finding["metric"] == "client_error_rate" and finding["severity"] == "critical", finding
        assert finding["value"] == pytest.approx(0.20, abs=0.05) and finding["baseline"] == 0.0, brief(report)
        assert not canary_findings(report, world, "error_rate"), brief(report)  # a 404 is not a server error
        assert "client error rate" in report["summary"]
        # Only the chosen codes count: with 401 alone, the 404s are not client errors.
        chosen = route_check(new_lookup, world, client_error_codes=["401"])
        assert chosen["client_error_codes"] == ["401"]
        assert not canary_findings(chosen, world, "client_"), brief(chosen)


def test_canary_whose_copies_never_complete_is_anomalous_not_insufficient(
    new_lookup: Callable[[], Any], shadowed: tuple[Any, SteadyTraffic]
) -> None:
    """A shadow that stops answering leaves Traefik no samples at all (a copy is counted when it completes):
    the copies its percentage predicts, against none completed, make it anomalous."""
    world, traffic = shadowed
    canary = world.backends["canary"]
    canary.set_knobs(hang=True)
    try:
        report = wait_for_report(
            new_lookup, world, lambda r: bool(canary_findings(r, world, "delivery")), "delivery alarm"
        )
        assert report["verdict"] == "anomalous", brief(report)
        finding = canary_findings(report, world, "delivery")[0]
        expected = RATE * MIRROR_PERCENT / 100
        assert 0.6 * expected <= finding["baseline"] <= 1.4 * expected, finding
        assert finding["value"] < 0.25 * finding["baseline"], finding
        assert "hang or fail before an answer" in report["summary"]
        assert canary.counters()["hanging"] > 0
        # The users never waited for the shadow.
        assert traffic.failures == 0 and set(traffic.statuses) == {200}, traffic.statuses
    finally:
        canary.set_knobs(hang=False)
    wait_for_report(
        new_lookup, world, is_healthy, "recovery after the canary answered again", timeout=5 * WINDOW_SECONDS
    )


def run_playbook_expecting_anomaly(world: Any) -> None:
    """playbooks/anomaly_check.yml, as an operator runs it, while the canary fails 10% of requests."""
    completed = run_anomaly_check(world, WINDOW, sigma=2, fail_on_anomaly=True)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "ANOMALOUS" in output and world.service("canary") in output and "error rate" in output, output
    assert "failed=1" in output, output


def test_playbook_says_ok_over_identical_backends(shadowed: tuple[Any, SteadyTraffic]) -> None:
    world = shadowed[0]
    completed = run_anomaly_check(world, WINDOW, fail_on_anomaly=True)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert ": OK." in output and "Nothing looks off." in output, output


def test_cluster_wide_check_of_the_real_cluster(
    new_lookup: Callable[[], Any], shadowed: tuple[Any, SteadyTraffic], bench: ModuleType
) -> None:
    world = shadowed[0]
    with bench.instrumented_prometheus_client(new_lookup()) as stats:
        report = anomalies(new_lookup)
    assert report["scope"] == "cluster" and report["queries"] == 4 and stats.queries == 4
    rows = {row["service"]: row for row in report["services"]}
    for role in ("stable", "canary"):
        assert rows[world.metrics_label(role)]["role"] == "service"
    assert not [label for label in rows if label.endswith("@internal")]
    assert report["verdict"] != "anomalous", brief(report)


# --- no traffic ------------------------------------------------------------------------------------


def test_route_without_traffic_is_insufficient_data(
    new_lookup: Callable[[], Any], seed_world: Callable[..., Any], traefik_api_get: Callable[[str], Any]
) -> None:
    world = seed_world(app="idle-service")
    shadow_route(world, traefik_api_get, MIRROR_PERCENT)
    report = route_check(new_lookup, world)
    assert report["verdict"] == "insufficient_data", brief(report)
    assert report["anomalies"] == []
    shadow_gaps = [g for g in report["insufficient_data"] if g["check"] == "shadow_vs_main"]
    assert [g["service"] for g in shadow_gaps] == [world.metrics_label("canary")], brief(report)
    assert "no metrics" in shadow_gaps[0]["reason"] or "fewer than min_requests" in shadow_gaps[0]["reason"]
    assert "Not enough data" in report["summary"]


# --- Prometheus unreachable or not Prometheus --------------------------------------------------------


class _WebPage(http.server.BaseHTTPRequestHandler):
    """Something else listening where Prometheus was expected: a web page for every path."""

    status = 200

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = b"<html><body>hello</body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST


class _NotFound(_WebPage):
    status = 404


def expect_lookup_error(new_lookup: Callable[[], Any], **options: Any) -> str:
    started = time.monotonic()
    with pytest.raises(AnsibleLookupError) as caught:
        anomalies(new_lookup, **options)
    assert time.monotonic() - started < 5, "an unreachable Prometheus must fail fast"
    return str(caught.value)


def test_closed_port_gives_a_clear_error(
    new_lookup: Callable[[], Any], shadowed: tuple[Any, SteadyTraffic], bench: ModuleType
) -> None:
    world = shadowed[0]
    url = f"http://127.0.0.1:{bench.free_port()}"
    for options in ({}, {"route_name": world.route, "namespace": world.namespace}):
        message = expect_lookup_error(new_lookup, prometheus_url=url, **options)
        assert f"Cannot reach Prometheus at {url}" in message and "refused" in message.lower(), message
        assert "prometheus_url" in message and "PROMETHEUS_URL" in message, message


def test_something_else_on_the_port_gives_a_clear_error(new_lookup: Callable[[], Any]) -> None:
    expected = {_NotFound: "no Prometheus query API", _WebPage: "did not answer like the Prometheus API"}
    for handler, words in expected.items():
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_port}"
            message = expect_lookup_error(new_lookup, prometheus_url=url)
        finally:
            server.shutdown()
            server.server_close()
        assert url in message and words in message and "prometheus_url" in message, message


def test_stopped_prometheus_gives_a_clear_error(new_lookup: Callable[[], Any], bench: ModuleType) -> None:
    prometheus = bench.PrometheusProcess([f"127.0.0.1:{bench.free_port()}"]).start()
    try:
        # A Prometheus with nothing to scrape: no services at all is not an all-clear.
        report = anomalies(new_lookup, prometheus_url=prometheus.url)
        assert report["verdict"] == "insufficient_data" and report["services"] == [], brief(report)
        assert report["queries"] == 4
    finally:
        prometheus.stop()
    message = expect_lookup_error(new_lookup, prometheus_url=prometheus.url)
    assert f"Cannot reach Prometheus at {prometheus.url}" in message and "running" in message, message


# --- a constant number of queries cluster-wide --------------------------------------------------------


def test_cluster_wide_query_count_does_not_grow_with_services(new_lookup: Callable[[], Any], bench: ModuleType) -> None:
    """3 services, then 500: the same 4 queries, counted by the client AND by Prometheus itself."""
    exporter = bench.SyntheticTraefik(3).start()
    prometheus = bench.PrometheusProcess([exporter.address]).start()
    options = {"prometheus_url": prometheus.url, "window": "4s", "history_windows": 2, "min_requests": 1}
    try:
        counts = {}
        for services in (3, 500):
            exporter.set_services(services)
            deadline = time.monotonic() + 30
            while True:
                before = prometheus.api_requests()
                with bench.instrumented_prometheus_client(new_lookup()) as stats:
                    report = anomalies(new_lookup, **options)
                after = prometheus.api_requests()
                listed = [row["service"] for row in report["services"]]
                if len(listed) == services or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            assert len(listed) == services, brief(report)
            assert "dashboard@internal" not in listed
            server_side = {h: after.get(h, 0) - before.get(h, 0) for h in ("/api/v1/query", "/api/v1/query_range")}
            counts[services] = (report["queries"], stats.queries, server_side)
        assert counts[3] == counts[500] == (4, 4, {"/api/v1/query": 1, "/api/v1/query_range": 3}), counts
    finally:
        prometheus.stop()
        exporter.stop()
