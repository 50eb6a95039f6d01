# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One named route is read by name: the same answer for that route as the namespace listing gives, at a number
of requests that does not depend on what else the namespace holds. An in-memory API counts every request."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    index_by_key,
    parse_ingress_route,
    parse_kube_service,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import (
    read_distribution,
    read_route_listing,
    read_traffic,
)
from ansible_collections.darklaunch.traefik.tests.unit.plugins.module_utils.seed_objects import (
    NS,
    ROUTE,
    load,
)

NOW = datetime(2025, 11, 27, 14, 5, tzinfo=timezone.utc)
API = "traefik.io/v1alpha1"
FORBIDDEN = DarklaunchError("forbidden", details={"api_status": 403})


def _ts(name: str, spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TraefikService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _service(name: str, namespace: str = NS) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"port": 80}]},
    }


def _ingress_route(name: str, services: list[dict[str, Any]]) -> dict[str, Any]:
    route = {"kind": "Rule", "match": f"Host(`{name}.test`)", "services": services}
    return {
        "apiVersion": API,
        "kind": "IngressRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"routes": [route]},
    }


class FakeKube:
    """Namespaced objects by (kind, namespace, name); ``forbidden``: (verb, kind) pairs answered with a 403."""

    connection = CommandConnection()  # the rollback command names no cluster

    def __init__(self, objects: list[dict[str, Any]], forbidden: set[tuple[str, str]] = frozenset()) -> None:
        self.objects = {(o["kind"], o["metadata"].get("namespace", NS), o["metadata"]["name"]): o for o in objects}
        self.forbidden = set(forbidden)
        self.reads: list[str] = []

    def traefik_group(self, requested: str | None = None) -> str:
        return requested or "traefik.io"

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.reads.append(f"get {kind} {namespace}/{name}")
        if ("get", kind) in self.forbidden:
            raise FORBIDDEN
        found = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(found) if found else None

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        self.reads.append(f"list {kind} {namespace}")
        if ("list", kind) in self.forbidden:
            raise FORBIDDEN
        return [copy.deepcopy(o) for (k, ns, _n), o in sorted(self.objects.items()) if k == kind and ns == namespace]

    def namespace_exists(self, name: str) -> bool:
        self.reads.append(f"get Namespace {name}")
        return any(ns == name for _k, ns, _n in self.objects)


def launch_world() -> list[dict[str, Any]]:
    """The route on a mirror over its WRR (route 0), a Service directly (route 1), a TraefikService in another
    namespace (route 2); a shadow Service that is missing; a launch recorded on the mirror."""
    route = load("ir-to-mirror")
    route["spec"]["routes"].append(
        {
            "kind": "Rule",
            "match": "Host(`edge.test`)",
            "services": [{"name": "edge", "namespace": "platform", "kind": "TraefikService"}],
        }
    )
    mirror = load("ts-mirror-over-wrr")
    mirror["metadata"]["annotations"] = load("ts-mirror-20-launch")["metadata"]["annotations"]
    return [
        route,
        mirror,
        load("ts-wrr-50-50"),
        load("svc-api-service-stable"),
        load("svc-api-service-canary"),
        _ts("edge", {"weighted": {"services": [{"name": "edge-backend", "port": 80}]}}, namespace="platform"),
        _service("edge-backend", namespace="platform"),
    ]


def crowd(count: int) -> list[dict[str, Any]]:
    """Unrelated objects: mirrors, weighted splits, routes and Services that the named route never reaches."""
    objects: list[dict[str, Any]] = []
    for i in range(count):
        objects.append(_service(f"filler-{i}"))
        objects.append(_ts(f"filler-wrr-{i}", {"weighted": {"services": [{"name": f"filler-{i}", "port": 80}]}}))
        mirroring = {"name": f"filler-{i}", "port": 80, "mirrors": [{"name": f"filler-{i}", "port": 80, "percent": 5}]}
        objects.append(_ts(f"filler-mirror-{i}", {"mirroring": mirroring}))
        objects.append(_ingress_route(f"filler-{i}", [{"name": f"filler-wrr-{i}", "kind": "TraefikService"}]))
    return objects


def todays_answer(kube: FakeKube, route_name: str, reached: set[str]) -> dict[str, Any]:
    """What traefik_traffic_info answered for a route before it read by name: the namespace listing, with the
    distribution resolved from every TraefikService of the namespace (plus the foreign ones the route reaches)
    and every Service of the namespace - kept to the entries of the objects the route reaches."""
    listing = read_traffic(kube, namespace=NS, now=NOW)
    every_ts = index_by_key(
        parse_traefik_service(o) for (k, _ns, _n), o in kube.objects.items() if k == "TraefikService"
    )
    services = index_by_key(
        parse_kube_service(o) for (k, ns, _n), o in kube.objects.items() if k == "Service" and ns == NS
    )
    route = parse_ingress_route(kube.objects[("IngressRoute", NS, route_name)])
    mirrors = [m for m in listing["mirrors"] if m["name"] in reached]
    return {
        "api_group": listing["api_group"],
        "namespace": NS,
        "mirrors": mirrors,
        "abandoned_launches": [a for a in listing["abandoned_launches"] if a["mirror"] in reached],
        "weighted": [w for w in listing["weighted"] if w["name"] in reached],
        "ingress_routes": [r for r in listing["ingress_routes"] if r["name"] == route_name],
        "distribution": resolve_route(route, every_ts, services).to_dict(),
    }


