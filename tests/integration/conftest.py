"""Fixtures for integration tests against the local cluster (tests/cluster).

The session uses the cluster named by ``K8S_AUTH_KUBECONFIG`` when it is set (``eval
"$(tests/cluster/up)"`` sets it), otherwise it runs ``tests/cluster/up`` itself and exports the same
variables into ``os.environ`` for the rest of the session (so ansible-playbook runs see them too).
A cluster the session started is left running: ``tests/cluster/down`` stops it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CLUSTER_DIR = Path(__file__).resolve().parents[1] / "cluster"
if str(CLUSTER_DIR) not in sys.path:
    sys.path.insert(0, str(CLUSTER_DIR))

from dlcluster import traefik as traefik_api  # noqa: E402
from dlcluster.audit import AuditLog  # noqa: E402
from dlcluster.backends import BackendsClient  # noqa: E402
from dlcluster.kube import Kube  # noqa: E402
from dlcluster.rbac import bind_operator as _bind_operator  # noqa: E402
from dlcluster.testing import (  # noqa: E402
    CONTAINO_PORT_OFFSET,
    CONTAINO_STATE_DIR,
    DOWN,
    Cluster,
    cluster_from_env,
    run_up,
)
from dlcluster.traffic import TrafficResult, send  # noqa: E402
from dlcluster.world import SeedWorld, create_world, remove_world_backends  # noqa: E402
from shadow import COLLECTIONS_ROOT  # noqa: E402
from steady import SteadyTraffic  # noqa: E402
from userload import LoadBench, UserLoad  # noqa: E402

# --- the cluster -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.environ.get("K8S_AUTH_KUBECONFIG"):
        found = cluster_from_env(dict(os.environ))
        try:
            found.kube("admin").request("GET", "/readyz")
        except Exception as err:
            pytest.fail(
                f"the cluster of K8S_AUTH_KUBECONFIG is not reachable ({err}); start it with "
                f'eval "$(tests/cluster/up)" or unset K8S_AUTH_KUBECONFIG',
                pytrace=False,
            )
        yield found
        return
    env = run_up()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield cluster_from_env(env)


@pytest.fixture(scope="session")
def admin_kubeconfig(cluster: Cluster) -> Path:
    return cluster.kubeconfigs["admin"]


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: Cluster) -> Path:
    return cluster.kubeconfigs["shadow-operator"]


@pytest.fixture(scope="session")
def viewer_kubeconfig(cluster: Cluster) -> Path:
    return cluster.kubeconfigs["viewer"]


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> Kube:
    """Admin REST client (system:masters)."""
    return cluster.kube("admin")


def _namespace_name(prefix: str, hint: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-") or "x"
    return f"{prefix}-{stem}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def make_namespace(kube: Kube) -> Callable[[str], str]:
    """Create a fresh namespace ``t-<hint>-<random>`` and return its name.

    Namespaces are never deleted: without a controller-manager a deleted namespace stays
    Terminating forever, and `tests/cluster/down` wipes etcd anyway.
    """

    def make(hint: str = "ns") -> str:
        name = _namespace_name("t", hint)
        kube.ensure_namespace(name, labels={"darklaunch.test/owner": "pytest"})
        return name

    return make


@pytest.fixture(scope="module")
def namespace(request: pytest.FixtureRequest, make_namespace: Callable[[str], str]) -> str:
    """A namespace unique to the test module."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return make_namespace(module)


@pytest.fixture(scope="session")
def bind_operator(kube: Kube) -> Callable[[str], None]:
    """Install docs/rbac/shadow-operator-role.yaml in a namespace, bound to user shadow-operator."""
    return lambda ns: _bind_operator(kube, ns)


# --- backends, the seed world, traffic ----------------------------------------------------------


@pytest.fixture(scope="session")
def backends(cluster: Cluster) -> BackendsClient:
    if not cluster.backends_url:
        pytest.skip("this cluster runs no test backends")
    return BackendsClient(cluster.backends_url)


@pytest.fixture(scope="session")
def wait_for_router(cluster: Cluster) -> Callable[..., dict[str, Any]]:
    """``wait_for_router(namespace, ingressroute, timeout=30)`` -> Traefik's router entry (enabled)."""

    def wait(namespace: str, ingressroute: str, timeout: float = 30.0) -> dict[str, Any]:
        if not cluster.traefik_api_url:
            pytest.skip("this cluster runs no Traefik")
        prefix = f"{namespace}-{ingressroute}-"
        return traefik_api.wait_for_api_object(
            cluster.traefik_api_url,
            "routers",
            lambda r: (
                r.get("provider") == "kubernetescrd" and r["name"].startswith(prefix) and r.get("status") == "enabled"
            ),
            f"an enabled router for IngressRoute {namespace}/{ingressroute}",
            timeout,
        )

    return wait


