# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An HTTPRoute is described like an IngressRoute: its rules, their backendRefs' weights, a mirror put in front
of a rule by traefik_mirror (through the {route}-mirror TraefikService), the anomaly targets and their labels."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_view import (
    LABEL_FORM_CRD,
    LABEL_FORM_GATEWAY,
    describe_matches,
    find_route,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import (
    anomaly_targets,
    read_distribution,
    read_route_listing,
    read_traffic,
)

NS = "shop"
ROUTE = "web-route"
GW = "gateway.networking.k8s.io/v1"
TS_API = "traefik.io/v1alpha1"


class FakeKube:
    """Objects by (kind, namespace, name); ``unreadable``: kinds whose get fails as the API would."""

    connection = CommandConnection()

    def __init__(self, objects: list[dict[str, Any]], unreadable: tuple[str, ...] = ()) -> None:
        self.objects = {(o["kind"], o["metadata"].get("namespace", NS), o["metadata"]["name"]): o for o in objects}
        self.unreadable = unreadable
        self.reads: list[str] = []

    def traefik_group(self, requested: str | None = None) -> str:
        return requested or "traefik.io"

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.reads.append(f"get {kind} {namespace}/{name}")
        if kind in self.unreadable:
            raise DarklaunchError("the server could not find the requested resource", details={"api_status": 404})
        found = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(found) if found else None

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        self.reads.append(f"list {kind} {namespace}")
        if kind in self.unreadable:
            raise DarklaunchError("forbidden", details={"api_status": 403})
        return [copy.deepcopy(o) for (k, ns, _n), o in sorted(self.objects.items()) if k == kind and ns == namespace]

    def namespace_exists(self, name: str) -> bool:
        return any(ns == name for _k, ns, _n in self.objects)


def _service(name: str, port: int = 8080) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": port}]},
    }


def _ts(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": TS_API, "kind": "TraefikService", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def http_route(split_refs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Rule 0: /static to web-stable; rule 1: / split 50/50 between web-stable and web-canary (or ``split_refs``)."""
    return {
        "apiVersion": GW,
        "kind": "HTTPRoute",
        "metadata": {"name": ROUTE, "namespace": NS, "labels": {"app": "web"}},
        "spec": {
            "parentRefs": [{"name": "traefik-gateway", "namespace": "gateways"}],
            "hostnames": ["web.test"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                    "backendRefs": [{"name": "web-stable", "port": 8080}],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}],
                    "backendRefs": split_refs
                    or [
                        {"name": "web-stable", "port": 8080, "weight": 50},
                        {"name": "web-canary", "port": 8080, "weight": 50},
                    ],
                },
            ],
        },
    }


def plain_world() -> list[dict[str, Any]]:
    return [http_route(), _service("web-stable"), _service("web-canary"), _service("web-staging")]


def mirrored_world(percent: int = 20) -> list[dict[str, Any]]:
    """What traefik_mirror leaves on rule 1: the rule on web-route-mirror, whose main is the web-route-split."""
    route = http_route([{"group": "traefik.io", "kind": "TraefikService", "name": f"{ROUTE}-mirror", "weight": 1}])
    return [
        route,
        _service("web-stable"),
        _service("web-canary"),
        _service("web-staging"),
        _ts(
            f"{ROUTE}-split",
            {
                "weighted": {
                    "services": [
                        {"name": "web-stable", "port": 8080, "weight": 50},
                        {"name": "web-canary", "port": 8080, "weight": 50},
                    ]
                }
            },
        ),
        _ts(
            f"{ROUTE}-mirror",
            {
                "mirroring": {
                    "name": f"{ROUTE}-split",
                    "kind": "TraefikService",
                    "mirrors": [{"name": "web-staging", "port": 8080, "percent": percent}],
                }
            },
        ),
    ]


def test_an_httproute_split_is_described_rule_by_rule() -> None:
    distribution = read_distribution(FakeKube(plain_world()), namespace=NS, route_name=ROUTE).to_dict()
    assert distribution["route_kind"] == "HTTPRoute"
    static, split = distribution["routes"]
    assert static["match"] == "PathPrefix(`/static`)"
    assert static["explanation"] == "All user responses come from web-stable; nothing is mirrored."
    assert split["explanation"] == "User responses come 50% from web-stable, 50% from web-canary; nothing is mirrored."
    assert split["traffic_split"]["type"] == "weighted"
    assert [(t["name"], t["weight"], t["target_type"]) for t in split["targets"]] == [
        ("web-stable", 50, "Service"),
        ("web-canary", 50, "Service"),
    ]
    assert distribution["explanation"] == (
        "All user responses come from web-stable; nothing is mirrored (for rule 0, PathPrefix(`/static`); "
        "1 other rule splits differently, see routes)."
    )
    # The Gateway provider's own labels differ per Traefik release: not guessed, and said so.
    assert distribution["backends"] == []
    assert distribution["label_form"] == LABEL_FORM_GATEWAY


