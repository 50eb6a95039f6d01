"""Custom metric checks, Prometheus connection options and a shared Prometheus, against the real
Traefik and Prometheus of the local cluster with real mirrored traffic.

Connection options: the real Prometheus sits behind small loopback servers of ours (prom_proxies.py)
that demand a tenant header, a bearer token, basic auth or a client certificate, answer slowly, or
are only reachable through a forward proxy. Each option is shown necessary (without it: an error
naming it) and sufficient (with it: a verdict over the route's real series, and the guard counted
the requests it let through).

Custom checks: a p99 latency check that fires when the canary is 100 ms slower; a business metric
(orders per second) exported by an application exporter from the requests the canary backend really
counted; a typo in PromQL (error naming the check); a query with no data (inconclusive).

Shared Prometheus: Prometheus also scrapes "another cluster" (job remote-cluster-traefik, label
cluster="remote", served here by an exporter of Traefik-like series for the same service names in
which the canary fails every request); prometheus_selector decides which one is judged.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleLookupError
from modrun import run_module
from prom_proxies import (
    Exporter,
    ForwardProxy,
    GuardedPrometheus,
    LoopbackPki,
    basic_auth,
    header_equals,
    make_pki,
)
from routes import launch_vars, shadowed_under_traffic
from shadow import run_anomaly_check, run_playbook
from steady import SteadyTraffic

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from dlcluster.prometheus import APP_EXPORTER_OFFSET, REMOTE_CLUSTER_EXPORTER_OFFSET

pytestmark = pytest.mark.integration

WINDOW = "10s"
WINDOW_SECONDS = 10.0
MIRROR_PERCENT = 50
RATE = 40.0
TRAFFIC_LIMIT_SECONDS = 600.0
TOKEN = "prom-test-token-4f1a"
PROXY_PASSWORD = "proxy-pass-9c2e"
P99_QUERY = (
    'histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{service=~"$shadow"}'
    "[$window])))"
)


def prometheus_port_plus(offset: int) -> int:
    return int(os.environ["PROMETHEUS_URL"].rsplit(":", 1)[1]) + offset


# --- the shadowed route, with steady traffic --------------------------------------------------------


@pytest.fixture(scope="module")
def shadowed(
    seed_world: Callable[..., Any], traefik_api_get: Callable[[str], Any], cluster: Any
) -> Iterator[tuple[Any, SteadyTraffic]]:
    if not cluster.prometheus_url:
        pytest.skip("this cluster runs no Prometheus")
    world = seed_world(app="promopt")
    with shadowed_under_traffic(
        world, traefik_api_get, cluster.traefik_url, MIRROR_PERCENT, RATE, TRAFFIC_LIMIT_SECONDS, WINDOW_SECONDS
    ) as traffic:
        yield world, traffic


def check(new_lookup: Callable[[], Any], world: Any, **options: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "route_name": world.route,
        "namespace": world.namespace,
        "window": WINDOW,
        "history_windows": 3,
        "min_requests": 50,
        "prometheus_url": os.environ["PROMETHEUS_URL"],
    }
    settings.update(options)
    [report] = new_lookup().run(["anomalies"], variables={}, **settings)
    return dict(report)


def error_of(new_lookup: Callable[[], Any], world: Any, **options: Any) -> str:
    with pytest.raises(AnsibleLookupError) as caught:
        check(new_lookup, world, **options)
    return str(caught.value)


def assert_real_verdict(report: dict[str, Any], world: Any) -> None:
    """A verdict computed from the route's real series: both backends seen with their requests."""
    assert report["verdict"] in ("ok", "anomalous", "insufficient_data")
    rows = {row["service"]: row for row in report["services"]}
    assert rows[world.metrics_label("stable")]["requests"] > 100, report["summary"]
    assert rows[world.metrics_label("canary")]["requests"] > 50, report["summary"]
    assert report["builtin_queries"] == 4


