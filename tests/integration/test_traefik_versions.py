"""The compatibility matrix: mirroring, the distribution and the anomaly check against several real
Traefik releases (dlcluster.config.TRAEFIK_MATRIX), each with the CRDs of its own release.

For every release an instance of its own runs (``tests/cluster/up --traefik-version X``: apiserver,
that Traefik, Prometheus, backends; stopped at the end), with the seed's world in it. The tests then
run in order on that world:

1. attach a mirror at 20% over the live 50/50 split; steady user traffic through that Traefik: every
   user response comes from stable, and the canary receives a copy of 20% of the requests (counted
   at the backends);
2. traefik_traffic_info reads the mirror, and the distribution says who serves users;
3. the anomaly check (10 s windows) says ``ok`` over identical backends;
4. it says ``anomalous`` and names the canary's error rate once the canary fails 20% of its copies,
   while users still only get 200s;
5. disabling restores the IngressRoute exactly as it was and the 50/50 split serves users again;
6. an attach with ``mirror_methods: [GET, HEAD]`` on top of the split copies GETs and HEADs only to staging
   (no POST, counted there), users all get 200 from the split, and the teardown restores the IngressRoute
   exactly.

Marked ``traefik_matrix``: the main pytest run deselects it (pyproject.toml addopts); ``bash
scripts/test matrix`` runs it once. docs/compatibility.md records what was run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from modrun import run_module
from reports import reports_in_a_row
from routes import attach_args, user_part
from steady import SteadyTraffic
from terminal import report_line

CLUSTER_DIR = Path(__file__).resolve().parents[1] / "cluster"
if str(CLUSTER_DIR) not in sys.path:
    sys.path.insert(0, str(CLUSTER_DIR))

from dlcluster import traefik as traefik_api  # noqa: E402
from dlcluster.backends import BackendsClient  # noqa: E402
from dlcluster.config import STATE_ROOT, TRAEFIK_MATRIX, TraefikRelease  # noqa: E402
from dlcluster.kube import Kube  # noqa: E402
from dlcluster.testing import DOWN, Cluster, cluster_from_env, run_up  # noqa: E402
from dlcluster.traffic import send  # noqa: E402
from dlcluster.world import SeedWorld, create_world, remove_world_backends  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.traefik_matrix]

API = "traefik.io/v1alpha1"
PRE_MIRROR = "darklaunch.traefik/pre-mirror-services"
REPO_ROOT = Path(__file__).resolve().parents[2]

# One instance at a time, on ports clear of the default instance (0) and the containo one (100); with
# DARKLAUNCH_MATRIX_JOBS=2, scripts/test runs a second half of the matrix beside it (offset 700 by default).
PORT_OFFSET = int(os.environ.get("DARKLAUNCH_MATRIX_PORT_OFFSET") or 300)
# Where the instances keep their state (cluster-traefik-<version> in it); with the offset, parallel sessions
# can each run their own matrix.
MATRIX_STATE_ROOT = Path(os.environ.get("DARKLAUNCH_MATRIX_STATE_ROOT") or STATE_ROOT)
# DARKLAUNCH_MATRIX_RELEASES="3.0.4,3.4.3" runs only those releases of the matrix (DARKLAUNCH_MATRIX_JOBS=2
# bash scripts/test matrix runs two such halves side by side, each on its own port offset); a name outside the
# matrix is an error.
_ONLY = [name.strip() for name in (os.environ.get("DARKLAUNCH_MATRIX_RELEASES") or "").split(",") if name.strip()]
_UNKNOWN = sorted(set(_ONLY) - {release.version for release in TRAEFIK_MATRIX})
if _UNKNOWN:
    raise ValueError(f"DARKLAUNCH_MATRIX_RELEASES names releases outside the matrix: {', '.join(_UNKNOWN)}")
RELEASES = tuple(release for release in TRAEFIK_MATRIX if not _ONLY or release.version in _ONLY)
MIRROR_PERCENT = 20
RATE = 40.0  # user requests per second: 400 per window at stable, 80 copies at the canary
WINDOW = "10s"
WINDOW_SECONDS = 10.0
HISTORY_WINDOWS = 3
MIN_REQUESTS = 50  # 20% of 400 requests per window is 80 copies
CANARY_ERROR_RATE = 0.2
TRAFFIC_LIMIT_SECONDS = 150.0  # a hard stop for the traffic threads, whatever happens to the tests


# --- one instance per release ----------------------------------------------------------------------


@dataclass
class Stand:
    """One release's instance, its seed world and what the ordered tests hand on to each other."""

    release: TraefikRelease
    cluster: Cluster
    kube: Kube
    world: SeedWorld
    started: float
    up_seconds: float
    ir_before: dict[str, Any] = field(default_factory=dict)
    traffic: SteadyTraffic | None = None
    done: set[str] = field(default_factory=set)
    auth: dict[str, str] = field(default_factory=dict)

    def require(self, step: str) -> None:
        if step not in self.done:
            pytest.skip(f"Traefik {self.release.version}: an earlier step ({step}) did not pass")