def test_a_mirrored_rule_says_who_answers_users_and_what_is_copied() -> None:
    distribution = read_distribution(FakeKube(mirrored_world(20)), namespace=NS, route_name=ROUTE)
    answer = distribution.to_dict()
    assert answer["traffic_split"] == {"type": "mirror", "wraps_weighted": True, "layers": ["mirror", "weighted"]}
    assert answer["target"] == {
        "name": f"{ROUTE}-mirror",
        "kind": "TraefikService",
        "namespace": NS,
        "port": None,
        "target_type": "mirror",
    }
    assert answer["explanation"] == (
        "User responses come 50% from web-stable, 50% from web-canary; 20% of requests are copied to web-staging "
        "and its responses are discarded (for rule 1, PathPrefix(`/`); 1 other rule splits differently, see routes)."
    )
    assert [(s["name"], s["user_share_percent"]) for s in answer["main_sink"]] == [
        ("web-stable", 50),
        ("web-canary", 50),
    ]
    assert [(s["name"], s["percent"]) for s in answer["shadow"]] == [("web-staging", 20)]
    assert answer["label_form"] == f"{LABEL_FORM_CRD}; {LABEL_FORM_GATEWAY}"
    # The anomaly gate's targets: the mirrored rule's backends in the CRD provider's label form, the shadow
    # paired with the Services whose users its copies come from; the /static rule's own backend has no label.
    targets = anomaly_targets(distribution)
    assert [(t["role"], t["service_label"], t["pair"], t["percent"]) for t in targets] == [
        ("main", "shop-web-stable-8080@kubernetescrd", None, 50),
        ("main", "shop-web-canary-8080@kubernetescrd", None, 50),
        (
            "shadow",
            "shop-web-staging-8080@kubernetescrd",
            ["shop-web-stable-8080@kubernetescrd", "shop-web-canary-8080@kubernetescrd"],
            20,
        ),
    ]


def test_the_route_listing_names_the_httproute_and_its_mirror() -> None:
    kube = FakeKube(mirrored_world(50))
    answer = read_traffic(kube, namespace=NS, route_name=ROUTE)
    assert answer["ingress_routes"] == []
    (listed,) = answer["http_routes"]
    assert listed["gateways"] == ["gateways/traefik-gateway"] and listed["hostnames"] == ["web.test"]
    assert [(r["index"], r["filters"], [t["target_type"] for t in r["targets"]]) for r in listed["rules"]] == [
        (0, [], ["Service"]),
        (1, ["RequestHeaderModifier"], ["mirror"]),
    ]
    (mirror,) = answer["mirrors"]
    assert (mirror["name"], mirror["percent"], mirror["active"]) == (f"{ROUTE}-mirror", 50, True)
    assert mirror["referenced_by"] == [
        {"ingress_route": ROUTE, "namespace": NS, "route_index": 1, "direct": True, "route_kind": "HTTPRoute"}
    ]
    assert [w["name"] for w in answer["weighted"]] == [f"{ROUTE}-split"]
    listing = read_route_listing(kube, namespace=NS, route_name=ROUTE)
    assert listing == {key: value for key, value in answer.items() if key != "distribution"}
    # Read by name: nothing is listed.
    assert not [read for read in kube.reads if read.startswith("list ")], kube.reads


def test_which_route_a_name_means() -> None:
    ingress = {"apiVersion": TS_API, "kind": "IngressRoute", "metadata": {"name": ROUTE, "namespace": NS}, "spec": {}}
    both = FakeKube([ingress, http_route()])
    assert find_route(both, NS, ROUTE)[0] == "IngressRoute"
    assert find_route(both, NS, ROUTE, "HTTPRoute")[0] == "HTTPRoute"
    assert find_route(FakeKube([http_route()]), NS, ROUTE)[0] == "HTTPRoute"
    # No Gateway API on the cluster: the IngressRoute path's own answer.
    assert find_route(FakeKube([http_route()], unreadable=("HTTPRoute",)), NS, ROUTE) == ("IngressRoute", None)
    with pytest.raises(DarklaunchError) as caught:
        find_route(both, NS, ROUTE, "Ingress")
    assert caught.value.field == "route_kind"


def test_a_route_of_the_other_kind_is_not_found_by_its_kind() -> None:
    kube = FakeKube(plain_world())
    with pytest.raises(DarklaunchError) as caught:
        read_distribution(kube, namespace=NS, route_name=ROUTE, route_kind="IngressRoute")
    assert str(caught.value).startswith(f'IngressRoute "{ROUTE}" was not found') and caught.value.field == "route_name"
    with pytest.raises(DarklaunchError) as caught:
        read_distribution(kube, namespace=NS, route_name="other", route_kind="HTTPRoute")
    assert str(caught.value).startswith('HTTPRoute "other" was not found')