@pytest.mark.parametrize("fillers", [0, 40], ids=["empty", "crowded"])
def test_a_named_route_gives_todays_answer_for_that_route(fillers: int) -> None:
    kube = FakeKube(launch_world() + crowd(fillers))
    expected = todays_answer(kube, ROUTE, {"api-service-route-mirror", "api-service-route-wrr"})
    kube.reads.clear()

    answer = read_traffic(kube, namespace=NS, route_name=ROUTE, now=NOW)

    assert answer == expected
    assert [m["name"] for m in answer["mirrors"]] == ["api-service-route-mirror"]
    assert answer["mirrors"][0]["launch"] is not None and answer["mirrors"][0]["active"]
    # The shadow Service is missing and edge-backend lives in another namespace: both reported, as before.
    assert len(answer["distribution"]["broken"]) == 2, answer["distribution"]["broken"]


def test_a_named_route_costs_the_same_reads_in_a_crowded_namespace() -> None:
    counts = []
    for fillers in (0, 200):
        kube = FakeKube(launch_world() + crowd(fillers))
        read_traffic(kube, namespace=NS, route_name=ROUTE, now=NOW)
        counts.append(sorted(kube.reads))
        assert not [read for read in kube.reads if read.startswith("list ")], kube.reads
    assert counts[0] == counts[1]
    # The IngressRoute, the mirror, the WRR, the foreign TraefikService and the route namespace's three
    # Services (the missing shadow included), each once.
    assert counts[0] == sorted(
        [
            f"get IngressRoute {NS}/{ROUTE}",
            f"get TraefikService {NS}/api-service-route-mirror",
            f"get TraefikService {NS}/api-service-route-wrr",
            "get TraefikService platform/edge",
            f"get Service {NS}/api-service-stable",
            f"get Service {NS}/api-service-canary",
            f"get Service {NS}/api-service-staging",
        ]
    )


def test_the_default_mirror_is_reported_while_nothing_routes_through_it() -> None:
    # enable without attach: the route still goes to the WRR, the launch's mirror is inactive.
    objects = [load("ir-to-wrr"), load("ts-wrr-50-50"), load("ts-mirror-20-launch")]
    objects += [load("svc-api-service-stable"), load("svc-api-service-canary"), *crowd(10)]
    kube = FakeKube(objects)
    expected = todays_answer(kube, ROUTE, {"api-service-route-mirror", "api-service-route-wrr"})

    answer = read_traffic(kube, namespace=NS, route_name=ROUTE, now=NOW)

    assert answer == expected
    (mirror,) = answer["mirrors"]
    assert (mirror["name"], mirror["active"], mirror["referenced_by"]) == ("api-service-route-mirror", False, [])
    assert [w["name"] for w in answer["weighted"]] == ["api-service-route-wrr"]
    assert answer["weighted"][0]["active"]


def test_without_get_on_traefikservices_one_listing_gives_the_same_answer() -> None:
    # The shipped viewer ClusterRole may list TraefikServices but not get them.
    objects = launch_world() + crowd(5)
    expected = read_traffic(FakeKube(objects), namespace=NS, route_name=ROUTE, now=NOW)
    kube = FakeKube(objects, forbidden={("get", "TraefikService"), ("get", "Service"), ("list", "Service")})

    answer = read_traffic(kube, namespace=NS, route_name=ROUTE, now=NOW)

    assert {key: value for key, value in answer.items() if key != "distribution"} == {
        key: value for key, value in expected.items() if key != "distribution"
    }
    assert sum(1 for read in kube.reads if read.startswith("list TraefikService")) == 2  # production, platform
    # Without the right to read Services the split is still resolved, without Service checks.
    assert answer["distribution"]["main_sink"] == expected["distribution"]["main_sink"]
    assert sum(1 for read in kube.reads if read.startswith("get Service")) == 1


def test_a_missing_route_or_namespace_is_named() -> None:
    kube = FakeKube(launch_world())
    with pytest.raises(DarklaunchError) as caught:
        read_traffic(kube, namespace=NS, route_name="nope", now=NOW)
    assert caught.value.field == "route_name"
    with pytest.raises(DarklaunchError) as caught:
        read_traffic(kube, namespace="typo", route_name=ROUTE, now=NOW)
    assert caught.value.field == "namespace"


def test_the_lookup_reads_one_route_by_name_too() -> None:
    kube = FakeKube(launch_world() + crowd(20))
    full = read_traffic(kube, namespace=NS, route_name=ROUTE, now=NOW)
    kube.reads.clear()

    listing = read_route_listing(kube, namespace=NS, route_name=ROUTE, now=NOW)
    distribution = read_distribution(kube, namespace=NS, route_name=ROUTE)

    assert listing == {key: value for key, value in full.items() if key != "distribution"}
    assert distribution.to_dict() == full["distribution"]
    assert not [read for read in kube.reads if read.startswith("list ")], kube.reads
    assert not [read for read in kube.reads if "filler" in read], kube.reads