def _wait_routable(cluster: Cluster, world: SeedWorld, timeout: float = 30.0) -> None:
    assert cluster.traefik_api_url and cluster.traefik_url
    prefix = f"{world.namespace}-{world.route}-"
    traefik_api.wait_for_api_object(
        cluster.traefik_api_url,
        "routers",
        lambda r: r.get("provider") == "kubernetescrd" and r["name"].startswith(prefix) and r["status"] == "enabled",
        f"an enabled router for {world.route}",
        timeout,
    )
    deadline = time.monotonic() + timeout
    while send(cluster.traefik_url, world.host, 1, path="/__darklaunch_probe").statuses != [200]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{world.host} is not routed by Traefik after {timeout:.0f}s")
        time.sleep(0.1)
    world.reset_backends()


@pytest.fixture(scope="module", params=RELEASES, ids=lambda release: release.version)
def stand(request: pytest.FixtureRequest) -> Iterator[Stand]:
    release: TraefikRelease = request.param
    state_dir = MATRIX_STATE_ROOT / f"cluster-traefik-{release.version}"
    started = time.monotonic()
    args = ["--state-dir", str(state_dir), "--port-offset", str(PORT_OFFSET)]
    args += ["--traefik-version", release.version, "--traefik-crd-version", release.crd_version]
    world: SeedWorld | None = None
    backends: BackendsClient | None = None
    traffic: SteadyTraffic | None = None
    up_seconds = float("nan")
    try:
        cluster = cluster_from_env(run_up(*args))
        up_seconds = time.monotonic() - started
        kube = cluster.kube("admin")
        assert cluster.backends_url
        backends = BackendsClient(cluster.backends_url)
        namespace = f"t-versions-{release.version.replace('.', '-')}-{secrets.token_hex(3)}"
        world = create_world(kube, backends, namespace)
        _wait_routable(cluster, world)
        auth = {"kubeconfig": str(cluster.kubeconfigs["admin"])}
        current = Stand(release, cluster, kube, world, started, up_seconds, auth=auth)
        yield current
        traffic = current.traffic
    finally:
        if traffic is not None:
            traffic.stop()
        if world is not None and backends is not None:
            remove_world_backends(backends, world)
        subprocess.run([str(DOWN), "--state-dir", str(state_dir)], capture_output=True, check=False)
        report_line(
            request,
            f"[traefik_matrix] Traefik {release.version} (CRDs {release.crd_version}): "
            f"{time.monotonic() - started:.0f}s in all, instance up in "
            f"{up_seconds:.1f}s",
        )


def module_env(stand: Stand) -> dict[str, str]:
    """The instance's cluster and Prometheus for the module processes, whatever the caller exported."""
    return {"K8S_AUTH_KUBECONFIG": stand.auth["kubeconfig"], "PROMETHEUS_URL": stand.cluster.prometheus_url or ""}


def ingress_route(stand: Stand) -> dict[str, Any]:
    obj: dict[str, Any] = stand.kube.get(API, "IngressRoute", stand.world.route, stand.world.namespace)
    return obj