@pytest.fixture
def guarded() -> Iterator[Callable[..., GuardedPrometheus]]:
    started: list[GuardedPrometheus] = []

    def start(**kwargs: Any) -> GuardedPrometheus:
        guard = GuardedPrometheus(os.environ["PROMETHEUS_URL"], **kwargs)
        guard.start()
        started.append(guard)
        return guard

    yield start
    for guard in started:
        guard.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LoopbackPki:
    return make_pki(tmp_path_factory.mktemp("prometheus-pki"))


# --- connection options: each necessary and sufficient ---------------------------------------------


def test_tenant_header(new_lookup: Any, shadowed: Any, guarded: Any) -> None:
    world = shadowed[0]
    guard = guarded(requirement=header_equals("X-Scope-OrgID", "tenant-a", 401, "no org id"))
    message = error_of(new_lookup, world, prometheus_url=guard.url)
    assert "HTTP 401" in message and "no org id" in message and "prometheus_headers" in message
    report = check(new_lookup, world, prometheus_url=guard.url, prometheus_headers={"X-Scope-OrgID": "tenant-a"})
    assert_real_verdict(report, world)
    assert guard.forwarded == 4 and guard.refused == 1


def test_tenant_header_from_the_environment_as_json(
    new_lookup: Any, shadowed: Any, guarded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = shadowed[0]
    guard = guarded(requirement=header_equals("X-Scope-OrgID", "tenant-b"))
    monkeypatch.setenv("PROMETHEUS_HEADERS", '{"X-Scope-OrgID": "tenant-b"}')
    assert_real_verdict(check(new_lookup, world, prometheus_url=guard.url), world)
    assert guard.forwarded == 4


def test_bearer_token(new_lookup: Any, shadowed: Any, guarded: Any) -> None:
    world = shadowed[0]
    guard = guarded(requirement=header_equals("Authorization", f"Bearer {TOKEN}"))
    message = error_of(new_lookup, world, prometheus_url=guard.url)
    assert "HTTP 401" in message and "prometheus_token" in message
    wrong = error_of(new_lookup, world, prometheus_url=guard.url, prometheus_token="not-the-token")
    assert "prometheus_token" in wrong and "not-the-token" not in wrong
    assert_real_verdict(check(new_lookup, world, prometheus_url=guard.url, prometheus_token=TOKEN), world)
    assert guard.forwarded == 4


def test_basic_auth(new_lookup: Any, shadowed: Any, guarded: Any) -> None:
    world = shadowed[0]
    guard = guarded(requirement=basic_auth("grafana", "s3cret-basic"))
    message = error_of(new_lookup, world, prometheus_url=guard.url)
    assert "HTTP 401" in message and "prometheus_username" in message
    report = check(
        new_lookup, world, prometheus_url=guard.url, prometheus_username="grafana", prometheus_password="s3cret-basic"
    )
    assert_real_verdict(report, world)
    assert guard.forwarded == 4


def test_client_certificate(new_lookup: Any, shadowed: Any, guarded: Any, pki: LoopbackPki) -> None:
    world = shadowed[0]
    guard = guarded(tls=pki.server_context(require_client_cert=True))
    no_ca = error_of(new_lookup, world, prometheus_url=guard.url)
    assert "prometheus_ca_cert" in no_ca and "certificate" in no_ca
    no_cert = error_of(new_lookup, world, prometheus_url=guard.url, prometheus_ca_cert=str(pki.ca_cert))
    assert "prometheus_client_cert" in no_cert
    trusted = {"prometheus_url": guard.url, "prometheus_ca_cert": str(pki.ca_cert)}
    stranger = error_of(
        new_lookup,
        world,
        **trusted,
        prometheus_client_cert=str(pki.stranger_cert),
        prometheus_client_key=str(pki.stranger_key),
    )
    assert "prometheus_client_cert" in stranger
    assert guard.forwarded == 0
    report = check(
        new_lookup,
        world,
        **trusted,
        prometheus_client_cert=str(pki.client_cert),
        prometheus_client_key=str(pki.client_key),
    )
    assert_real_verdict(report, world)
    assert guard.forwarded == 4


def test_validate_certs_off_still_sends_the_client_certificate(
    new_lookup: Any, shadowed: Any, guarded: Any, pki: LoopbackPki
) -> None:
    world = shadowed[0]
    guard = guarded(tls=pki.server_context(require_client_cert=True))
    report = check(
        new_lookup,
        world,
        prometheus_url=guard.url,
        prometheus_validate_certs=False,
        prometheus_client_cert=str(pki.client_cert),
        prometheus_client_key=str(pki.client_key),
    )
    assert_real_verdict(report, world)


def test_timeout(new_lookup: Any, shadowed: Any, guarded: Any) -> None:
    world = shadowed[0]
    guard = guarded(delay=2.5)
    message = error_of(new_lookup, world, prometheus_url=guard.url, prometheus_timeout=1)
    assert "prometheus_timeout" in message and "within 1 seconds" in message
    assert_real_verdict(check(new_lookup, world, prometheus_url=guard.url, prometheus_timeout=10), world)


@pytest.fixture
def only_via_proxy() -> Iterator[tuple[ForwardProxy, str]]:
    """A forward proxy, and a Prometheus address (a loopback port nothing listens on) that works only
    through it."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{probe.getsockname()[1]}"
    proxy = ForwardProxy(os.environ["PROMETHEUS_URL"], dead, credentials=("ops", PROXY_PASSWORD))
    proxy.start()
    yield proxy, f"http://{dead}"
    proxy.stop()


def test_proxy(new_lookup: Any, shadowed: Any, only_via_proxy: Any) -> None:
    world = shadowed[0]
    proxy, url = only_via_proxy
    direct = error_of(new_lookup, world, prometheus_url=url)
    assert "Cannot reach Prometheus" in direct and "prometheus_proxy" in direct
    no_password = error_of(new_lookup, world, prometheus_url=url, prometheus_proxy=proxy.url())
    assert "HTTP 407" in no_password and "prometheus_proxy" in no_password
    report = check(new_lookup, world, prometheus_url=url, prometheus_proxy=proxy.url(("ops", PROXY_PASSWORD)))
    assert_real_verdict(report, world)
    assert proxy.forwarded == 4


def test_proxy_from_the_environment_is_named_and_no_proxy_bypasses_it(
    new_lookup: Any, shadowed: Any, only_via_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = shadowed[0]
    proxy, _url = only_via_proxy
    dead_proxy = "http://127.0.0.1:9"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    message = error_of(new_lookup, world)
    assert f"through the proxy {dead_proxy} (from the HTTP_PROXY environment variable)" in message
    assert "no_proxy" in message
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert_real_verdict(check(new_lookup, world), world)
    # no_proxy applies to prometheus_proxy too, as it does to every Ansible HTTP client's proxy.
    assert_real_verdict(check(new_lookup, world, prometheus_proxy=proxy.url(("ops", PROXY_PASSWORD))), world)
    assert proxy.forwarded == 0


def test_queries_are_logged_at_vvv_without_credentials(
    new_lookup: Any, shadowed: Any, guarded: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from ansible.utils.display import Display

    world = shadowed[0]
    guard = guarded(requirement=header_equals("Authorization", f"Bearer {TOKEN}"))
    display = Display()
    before = display.verbosity
    display.verbosity = 3
    try:
        check(new_lookup, world, prometheus_url=guard.url, prometheus_token=TOKEN, metrics=[p99_check(1.0)])
    finally:
        display.verbosity = before
    output = capsys.readouterr()
    logged = output.out + output.err
    assert logged.count(f"Prometheus {guard.url}/api/v1/") == 5, logged
    assert "traefik_service_requests_total" in logged and "histogram_quantile(0.99" in logged
    assert "5 Prometheus queries (4 built-in)" in logged
    assert TOKEN not in logged


# --- custom checks ------------------------------------------------------------------------------


def p99_check(limit: float) -> dict[str, Any]:
    return {"name": "p99 latency", "query": P99_QUERY, "max": limit}


def metric(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in report["metrics"] if row["name"] == name)


def test_p99_check_fires_on_100_ms_more_latency(new_lookup: Any, shadowed: Any) -> None:
    world = shadowed[0]
    checks = [
        p99_check(0.1),
        {"name": "p99 vs main", "query": P99_QUERY, "max_ratio": 1.5},
    ]
    healthy = check(new_lookup, world, metrics=checks)
    assert metric(healthy, "p99 latency")["verdict"] == "ok", healthy["metrics"]
    assert metric(healthy, "p99 latency")["value"] <= 0.1
    assert metric(healthy, "p99 vs main")["verdict"] == "ok", healthy["metrics"]
    # A custom check costs exactly its own queries: 1 for a threshold, 2 for a comparison.
    assert (healthy["queries"], healthy["builtin_queries"]) == (4 + 1 + 2, 4)
    assert [row["queries"] for row in healthy["metrics"]] == [1, 2]
    canary = world.backends["canary"]
    canary.set_knobs(latency_ms=100)
    try:
        time.sleep(WINDOW_SECONDS + 2)
        slow = check(new_lookup, world, metrics=checks)
        p99 = metric(slow, "p99 latency")
        assert p99["verdict"] == "anomalous" and p99["value"] > 0.1, slow["metrics"]
        ratio = metric(slow, "p99 vs main")
        assert ratio["verdict"] == "anomalous" and ratio["shadow_value"] > 0.1 >= ratio["main_value"], ratio
        assert slow["verdict"] == "anomalous"
        assert "p99 latency" in slow["summary"]
    finally:
        canary.set_knobs(latency_ms=0)


@pytest.fixture(scope="module")
def app_exporter(shadowed: Any) -> Iterator[None]:
    """The application's own business counter: one order per request its backend really served."""
    world = shadowed[0]

    def render() -> str:
        lines = ["# TYPE shop_orders_created_total counter"]
        for version in ("stable", "canary"):
            served = world.backends[version].total
            lines.append(f'shop_orders_created_total{{namespace="{world.namespace}",version="{version}"}} {served}')
        return "\n".join(lines) + "\n"

    exporter = Exporter(prometheus_port_plus(APP_EXPORTER_OFFSET), render)
    exporter.start()
    time.sleep(WINDOW_SECONDS + 3)
    yield
    exporter.stop()


ORDERS_QUERY = 'sum(rate(shop_orders_created_total{namespace="$namespace",version="canary"}[$window]))'


def test_business_metric_threshold_on_the_backend_counter(new_lookup: Any, shadowed: Any, app_exporter: None) -> None:
    world = shadowed[0]
    report = check(
        new_lookup,
        world,
        metrics=[
            {"name": "orders per second", "query": ORDERS_QUERY, "min": 5},
            {"name": "orders per second, demanding", "query": ORDERS_QUERY, "min": 1000},
        ],
    )
    enough = metric(report, "orders per second")
    # The canary gets MIRROR_PERCENT of RATE: about 20 orders per second, counted at the backend.
    assert enough["verdict"] == "ok" and 12 <= enough["value"] <= 28, enough
    assert f'namespace="{world.namespace}"' in enough["query"] and "[10s]" in enough["query"]
    demanding = metric(report, "orders per second, demanding")
    assert demanding["verdict"] == "anomalous" and demanding["value"] == enough["value"]
    assert report["verdict"] == "anomalous" and "orders per second, demanding" in report["summary"]


def one_check(
    new_lookup: Any, world: Any, name: str, query: str, limit: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report of one custom check ``query <= limit``, and that check's row."""
    report = check(new_lookup, world, metrics=[{"name": name, "query": query, "max": limit}])
    return report, metric(report, name)


def test_typo_in_promql_is_an_error_naming_the_check(new_lookup: Any, shadowed: Any) -> None:
    world = shadowed[0]
    typo = 'sum(rate(traefik_service_retries_total{service=~"$shadow"}[$window])'
    report, row = one_check(new_lookup, world, "retries", typo, 1)
    assert (row["verdict"], row["reason"]) == ("error", "query_error"), row
    assert "Prometheus rejected the query" in row["message"] and "parse error" in row["message"]
    assert report["verdict"] != "ok"
    assert "retries" in report["summary"] and "query_error" in report["summary"]


def test_empty_result_is_inconclusive(new_lookup: Any, shadowed: Any) -> None:
    world = shadowed[0]
    report = check(
        new_lookup,
        world,
        metrics=[
            {
                "name": "open connections",
                "query": 'sum(traefik_open_connections{entrypoint="no-such-entrypoint"})',
                "max": 1000,
            },
            {
                "name": "error share",
                # 0/0: no request of the shadow had a status code 599
                "query": 'sum(rate(traefik_service_requests_total{service=~"$shadow",code="599"}[$window])) '
                '/ sum(rate(traefik_service_requests_total{service=~"$shadow",code="599"}[$window]))',
                "max": 0.1,
            },
        ],
    )
    empty = metric(report, "open connections")
    assert (empty["verdict"], empty["reason"], empty["value"]) == ("inconclusive", "no_data", None), empty
    assert report["verdict"] == "insufficient_data" or report["verdict"] == "anomalous"
    assert report["verdict"] != "ok"


def test_nan_is_inconclusive(new_lookup: Any, shadowed: Any) -> None:
    world = shadowed[0]
    nan = 'sum(rate(traefik_service_request_duration_seconds_sum{service=~"$shadow"}[$window])) * 0 / 0'
    report, row = one_check(new_lookup, world, "latency per request", nan, 1)
    assert row["verdict"] == "inconclusive" and row["reason"] in ("nan", "no_data"), row
    assert report["verdict"] != "ok"


def test_bad_check_definition_is_refused_naming_the_field(new_lookup: Any, shadowed: Any) -> None:
    world = shadowed[0]
    message = error_of(new_lookup, world, metrics=[{"name": "p99", "query": P99_QUERY, "max": 1, "min": 0}])
    assert "metrics check 'p99' needs exactly one rule" in message
    message = error_of(
        new_lookup, world, metrics=[{"name": "p99", "query": 'rate(x{service=~"$shadows"}[1m])', "max": 1}]
    )
    assert "unknown placeholder $shadows" in message


# --- a Prometheus shared by two clusters ------------------------------------------------------------


@pytest.fixture(scope="module")
def remote_cluster(shadowed: Any) -> Iterator[None]:
    """Traefik-like series for the same service names, scraped with cluster="remote": there the canary
    fails every request and gets 7 requests per second."""
    world = shadowed[0]
    started = time.time()
    lock = threading.Lock()

    def render() -> str:
        with lock:
            elapsed = time.time() - started
        shadow, main = world.metrics_label("canary"), world.metrics_label("stable")
        return (
            "# TYPE traefik_service_requests_total counter\n"
            f'traefik_service_requests_total{{service="{shadow}",code="500",method="GET",protocol="http"}} '
            f"{7 * elapsed:.1f}\n"
            f'traefik_service_requests_total{{service="{main}",code="200",method="GET",protocol="http"}} '
            f"{14 * elapsed:.1f}\n"
        )

    exporter = Exporter(prometheus_port_plus(REMOTE_CLUSTER_EXPORTER_OFFSET), render)
    exporter.start()
    time.sleep(WINDOW_SECONDS * 4 + 3)  # the remote cluster's history windows are full too
    yield
    exporter.stop()


def shadow_row(report: dict[str, Any], world: Any) -> dict[str, Any]:
    return next(row for row in report["services"] if row["service"] == world.metrics_label("canary"))


RATE_QUERY = 'sum(rate(traefik_service_requests_total{service=~"$shadow"}[$window]))'


def test_selector_judges_only_the_selected_cluster(new_lookup: Any, shadowed: Any, remote_cluster: None) -> None:
    world = shadowed[0]
    rate_check = [{"name": "shadow request rate", "query": RATE_QUERY, "min": 1}]

    local = check(new_lookup, world, prometheus_selector='cluster!="remote"', metrics=rate_check)
    assert local["verdict"] == "ok", local["summary"]
    assert shadow_row(local, world)["error_rate"] == 0
    assert 12 <= metric(local, "shadow request rate")["value"] <= 28, local["metrics"]
    assert 'cluster!="remote"' in metric(local, "shadow request rate")["query"]
    assert local["selector"] == 'cluster!="remote"'

    remote = check(new_lookup, world, prometheus_selector={"cluster": "remote"}, metrics=rate_check)
    assert remote["verdict"] == "anomalous", remote["summary"]
    assert shadow_row(remote, world)["error_rate"] == 1.0
    assert 5 <= metric(remote, "shadow request rate")["value"] <= 9, remote["metrics"]

    # Without a selector both clusters' series are summed: the remote failures leak into the verdict.
    mixed = check(new_lookup, world)
    assert 0.1 < shadow_row(mixed, world)["error_rate"] < 0.5, mixed["services"]
    assert mixed["verdict"] == "anomalous"


def test_bad_selector_is_refused_naming_the_option(new_lookup: Any, shadowed: Any) -> None:
    world = shadowed[0]
    message = error_of(new_lookup, world, prometheus_selector="cluster=prod-eu")
    assert "prometheus_selector" in message and "label matchers" in message


# --- the playbooks and the role's gate ---------------------------------------------------------------


def test_anomaly_check_playbook_prints_custom_checks(shadowed: Any) -> None:
    world = shadowed[0]
    result = run_anomaly_check(
        world,
        WINDOW,
        history_windows=3,
        min_requests=50,
        prometheus_timeout="20",
        prometheus_selector='cluster!="remote"',
        metrics='[{"name": "p99 latency", "query": "' + P99_QUERY.replace('"', '\\"') + '", "max": 0.0001}]',
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "custom check p99 latency (max 0.0001): ANOMALOUS" in result.stdout, result.stdout
    assert "ANOMALOUS" in result.stdout


def mirrors_of(world: Any) -> list[Any]:
    info = run_module("traefik_traffic_info", {"namespace": world.namespace})
    return [m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror"]


def test_launch_with_a_typo_in_a_custom_check_stops_before_any_change(seed_world: Callable[..., Any]) -> None:
    world = seed_world(app="promtypo")
    typo = [{"name": "retry storm", "query": "sum(rate(traefik_service_retries_total[$window])", "max": 1}]
    result = run_playbook("shadow_launch", launch_vars(world, bake_seconds=20, metrics=typo))
    assert result.returncode != 0
    assert "retry storm" in result.stdout and "cannot be evaluated" in result.stdout, result.stdout
    assert "parse error" in result.stdout
    assert mirrors_of(world) == []


def test_gate_rolls_back_on_an_anomalous_custom_check(
    seed_world: Callable[..., Any], traffic_for: Callable[[Any, float], SteadyTraffic]
) -> None:
    world = seed_world(app="promgate")
    traffic = traffic_for(world, 20.0)
    try:
        result = run_playbook(
            "shadow_launch",
            launch_vars(
                world,
                bake_seconds=40,
                fail_on_insufficient_data=False,
                metrics=[{"name": "p99 latency", "query": P99_QUERY, "max": 0.0001}],
            ),
            timeout=240,
        )
    finally:
        traffic.stop()
    assert result.returncode != 0, result.stdout
    assert "anomalous" in result.stdout and "p99 latency" in result.stdout, result.stdout
    assert mirrors_of(world) == []
    # The canary got real copies before the rollback: the check judged real traffic.
    assert world.backends["canary"].total > 0
