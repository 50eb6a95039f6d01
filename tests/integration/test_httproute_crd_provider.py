"""traefik_mirror on an HTTPRoute where the mirror TraefikService cannot resolve.

1. An API server without traefikservices.traefik.io (the containo-only control plane): refused before any write,
   the message naming the CRD and Traefik's CRD provider.
2. A Traefik running its Gateway provider only (``tests/cluster/up --no-crd-provider``, its own instance): the
   CRDs are served, so the attach is written; Traefik then reports the rule's backendRef to the TraefikService
   unresolved (ResolvedRefs=False, InvalidKind) and the module puts the rule back, deletes the TraefikServices
   it created and fails. The route is restored exactly, and users are answered by the split again.
"""

from __future__ import annotations

import copy
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dlcluster import gateway
from dlcluster.backends import BackendsClient
from dlcluster.kube import KubeError
from dlcluster.testing import DOWN, Cluster, cluster_from_env, run_up
from dlcluster.traffic import send
from dlcluster.world import SeedWorld, remove_world_backends
from modrun import run_module
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GW = f"{gateway.GROUP}/v1"
# Its own instance, clear of the others' default offsets (0, 100-400, 500/600 for bench, 700).
NOCRD_PORT_OFFSET = int(os.environ.get("DARKLAUNCH_NOCRD_PORT_OFFSET") or 800)
NOCRD_STATE_DIR = os.environ.get("DARKLAUNCH_NOCRD_STATE_DIR") or str(REPO / ".state" / "cluster-nocrd")


def test_no_traefikservice_crd_is_refused_before_any_write(containo_cluster: Cluster) -> None:
    kube = containo_cluster.kube()
    namespace = "t-hr-nocrd"
    kube.ensure_namespace(namespace)
    auth = {"kubeconfig": str(containo_cluster.kubeconfigs["admin"])}
    base = {"route_name": "web", "namespace": namespace, "route_kind": "HTTPRoute", "mirror_percent": 20, **auth}
    refused = run_module("traefik_mirror", {**base, "attach_to_ingress": True})
    assert refused.get("failed") is True, refused
    assert "TraefikService CRD (traefikservices.traefik.io) is not served" in refused["msg"], refused["msg"]
    assert "--providers.kubernetescrd" in refused["msg"] and "Nothing was changed" in refused["msg"]
    legacy = run_module("traefik_mirror", {**base, "api_group": "traefik.containo.us"})
    assert legacy.get("failed") is True and legacy.get("field") == "api_group", legacy
    assert "only in the traefik.io group" in legacy["msg"]
    # Nothing written: the namespace holds no TraefikService (a fresh apiserver may still be filling its cache).
    deadline = time.monotonic() + 20
    while True:
        try:
            assert kube.list("traefik.containo.us/v1alpha1", "TraefikService", namespace) == []
            break
        except KubeError as error:
            if error.status != 429 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def nocrd_cluster() -> Iterator[Cluster]:
    env = run_up(
        "--state-dir", NOCRD_STATE_DIR, "--port-offset", str(NOCRD_PORT_OFFSET), "--no-crd-provider", "--no-prometheus"
    )
    try:
        yield cluster_from_env(env)
    finally:
        subprocess.run([str(DOWN), "--state-dir", NOCRD_STATE_DIR], capture_output=True, check=False)


@pytest.fixture
def nocrd_world(nocrd_cluster: Cluster) -> Iterator[SeedWorld]:
    backends = BackendsClient(nocrd_cluster.backends_url or "")
    world = gateway.create_httproute_world(nocrd_cluster.kube(), backends, "t-hr-nocrd", "nocrd")
    deadline = time.monotonic() + 30
    while send(nocrd_cluster.traefik_url or "", world.host, 1, path="/").statuses != [200]:
        assert time.monotonic() < deadline, f"HTTPRoute {world.host} not routed after 30s"
        time.sleep(0.2)
    yield world
    remove_world_backends(backends, world)


def _user_part(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return copy.deepcopy({"labels": meta.get("labels"), "annotations": meta.get("annotations"), "spec": obj["spec"]})


def test_an_unresolved_mirror_is_rolled_back(nocrd_cluster: Cluster, nocrd_world: SeedWorld) -> None:
    kube, world = nocrd_cluster.kube(), nocrd_world
    original = _user_part(kube.get(GW, "HTTPRoute", world.route, world.namespace) or {})
    users = SteadyTraffic(nocrd_cluster.traefik_url or "", world.host, 20.0, 60.0).start()
    started = time.monotonic()
    try:
        time.sleep(1)
        failed = run_module(
            "traefik_mirror",
            {
                "route_name": world.route,
                "namespace": world.namespace,
                "route_kind": "HTTPRoute",
                "mirror_service": world.service("staging"),
                "mirror_percent": 20,
                "rule_index": 1,
                "attach_to_ingress": True,
                "propagation_seconds": 1,
                "kubeconfig": str(nocrd_cluster.kubeconfigs["admin"]),
            },
        )
        took = time.monotonic() - started - 1
        errors_during_run = users.errors()
        time.sleep(2)  # the restored rule serves users again
    finally:
        users.stop()
    assert failed.get("failed") is True, failed
    assert "Traefik does not resolve HTTPRoute" in failed["msg"] and "InvalidKind" in failed["msg"], failed["msg"]
    assert "put back on its original backendRefs" in failed["msg"]
    assert _user_part(kube.get(GW, "HTTPRoute", world.route, world.namespace) or {}) == original
    for name in (f"{world.route}-mirror", f"{world.route}-split"):
        assert kube.get("traefik.io/v1alpha1", "TraefikService", name, world.namespace) is None
    # Users were only exposed while Traefik served the unresolved rule; after the rollback the split answers.
    assert users.errors() == errors_during_run, (users.statuses, errors_during_run)
    assert set(users.answered_by) >= {world.service("stable"), world.service("canary")}, users.answered_by
    print(f"\n[nocrd] rolled back in {took:.1f}s; {errors_during_run} of {users.sent} user requests failed meanwhile")