def wait_mirror_live(stand: Stand, timeout: float = 30.0, percent: int = MIRROR_PERCENT) -> None:
    """Until this Traefik routes the world's route through its mirror at ``percent``."""
    world, api_url = stand.world, stand.cluster.traefik_api_url or ""
    mirror = f"{world.namespace}-{world.route}-mirror@kubernetescrd"

    def live(router: dict[str, Any]) -> bool:
        return router["name"].startswith(f"{world.namespace}-{world.route}-") and router.get("service") in (
            mirror,
            mirror.split("@", maxsplit=1)[0],
        )

    traefik_api.wait_for_api_object(api_url, "routers", live, f"a router through {mirror}", timeout)
    service = traefik_api.wait_for_api_object(
        api_url, "services", lambda s: s["name"] == mirror and s.get("status") == "enabled", mirror, timeout
    )
    assert [m.get("percent") for m in service["mirroring"]["mirrors"]] == [percent], service


# --- the lookup, as Ansible loads it: conftest.py's ``new_lookup`` ------------------------------------


def route_anomalies(new_lookup: Callable[[], Any], stand: Stand) -> dict[str, Any]:
    result: list[dict[str, Any]] = new_lookup().run(
        ["anomalies"],
        variables={},
        route_name=stand.world.route,
        namespace=stand.world.namespace,
        sigma=2,
        window=WINDOW,
        history_windows=HISTORY_WINDOWS,
        min_requests=MIN_REQUESTS,
        prometheus_url=stand.cluster.prometheus_url,
        **stand.auth,
    )
    return result[0]


def brief(report: dict[str, Any]) -> str:
    rows = [
        {k: row.get(k) for k in ("service", "role", "requests", "error_rate", "checks")}
        for row in report.get("services", [])
    ]
    return f"{report.get('verdict')}: {report.get('summary')}\n{report.get('insufficient_data')}\n{rows}"


def canary_error_findings(report: dict[str, Any], world: SeedWorld) -> list[dict[str, Any]]:
    return [
        a
        for a in report["anomalies"]
        if a["service"] == world.metrics_label("canary")
        and a["metric"] == "error_rate"
        and a["check"] == "shadow_vs_main"
    ]


# --- the tests, in order on each release's world -----------------------------------------------------


def test_attach_at_20_percent_copies_real_traffic(stand: Stand) -> None:
    world = stand.world
    stand.ir_before = user_part(ingress_route(stand))
    result = run_module("traefik_mirror", {**attach_args(world, MIRROR_PERCENT), **stand.auth}, env=module_env(stand))
    assert not result.get("failed") and result["status"] == "active", result
    assert [(a["verb"], a["kind"]) for a in result["actions"]] == [
        ("create", "TraefikService"),
        ("patch", "IngressRoute"),
    ]
    assert ingress_route(stand)["spec"]["routes"][0]["services"] == [
        {"name": f"{world.route}-mirror", "kind": "TraefikService"}
    ]
    wait_mirror_live(stand)

    world.reset_backends()
    stand.traffic = SteadyTraffic(stand.cluster.traefik_url or "", world.host, RATE, TRAFFIC_LIMIT_SECONDS).start()
    # The anomaly check's first window fills meanwhile.
    deadline = time.monotonic() + 60
    while stand.traffic.sent < RATE * WINDOW_SECONDS and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # the copies of the last requests are sent after their responses
    counts = world.counts()
    traffic = stand.traffic
    assert traffic.failures == 0 and set(traffic.statuses) == {200}, traffic.statuses
    assert set(traffic.answered_by) == {world.backends["stable"].name}, "every user response must come from stable"
    assert traffic.sent >= RATE * WINDOW_SECONDS
    # Traefik copies deterministically (a running count); the counts are read a moment apart.
    assert abs(counts["canary"] - counts["stable"] * MIRROR_PERCENT / 100) <= 4, counts
    assert counts["staging"] == 0, counts
    stand.done.add("attach")