def test_broken_backend_refs_are_reported() -> None:
    world = plain_world()
    world[0]["spec"]["rules"][1]["backendRefs"] = [
        {"name": "web-stable", "port": 8080},
        {"group": "example.com", "kind": "Bucket", "name": "b"},
    ]
    world[0]["spec"]["rules"][0]["backendRefs"] = [{"name": "web-gone", "port": 8080}]
    answer = read_distribution(FakeKube(world), namespace=NS, route_name=ROUTE).to_dict()
    reasons = [b["reason"] for b in answer["broken"]]
    assert any(
        "Service shop/web-gone (referenced by rule 0 of HTTPRoute shop/web-route) does not exist" in r for r in reasons
    )
    assert any("unsupported kind 'Bucket.example.com'" in r for r in reasons), reasons


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({}, "PathPrefix(`/`)"),
        ({"matches": [{"path": {"type": "Exact", "value": "/a"}, "method": "GET"}]}, "Path(`/a`) && Method(`GET`)"),
        (
            {
                "matches": [
                    {"headers": [{"name": "x-env", "value": "beta"}]},
                    {"queryParams": [{"name": "q", "value": "1"}]},
                ]
            },
            "(PathPrefix(`/`) && Header(`x-env`, `beta`)) || (PathPrefix(`/`) && Query(`q`, `1`))",
        ),
    ],
)
def test_rule_matches_in_words(rule: dict[str, Any], expected: str) -> None:
    assert describe_matches(rule) == expected


def test_the_namespace_listing_counts_httproute_rules_that_route_through_a_mirror() -> None:
    answer = read_traffic(FakeKube(mirrored_world(20)), namespace=NS)
    (mirror,) = answer["mirrors"]
    assert mirror["active"] is True
    assert [(r["ingress_route"], r["route_kind"], r["route_index"]) for r in mirror["referenced_by"]] == [
        (ROUTE, "HTTPRoute", 1)
    ]
    assert [route["name"] for route in answer["http_routes"]] == [ROUTE] and answer["ingress_routes"] == []
    # Where HTTPRoutes cannot be listed (no Gateway API, or a Role without them), the rest is answered.
    blind = read_traffic(FakeKube(mirrored_world(20), unreadable=("HTTPRoute",)), namespace=NS)
    assert blind["http_routes"] == [] and blind["mirrors"][0]["active"] is False


def test_the_httproutes_listing_says_each_rule_in_a_sentence() -> None:
    from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import read_http_routes

    plain = read_http_routes(FakeKube(plain_world()), namespace=NS)
    (route,) = plain["http_routes"]
    assert plain["api_group"] == "traefik.io" and route["gateways"] == ["gateways/traefik-gateway"]
    assert [rule["explanation"] for rule in route["rules"]] == [
        "All user responses come from web-stable; nothing is mirrored.",
        "User responses come 50% from web-stable, 50% from web-canary; nothing is mirrored.",
    ]
    assert route["rules"][1]["traffic_split"]["type"] == "weighted" and route["attached_by_darklaunch"] is False

    kube = FakeKube(mirrored_world(20))
    mirrored = read_http_routes(kube, namespace=NS)
    rule = mirrored["http_routes"][0]["rules"][1]
    assert rule["explanation"] == (
        "User responses come 50% from web-stable, 50% from web-canary; 20% of requests are copied to web-staging "
        "and its responses are discarded."
    )
    assert rule["traffic_split"] == {"type": "mirror", "wraps_weighted": True, "layers": ["mirror", "weighted"]}
    assert "20% of requests are copied to web-staging" in mirrored["http_routes"][0]["explanation"]
    # One route by name: the same entry, from by-name reads only (the route and the TraefikServices it reaches).
    kube = FakeKube(mirrored_world(20))
    one = read_http_routes(kube, namespace=NS, route_name=ROUTE)
    assert one == mirrored and not [read for read in kube.reads if read.startswith("list")]


def test_the_httproutes_listing_fails_where_httproutes_cannot_be_read() -> None:
    from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import read_http_routes

    with pytest.raises(DarklaunchError, match="forbidden"):
        read_http_routes(FakeKube(plain_world(), unreadable=("HTTPRoute",)), namespace=NS)
    with pytest.raises(DarklaunchError, match='HTTPRoute "nope" was not found in namespace "shop"'):
        read_http_routes(FakeKube(plain_world()), namespace=NS, route_name="nope")
    with pytest.raises(DarklaunchError, match='namespace "typo" does not exist'):
        read_http_routes(FakeKube(plain_world()), namespace="typo")


def test_a_mirrored_rules_mains_carry_their_pre_launch_patterns() -> None:
    import json

    from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_labels import (
        gateway_label_patterns,
        pre_launch_patterns,
    )
    from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import SAVED_ANNOTATION

    saved = {"1": [{"name": "web-stable", "port": 8080, "weight": 50}, {"name": "web-canary", "port": 8080}]}
    world = mirrored_world(20)
    world[0]["metadata"]["annotations"] = {SAVED_ANNOTATION: json.dumps(saved)}
    targets = anomaly_targets(read_distribution(FakeKube(world), namespace=NS, route_name=ROUTE))
    patterns = {t["name"]: t.get("label_patterns") for t in targets}
    assert patterns["web-canary"] == list(gateway_label_patterns("shop", ROUTE, 1, 1, "shop", "web-canary", 8080))
    assert patterns["web-stable"] == list(gateway_label_patterns("shop", ROUTE, 1, 0, "shop", "web-stable", 8080))
    assert patterns["web-staging"] is None  # the shadow has no history before the launch
    assert pre_launch_patterns(NS, ROUTE, {"x": []}) == {}
