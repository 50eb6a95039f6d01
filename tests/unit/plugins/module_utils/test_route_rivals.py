"""The priority of a route added for request matching against the routes of OTHER IngressRoutes: Traefik puts
the routers of every IngressRoute on an entry point into one muxer, tried by priority (explicit, else the
rule's length), so the added route must stay below every route that beats its source today."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    RequestMatch,
    added_priority,
    combined_rule,
    plan_request_routes,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import MirrorParams
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import _neighbours
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_rivals import (
    NoRoom,
    Rival,
    neighbour_routes,
    place_above,
    rivals,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._traefik_rule import required_hosts

GET = RequestMatch(("GET",))
GET_HEAD = RequestMatch(("GET", "HEAD"))
IO = "traefik.io"


def route(match: str, priority: int | None = None) -> dict[str, Any]:
    return {"match": match, "kind": "Rule", **({"priority": priority} if priority is not None else {})}


def ingress(name: str, *routes: dict[str, Any], namespace: str = "shop", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"routes": list(routes), **spec}}


@pytest.mark.parametrize(
    ("rule", "syntax", "hosts"),
    [
        ("Host(`A.example`)", "v3", {"a.example"}),
        ("Host(`a`) && PathPrefix(`/api`)", "v3", {"a"}),
        ("Host(`a`) || Host(`b`)", "v3", {"a", "b"}),
        ("(Host(`a`) || Host(`b`)) && Host(`b`)", "v3", {"b"}),
        ("Host(`a`, `b`) && Method(`GET`)", "v2", {"a", "b"}),
        ("HostHeader(`a`)", "v2", {"a"}),
        ("Host(`a`) || PathPrefix(`/x`)", "v3", None),  # the second branch matches any host
        ("!Host(`a`)", "v3", None),
        ("HostRegexp(`^a$`)", "v3", None),
        ("PathPrefix(`/`)", "v3", None),
        ("Host(`a`", "v3", None),  # unparsable: no claim
    ],
)
def test_the_hosts_a_rule_requires(rule: str, syntax: str, hosts: set[str] | None) -> None:
    assert required_hosts(rule, syntax) == (frozenset(hosts) if hosts is not None else None)


def test_only_routes_on_the_same_muxer_are_neighbours() -> None:
    own = ingress("api", route("Host(`a`)"), entryPoints=["web"])
    others = [
        own,  # the route's own IngressRoute, as a cluster-wide list returns it
        ingress("same-ep", route("Host(`a`) && PathPrefix(`/api`)"), entryPoints=["web", "websecure"]),
        ingress("default-ep", route("Host(`a`) && PathPrefix(`/b`)")),  # default entry points: may be web
        ingress("other-ep", route("Host(`a`) && PathPrefix(`/c`)"), entryPoints=["internal"]),
        ingress("tls", route("Host(`a`) && PathPrefix(`/d`)"), entryPoints=["web"], tls={}),
        ingress("same-name", route("Host(`a`) && PathPrefix(`/e`)"), namespace="other", entryPoints=["web"]),
    ]
    assert [where for where, _route in neighbour_routes(own, others)] == [
        "route 0 of IngressRoute shop/same-ep",
        "route 0 of IngressRoute shop/default-ep",
        "route 0 of IngressRoute other/same-name",
    ]


def test_routes_for_other_hosts_do_not_compete() -> None:
    source = route("Host(`a`)")
    candidates = [
        ("x", route("Host(`b`) && PathPrefix(`/api`)")),
        ("y", route("Host(`A`) && PathPrefix(`/api`)")),
        ("z", route("PathPrefix(`/api`)")),
        ("gone", {"match": "", "kind": "Rule"}),
    ]
    assert rivals(source, candidates, IO) == [Rival("y", 31), Rival("z", 18)]
    # A source for any host competes with every route.
    assert [r.where for r in rivals(route("PathPrefix(`/`)"), candidates, IO)] == ["x", "y", "z"]


def test_a_longer_rule_of_another_ingress_route_keeps_its_requests() -> None:
    """The case this exists for: another IngressRoute's `Host(a) && PathPrefix(/api)` (31 bytes) beats the
    source `Host(a)` (9 bytes) today; the added route, unset, would get its rule's length (48) and take the
    GETs of /api from it. It gets 10: above the source, below the other route."""
    routes = [route("Host(`a`)")]
    assert len(combined_rule("Host(`a`)", GET_HEAD)) == 48
    neighbours = neighbour_routes(
        ingress("api", *routes), [ingress("api-v2", route("Host(`a`) && PathPrefix(`/api`)"))]
    )
    assert rivals(routes[0], neighbours, IO) == [Rival("route 0 of IngressRoute shop/api-v2", 31)]
    assert added_priority(routes, 0, (), GET_HEAD, neighbours) == 10


def test_no_integer_between_the_source_and_a_route_of_another_ingress_route_is_refused() -> None:
    routes = [route("Host(`a`)", 10)]
    neighbours = neighbour_routes(
        ingress("api", *routes), [ingress("api-v2", route("Host(`a`) && PathPrefix(`/api`)", 11))]
    )
    with pytest.raises(DarklaunchError, match="cannot be combined safely") as caught:
        added_priority(routes, 0, (), GET, neighbours)
    assert caught.value.field == "mirror_methods"
    assert "route 0 of IngressRoute shop/api-v2 has priority 11" in caught.value.msg
    assert "Nothing was changed" in caught.value.msg
    # The same route on another entry point, or for another host, is no rival.
    elsewhere = ingress("api-v2", route("Host(`a`) && PathPrefix(`/api`)", 11), entryPoints=["internal"])
    other_host = ingress("api-v2", route("Host(`b`) && PathPrefix(`/api`)", 11))
    own = ingress("api", *routes, entryPoints=["web"])
    assert added_priority(routes, 0, (), GET, neighbour_routes(own, [elsewhere, other_host])) == 11


def test_the_priority_sits_just_above_the_source() -> None:
    source = route("Host(`a`)", 10)
    assert place_above(source, [Rival("r", 12)]) == 11
    assert place_above(source, [Rival("r", 10), Rival("s", 3)]) == 11  # a tie with the source is no rival above
    assert place_above(route("Host(`a`)"), [Rival("r", 27)]) == 10
    with pytest.raises(NoRoom) as caught:
        place_above(source, [Rival("r", 11)])
    assert caught.value.blocking == Rival("r", 11) and caught.value.wanted == 11


def test_plan_request_routes_reads_the_neighbours() -> None:
    own = ingress("api", {**route("Host(`a`)"), "services": [{"name": "stable", "port": 80}]})
    other = ingress("api-v2", route("Host(`a`) && PathPrefix(`/api`)"))
    change = plan_request_routes(
        own, GET_HEAD, {0: [{"name": "api-mirror", "kind": "TraefikService"}]}, {}, IO, [other]
    )
    added = change.ops[0]["value"]
    assert added["priority"] == 10 and "route 1 added at priority 10" in change.changes[0]


class _Lister:
    def __init__(self, cluster_wide: bool) -> None:
        self.cluster_wide = cluster_wide
        self.asked: list[str | None] = []

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        self.asked.append(namespace)
        if namespace is None and not self.cluster_wide:
            raise DarklaunchError("forbidden", details={"api_status": 403})
        return [ingress("api", route("Host(`a`)"), namespace=namespace or "shop")]


def test_without_a_cluster_wide_list_the_namespace_is_read_and_that_is_said() -> None:
    params = MirrorParams(route_name="api", namespace="shop")
    everywhere = _Lister(cluster_wide=True)
    assert _neighbours(everywhere, params)[1] == [] and everywhere.asked == [None]  # type: ignore[arg-type]
    namespace_only = _Lister(cluster_wide=False)
    routes, warnings = _neighbours(namespace_only, params)  # type: ignore[arg-type]
    assert namespace_only.asked == [None, "shop"] and len(routes) == 1
    assert len(warnings) == 1 and "namespace shop only" in warnings[0] and "403" in warnings[0]