@pytest.fixture(scope="session")
def wait_for_service(cluster: Cluster) -> Callable[..., dict[str, Any]]:
    """``wait_for_service(name, timeout=30, predicate=None)``; ``name`` is Traefik's service name,
    e.g. ``<ns>-<traefikservice>@kubernetescrd`` or ``<ns>-<svc>-<port>@kubernetescrd``."""

    def wait(
        name: str, timeout: float = 30.0, predicate: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        if not cluster.traefik_api_url:
            pytest.skip("this cluster runs no Traefik")
        return traefik_api.wait_for_api_object(
            cluster.traefik_api_url,
            "services",
            lambda s: s["name"] == name and (predicate is None or predicate(s)),
            f"service {name}",
            timeout,
        )

    return wait


@pytest.fixture(scope="session")
def traefik_api_get(cluster: Cluster) -> Callable[[str], Any]:
    """GET a path of Traefik's API, e.g. ``/api/http/services``."""

    def get(path: str) -> Any:
        if not cluster.traefik_api_url:
            pytest.skip("this cluster runs no Traefik")
        return traefik_api.api_get(cluster.traefik_api_url, path)

    return get


@pytest.fixture(scope="session")
def traffic(cluster: Cluster) -> Callable[..., TrafficResult]:
    """``traffic(host, n=1, path="/", method="GET", headers=None, body=None)``: dlcluster.traffic.send through
    TRAEFIK_URL; the result has ``bodies`` (who answered), ``statuses``, ``by_body`` and ``by_status``."""

    def go(host: str, *args: Any, **kwargs: Any) -> TrafficResult:
        if not cluster.traefik_url:
            pytest.skip("this cluster runs no Traefik")
        return send(cluster.traefik_url, host, *args, **kwargs)

    return go


@pytest.fixture
def traffic_for(cluster: Cluster) -> Iterator[Callable[[SeedWorld, float], SteadyTraffic]]:
    """``traffic_for(world, rate)``: steady user traffic at ``rate`` requests/s to the world's host through
    Traefik, counted at the client; stopped when the test ends (at the latest after 300 s)."""
    started: list[SteadyTraffic] = []

    def start(world: SeedWorld, rate: float) -> SteadyTraffic:
        if not cluster.traefik_url:
            pytest.skip("this cluster runs no Traefik")
        load = SteadyTraffic(cluster.traefik_url, world.host, rate, limit=300).start()
        started.append(load)
        return load

    yield start
    for load in started:
        load.stop()


@pytest.fixture
def user_load(cluster: Cluster) -> Iterator[Callable[[SeedWorld], UserLoad]]:
    """``user_load(world)``: at least 100 user requests/s to the world's host, sampled over time
    (userload.py); stopped when the test ends."""
    started: list[UserLoad] = []

    def start(world: SeedWorld) -> UserLoad:
        if not cluster.traefik_url:
            pytest.skip("this cluster runs no Traefik")
        load = UserLoad.start(cluster.traefik_url, world.host)
        started.append(load)
        return load

    yield start
    for load in started:
        load.stop()


def _wait_routable(
    cluster: Cluster, world: SeedWorld, wait_for_router: Callable[..., dict[str, Any]], timeout: float = 30.0
) -> None:
    wait_for_router(world.namespace, world.route, timeout)
    deadline = time.monotonic() + timeout
    # The API shows the router once the new configuration is built; one probe request proves the
    # handler is live (its count is reset below).
    while True:
        result = send(cluster.traefik_url or "", world.host, 1, path="/__darklaunch_probe")
        if result.statuses == [200]:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"route {world.host} still answers {result.statuses} after {timeout:.0f}s")
        time.sleep(0.1)
    world.reset_backends()


@pytest.fixture(scope="module")
def seed_world(
    cluster: Cluster,
    kube: Kube,
    backends: BackendsClient,
    namespace: str,
    wait_for_router: Callable[..., dict[str, Any]],
) -> Iterator[Callable[..., SeedWorld]]:
    """Factory: ``seed_world(app="api-service", route=None, namespace=None, host=None, weights=None,
    api_group="traefik.io", wait=True) -> SeedWorld``.

    Builds the seed's world (stable/canary/staging backends and Services, ``<route>-wrr`` 50/50,
    ``<route>`` IngressRoute with a middleware and an annotation) in the module's namespace by
    default, with fresh backends whose counters start at zero; waits until Traefik routes it.
    """
    worlds: list[SeedWorld] = []
    module_namespace = namespace

    def make(
        app: str = "api-service",
        route: str | None = None,
        namespace: str | None = None,
        host: str | None = None,
        weights: dict[str, int] | None = None,
        api_group: str = "traefik.io",
        wait: bool = True,
    ) -> SeedWorld:
        world = create_world(kube, backends, namespace or module_namespace, app, route, host, weights, api_group)
        worlds.append(world)
        if wait:
            _wait_routable(cluster, world, wait_for_router)
        return world

    yield make
    for world in worlds:
        remove_world_backends(backends, world)