def test_traffic_info_reads_the_distribution(stand: Stand) -> None:
    stand.require("attach")
    world = stand.world
    info = run_module(
        "traefik_traffic_info",
        {"namespace": world.namespace, "route_name": world.route, **stand.auth},
        env=module_env(stand),
    )
    assert not info.get("failed"), info
    dist = info["distribution"]
    assert dist["traffic_split"]["type"] == "mirror"
    assert dist["target"]["name"] == f"{world.route}-mirror"
    assert [(s["name"], s["user_share_percent"]) for s in dist["main_sink"]] == [(world.service("stable"), 100)]
    assert [(s["name"], s["percent"]) for s in dist["shadow"]] == [(world.service("canary"), MIRROR_PERCENT)]
    mirror = next(m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror")
    assert mirror["active"] is True and mirror["percent"] == MIRROR_PERCENT
    assert {r["ingress_route"] for r in mirror["referenced_by"]} == {world.route}


def test_anomaly_check_is_ok_over_identical_backends(new_lookup: Callable[[], Any], stand: Stand) -> None:
    stand.require("attach")
    world, traffic = stand.world, stand.traffic
    assert traffic is not None
    # A whole window of mirrored traffic, scraped.
    time.sleep(max(0.0, WINDOW_SECONDS + 3 - traffic.sent / RATE))
    reports = reports_in_a_row(partial(route_anomalies, new_lookup, stand), 3)
    for report in reports:
        assert report["verdict"] == "ok", brief(report)
        rows = {row["service"]: row for row in report["services"]}
        canary = rows[world.metrics_label("canary")]
        assert canary["role"] == "shadow" and canary["checks"]["shadow_vs_main"] == "ok", brief(report)
        assert rows[world.metrics_label("stable")]["role"] == "main", brief(report)
        assert canary["requests"] >= MIN_REQUESTS, brief(report)
    stand.done.add("ok")


def test_anomaly_check_names_a_failing_canary(new_lookup: Callable[[], Any], stand: Stand) -> None:
    stand.require("ok")
    world, traffic = stand.world, stand.traffic
    assert traffic is not None
    canary = world.backends["canary"]
    canary.set_knobs(error_rate=CANARY_ERROR_RATE)
    try:
        deadline = time.monotonic() + 3 * WINDOW_SECONDS
        while True:
            report = route_anomalies(new_lookup, stand)
            findings = canary_error_findings(report, world)
            # Until a whole window has the failing canary, the measured rate is diluted.
            if findings and findings[0]["value"] >= CANARY_ERROR_RATE - 0.05:
                break
            assert time.monotonic() < deadline, f"no full error alarm for the canary:\n{brief(report)}"
            time.sleep(1.0)
    finally:
        canary.set_knobs(error_rate=0)
    assert report["verdict"] == "anomalous", brief(report)
    assert findings[0]["value"] == pytest.approx(CANARY_ERROR_RATE, abs=0.05), brief(report)
    assert findings[0]["baseline"] == 0.0 and findings[0]["role"] == "shadow", brief(report)
    assert world.service("canary") in report["summary"], brief(report)
    assert not [a for a in report["anomalies"] if a["service"] == world.metrics_label("stable")], brief(report)
    # The canary only got copies: users never saw its errors.
    assert traffic.failures == 0 and set(traffic.statuses) == {200}, traffic.statuses
    assert set(traffic.answered_by) == {world.backends["stable"].name}


def test_disable_restores_the_route_exactly(stand: Stand) -> None:
    stand.require("attach")
    world = stand.world
    if stand.traffic is not None:
        stand.traffic.stop()
    result = run_module(
        "traefik_mirror",
        {"route_name": world.route, "namespace": world.namespace, "state": "absent", **stand.auth},
        env=module_env(stand),
    )
    assert not result.get("failed") and result["status"] == "absent", result
    assert [(a["verb"], a["kind"]) for a in result["actions"]] == [
        ("patch", "IngressRoute"),
        ("delete", "TraefikService"),
    ]
    after = user_part(ingress_route(stand))
    assert after == stand.ir_before, "disable must give back exactly the route the user had"
    assert PRE_MIRROR not in after["annotations"]
    assert stand.kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace) is None

    # This Traefik serves the 50/50 split again and copies nothing.
    api_url = stand.cluster.traefik_api_url or ""
    mirror = f"{world.namespace}-{world.route}-mirror@kubernetescrd"
    wrr = f"{world.namespace}-{world.wrr}"
    traefik_api.wait_for_api_object(
        api_url,
        "routers",
        lambda r: (
            r["name"].startswith(f"{world.namespace}-{world.route}-")
            and r.get("service") in (wrr, f"{wrr}@kubernetescrd")
        ),
        f"the router of {world.route} back on {world.wrr}",
    )
    deadline = time.monotonic() + 15
    while any(s["name"] == mirror for s in traefik_api.api_get(api_url, "/api/http/services?per_page=1000")):
        assert time.monotonic() < deadline, f"Traefik still has {mirror}"
        time.sleep(0.2)
    world.reset_backends()
    answered = send(stand.cluster.traefik_url or "", world.host, 100)
    assert answered.by_status == {200: 100}
    by_body = answered.by_body
    assert set(by_body) == {world.backends["stable"].name, world.backends["canary"].name}, by_body
    assert all(45 <= count <= 55 for count in by_body.values()), by_body
    assert world.counts()["staging"] == 0
    stand.done.add("restored")


