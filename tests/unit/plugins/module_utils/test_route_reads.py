# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one walk of what a route reaches (used by the traffic view and traefik_mirror): what it reads, what it
never reads, and the listing it falls back to when TraefikServices may be listed but not read by name."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import ServiceRef, parse_traefik_service
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_reads import RouteReads, require_namespace

NS = "production"
FORBIDDEN = DarklaunchError("forbidden", details={"api_status": 403})


def _ts(name: str, children: list[dict[str, Any]], namespace: str = NS) -> dict[str, Any]:
    return {
        "kind": "TraefikService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"weighted": {"services": children}},
    }


def _svc(name: str, namespace: str = NS) -> dict[str, Any]:
    return {"kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": {"ports": [{"port": 80}]}}


class Api:
    """Objects by (kind, namespace, name); every request is recorded; ``forbidden`` (verb, kind) answer 403."""

    def __init__(self, objects: list[dict[str, Any]], forbidden: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.objects = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
        self.forbidden = forbidden
        self.requests: list[str] = []

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.requests.append(f"get {kind} {namespace}/{name}")
        if ("get", kind) in self.forbidden:
            raise FORBIDDEN
        found = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(found) if found else None

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        self.requests.append(f"list {kind} {namespace}")
        if ("list", kind) in self.forbidden:
            raise FORBIDDEN
        return [copy.deepcopy(o) for (k, ns, _n), o in sorted(self.objects.items()) if k == kind and ns == namespace]

    def namespace_exists(self, name: str) -> bool:
        self.requests.append(f"get Namespace {name}")
        return any(ns == name for _k, ns, _n in self.objects)


def _ref(name: str, namespace: str = NS, kind: str = "TraefikService", port: int | None = None) -> ServiceRef:
    return ServiceRef(name=name, kind=kind, namespace=namespace, port=port)


# The route reaches a WRR over a Service, a TraefikService of another namespace, a Traefik-internal service and a
# missing TraefikService; the WRR loops back to itself.
WORLD = [
    _ts(
        "wrr",
        [
            {"name": "stable", "port": 80},
            {"name": "edge", "namespace": "platform", "kind": "TraefikService"},
            {"name": "api@internal", "kind": "TraefikService"},
            {"name": "gone", "kind": "TraefikService"},
            {"name": "wrr", "kind": "TraefikService"},
        ],
    ),
    _ts("edge", [{"name": "edge-backend", "port": 80}], namespace="platform"),
    _ts("unrelated", []),
    _svc("stable"),
]


@pytest.mark.parametrize("forbidden", [frozenset(), frozenset({("get", "TraefikService")})], ids=["get", "list"])
def test_it_reads_what_the_route_reaches_once_and_the_same_with_a_listing(forbidden: frozenset[Any]) -> None:
    api = Api(WORLD, forbidden)
    reads = RouteReads(api)

    reached = reads.reachable([_ref("wrr"), _ref("wrr")])
    again = reads.reachable([_ref("wrr")])

    assert sorted(reached) == [("platform", "edge"), (NS, "wrr")]
    assert again == reached
    expected = (
        [f"get TraefikService {NS}/gone", f"get TraefikService {NS}/wrr", "get TraefikService platform/edge"]
        if not forbidden
        # Forbidden by name: the first read of each namespace fails and that namespace is listed once instead.
        else [
            f"get TraefikService {NS}/wrr",
            f"list TraefikService {NS}",
            "get TraefikService platform/edge",
            "list TraefikService platform",
        ]
    )
    assert sorted(api.requests) == sorted(expected)
    assert reads.requests == len(api.requests)


def test_provider_references_and_impossible_names_are_never_read() -> None:
    api = Api(WORLD)
    reads = RouteReads(api)

    assert reads.reachable([_ref("api@internal"), _ref("noop@file"), _ref("Not_A_Name"), _ref("x", "Bad_NS")]) == {}
    assert reads.services(NS, [_ref("web@docker", kind="Service", port=80)], {}) == {}
    assert api.requests == []


def test_a_refused_listing_is_the_users_error() -> None:
    api = Api(WORLD, frozenset({("get", "TraefikService"), ("list", "TraefikService")}))

    with pytest.raises(DarklaunchError) as caught:
        RouteReads(api).reachable([_ref("wrr")])

    assert caught.value.details["api_status"] == 403


def test_namespaces_bound_the_walk_and_services_are_read_in_the_given_namespace() -> None:
    api = Api(WORLD)
    reads = RouteReads(api, namespaces=(NS,))

    reached = reads.reachable([_ref("wrr")])
    services = reads.services(NS, [_ref("stable", kind="Service", port=80)], reached)

    assert sorted(reached) == [(NS, "wrr")]
    assert sorted(services) == [(NS, "stable")]
    assert not [request for request in api.requests if "platform" in request], api.requests


def test_a_planned_object_is_followed_instead_of_the_clusters() -> None:
    api = Api(WORLD)
    reads = RouteReads(api)
    planned = parse_traefik_service(_ts("wrr", [{"name": "unrelated", "kind": "TraefikService"}]))

    reached = reads.reachable([_ref("wrr")], planned={planned.key: planned})

    assert sorted(reached) == [(NS, "unrelated"), (NS, "wrr")]
    assert api.requests == [f"get TraefikService {NS}/unrelated"]


def test_a_listed_namespace_answers_misses_without_a_request() -> None:
    api = Api(WORLD)
    reads = RouteReads(api)
    reads.add_listing(NS, api.list("TraefikService", NS))
    api.requests.clear()

    assert reads.read("TraefikService", NS, "gone") is None
    assert reads.read("TraefikService", NS, "unrelated") is not None
    assert [obj["metadata"]["name"] for obj in reads.known("TraefikService")] == ["unrelated", "wrr"]
    assert api.requests == []


def test_a_missing_namespace_is_named() -> None:
    with pytest.raises(DarklaunchError) as caught:
        require_namespace(Api(WORLD), "prodcution")

    assert caught.value.field == "namespace"
    assert 'namespace "prodcution" does not exist' in caught.value.msg
    require_namespace(Api(WORLD), NS)