@pytest.fixture(scope="module")
def httproute_world(
    cluster: Cluster, kube: Kube, backends: BackendsClient, namespace: str
) -> Iterator[Callable[..., SeedWorld]]:
    """Factory: the seed world on an HTTPRoute of the cluster's Gateway (Traefik 3.x; see
    dlcluster/gateway.py): ``/`` split by ``weights`` (50/50), ``/static`` to ``<app>-stable``.
    Waits until Traefik routes it; the backends' counters start at zero."""
    from dlcluster import gateway

    worlds: list[SeedWorld] = []

    def make(app: str = "api-service", weights: dict[str, int] | None = None, route: str | None = None) -> SeedWorld:
        if not gateway.serves(cluster.config, cluster.env):
            pytest.skip("this cluster runs no Gateway API provider (Traefik 2.x)")
        world = gateway.create_httproute_world(kube, backends, namespace, app, route, weights=weights)
        worlds.append(world)
        deadline = time.monotonic() + 30
        while send(cluster.traefik_url or "", world.host, 1, path="/__darklaunch_probe").statuses != [200]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"HTTPRoute {world.host} not routed after 30s")
            time.sleep(0.1)
        world.reset_backends()
        return world

    yield make
    for world in worlds:
        remove_world_backends(backends, world)


# --- Prometheus and the audit log ---------------------------------------------------------------


@pytest.fixture
def load_bench(
    kube: Kube,
    traefik_api_get: Callable[[str], Any],
    admin_kubeconfig: Path,
    tmp_path: Path,
    seed_world: Callable[..., SeedWorld],
    user_load: Callable[[SeedWorld], UserLoad],
) -> LoadBench:
    """The fixtures a test under user load works with, in one (userload.LoadBench)."""
    return LoadBench(kube, traefik_api_get, admin_kubeconfig, tmp_path, seed_world, user_load)


@pytest.fixture(scope="session")
def prometheus_query(cluster: Cluster) -> Callable[[str], list[dict[str, Any]]]:
    """Instant PromQL query -> ``data.result`` (a list of ``{"metric": {...}, "value": [t, "v"]}``)."""

    def query(promql: str) -> list[dict[str, Any]]:
        if not cluster.prometheus_url:
            pytest.skip("this cluster runs no Prometheus")
        url = cluster.prometheus_url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            payload = json.loads(resp.read())
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    return query


@pytest.fixture(scope="session")
def audit(cluster: Cluster) -> AuditLog:
    """``m = audit.mark()`` ... ``audit.writes_since(m, namespace=ns, user="shadow-operator")``."""
    if cluster.audit_log is None:
        pytest.skip("the audit log is only available on a cluster started by tests/cluster/up")
    return AuditLog(cluster.audit_log)


# --- a second control plane with only the traefik.containo.us CRDs --------------------------------


@pytest.fixture(scope="session")
def containo_cluster() -> Iterator[Cluster]:
    """A separate apiserver (state .state/cluster-containo, port offset 100) serving ONLY the
    traefik.containo.us CRDs of Traefik v2.11, without Traefik or Prometheus. Stopped at session end."""
    state = os.environ.get("DARKLAUNCH_CONTAINO_STATE_DIR") or str(CONTAINO_STATE_DIR)
    env = run_up(
        "--state-dir", state, "--port-offset", str(CONTAINO_PORT_OFFSET), "--crds", "containo-only", "--no-traefik"
    )
    try:
        yield cluster_from_env(env)
    finally:
        subprocess.run([str(DOWN), "--state-dir", state], capture_output=True, check=False)


# --- the lookup, as Ansible loads it ------------------------------------------------------------


@pytest.fixture(scope="session")
def new_lookup() -> Callable[[], Any]:
    """A fresh ``darklaunch.traefik.traffic`` lookup from Ansible's plugin loader, as a playbook gets it."""
    from ansible.plugins.loader import init_plugin_loader, lookup_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if AnsibleCollectionConfig.collection_finder is None:
        # Other tests import the collection as a plain package; Ansible's loader must own these names
        # (it attaches the collection's metadata to them), so drop the plain copies first.
        for name in [n for n in sys.modules if n == "ansible_collections" or n.startswith("ansible_collections.")]:
            del sys.modules[name]
        init_plugin_loader([str(COLLECTIONS_ROOT)])

    def new() -> Any:
        lookup = lookup_loader.get("darklaunch.traefik.traffic")
        assert lookup is not None, f"Ansible does not find darklaunch.traefik.traffic under {COLLECTIONS_ROOT}"
        return lookup

    new()
    return new
