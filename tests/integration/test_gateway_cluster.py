"""The local cluster's Gateway API: CRDs of the release's gateway-api, Traefik's Gateway provider beside the
CRD provider, the harness Gateway, and an HTTPRoute's weighted split served through it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dlcluster import gateway
from dlcluster.config import InstanceConfig
from dlcluster.kube import Kube
from dlcluster.testing import Cluster
from dlcluster.traffic import send
from dlcluster.world import SeedWorld

pytestmark = pytest.mark.integration


def _config(cluster: Cluster) -> InstanceConfig:
    if cluster.config is None or not gateway.enabled(cluster.config):
        pytest.skip("this cluster runs no Gateway API provider (Traefik 2.x, or not started by tests/cluster/up)")
    return cluster.config


def test_up_prints_the_gateway(cluster: Cluster) -> None:
    _config(cluster)
    assert cluster.env["DARKLAUNCH_GATEWAY_NAME"] == gateway.GATEWAY_NAME
    assert cluster.env["DARKLAUNCH_GATEWAY_NAMESPACE"] == gateway.GATEWAY_NAMESPACE


def test_standard_channel_crds_of_the_release(cluster: Cluster, kube: Kube) -> None:
    cfg = _config(cluster)
    version = gateway.release_gateway_api_version(cfg.crd_version)
    expected = {doc["metadata"]["name"] for doc in gateway.crd_documents(version)}
    assert "httproutes.gateway.networking.k8s.io" in expected
    crds = {
        crd["metadata"]["name"]: crd
        for crd in kube.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        if crd["spec"]["group"] == gateway.GROUP
    }
    assert set(crds) == expected
    for crd in crds.values():
        annotations = crd["metadata"].get("annotations") or {}
        assert annotations.get("gateway.networking.k8s.io/bundle-version") == version
        assert annotations.get("gateway.networking.k8s.io/channel") == "standard"


def test_traefik_accepted_the_gateway_on_the_web_entry_point(cluster: Cluster, kube: Kube) -> None:
    cfg = _config(cluster)
    klass = kube.get(f"{gateway.GROUP}/v1", "GatewayClass", gateway.CLASS_NAME)
    assert klass and klass["spec"]["controllerName"] == gateway.CONTROLLER_NAME
    assert any(c["type"] == "Accepted" and c["status"] == "True" for c in klass["status"]["conditions"])
    gw = kube.get(f"{gateway.GROUP}/v1", "Gateway", gateway.GATEWAY_NAME, gateway.GATEWAY_NAMESPACE)
    assert gw and gw["spec"]["listeners"][0]["port"] == cfg.ports["traefik_web"]
    assert any(c["type"] == "Accepted" and c["status"] == "True" for c in gw["status"]["conditions"])


def test_httproute_split_and_second_rule_are_served(
    cluster: Cluster, httproute_world: Callable[..., SeedWorld]
) -> None:
    world = httproute_world(app="gwsplit")
    split = send(cluster.traefik_url or "", world.host, 200, path="/api")
    static = send(cluster.traefik_url or "", world.host, 20, path="/static/logo")
    assert split.statuses == [200] * 200
    assert static.statuses == [200] * 20
    counts = world.counts()
    # Traefik's weighted round robin is exact over a full cycle: 100 each, plus the /static rule's 20.
    assert counts == {"stable": 120, "canary": 100, "staging": 0}, counts