def test_mirror_methods_copies_only_safe_requests(stand: Stand) -> None:
    """mirror_methods [GET, HEAD] on this release: the added route (rule in syntax both v2 and v3 parse) sends
    the GETs and HEADs through the mirror, the route keeps serving POSTs straight from its services; every user
    is answered 200 by the split's backends, the shadow gets no POST; the teardown gives the IngressRoute back
    exactly."""
    stand.require("restored")
    world, url = stand.world, stand.cluster.traefik_url or ""
    before = user_part(ingress_route(stand))
    # On top of the live 50/50 split (its main is the weighted service, so the split stays for every request)
    # with staging, which no user reaches, as the shadow: what staging gets is copies only. No weight changes,
    # so no extra reload to wait for.
    args = {
        **attach_args(world, 100, shadow_role="staging"),
        "main_kind": "TraefikService",
        "main_service": world.wrr,
        "mirror_methods": ["GET", "HEAD"],
        **stand.auth,
    }
    result = run_module("traefik_mirror", args, env=module_env(stand))
    assert not result.get("failed") and result["status"] == "active", result
    routes = ingress_route(stand)["spec"]["routes"]
    assert routes[0] == before["spec"]["routes"][0] and len(routes) == len(before["spec"]["routes"]) + 1, routes
    wait_mirror_live(stand, percent=100)

    world.reset_backends()
    gets = send(url, world.host, 20)
    posts = send(url, world.host, 20, method="POST", body=b'{"order": 1}')
    heads = send(url, world.host, 10, method="HEAD")
    shadow = world.backends["staging"]
    deadline = time.monotonic() + 10
    while shadow.counters()["total"] < 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # a late unwanted copy is counted too
    copies = shadow.counters()["by_method_path"]
    users = {role: world.backends[role].counters()["by_method_path"] for role in ("stable", "canary")}
    print(f"\n[traefik_matrix {stand.release.version}] mirror_methods: copies {copies}; users' answers {users}")
    assert gets.by_status == {200: 20} and posts.by_status == {200: 20} and heads.by_status == {200: 10}
    assert set(gets.by_body) | set(posts.by_body) <= {world.backends[r].name for r in ("stable", "canary")}
    assert copies == {"GET /": 20, "HEAD /": 10}, "only GETs and HEADs are copied, no POST"
    answered = {method: sum(users[role].get(f"{method} /", 0) for role in users) for method in ("GET", "POST", "HEAD")}
    assert answered == {"GET": 20, "POST": 20, "HEAD": 10}, users

    removed = run_module(
        "traefik_mirror",
        {"route_name": world.route, "namespace": world.namespace, "state": "absent", **stand.auth},
        env=module_env(stand),
    )
    assert not removed.get("failed") and removed["status"] == "absent", removed
    assert user_part(ingress_route(stand)) == before, "the teardown gives back exactly the route the user had"
    assert stand.kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace) is None
