"""traefik_traffic_info and the traffic lookup on a Gateway API HTTPRoute served by Traefik: a mirrored rule is
described in the same sentences as an IngressRoute's (who answers users, what is copied, at what percent), and
the description matches the traffic counted at the backends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from dlcluster.world import SeedWorld
from modrun import run_module

pytestmark = pytest.mark.integration


def _attach(world: SeedWorld, percent: int) -> dict[str, Any]:
    result = run_module(
        "traefik_mirror",
        {
            "route_name": world.route,
            "namespace": world.namespace,
            "mirror_service": world.service("staging"),
            "mirror_percent": percent,
            "rule_index": 1,
            "attach_to_ingress": True,
            "propagation_seconds": 1,
        },
    )
    assert result.get("failed") is not True and result["status"] == "active", result
    time.sleep(2)  # Traefik applies the new configuration
    return result


def _detach(world: SeedWorld) -> None:
    result = run_module("traefik_mirror", {"route_name": world.route, "namespace": world.namespace, "state": "absent"})
    assert result.get("failed") is not True, result


def _lookup(new_lookup: Callable[[], Any], term: str, world: SeedWorld, **options: Any) -> Any:
    (answer,) = new_lookup().run([term], variables={}, route_name=world.route, namespace=world.namespace, **options)
    return answer


def test_a_mirrored_httproute_is_described_as_it_serves(
    httproute_world: Callable[..., SeedWorld], traffic: Any, new_lookup: Callable[[], Any]
) -> None:
    world = httproute_world(app="hrinfo")
    stable, canary, staging = (world.service(role) for role in ("stable", "canary", "staging"))

    # Before the launch: the 50/50 split of rule 1, nothing copied; the Gateway provider's labels not guessed.
    before = run_module("traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route})
    assert before.get("failed") is not True, before
    assert before["distribution"]["route_kind"] == "HTTPRoute" and before["ingress_routes"] == []
    split = before["distribution"]["routes"][1]
    assert split["explanation"] == f"User responses come 50% from {stable}, 50% from {canary}; nothing is mirrored."
    assert before["distribution"]["backends"] == [] and "kubernetesgateway" in before["distribution"]["label_form"]

    _attach(world, 20)
    try:
        info = run_module(
            "traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route, "route_kind": "HTTPRoute"}
        )
        assert info.get("failed") is not True, info
        distribution = info["distribution"]
        assert distribution["explanation"] == (
            f"User responses come 50% from {stable}, 50% from {canary}; 20% of requests are copied to {staging} and "
            "its responses are discarded (for rule 1, PathPrefix(`/`); 1 other rule splits differently, see routes)."
        )
        assert (
            distribution["routes"][0]["explanation"] == f"All user responses come from {stable}; nothing is mirrored."
        )
        assert distribution["traffic_split"] == {
            "type": "mirror",
            "wraps_weighted": True,
            "layers": ["mirror", "weighted"],
        }
        assert distribution["broken"] == []
        labels = {(b["role"], b["name"]): b["service_label"] for b in distribution["backends"]}
        assert labels == {
            ("main", stable): f"{world.namespace}-{stable}-{world.backends['stable'].port}@kubernetescrd",
            ("main", canary): f"{world.namespace}-{canary}-{world.backends['canary'].port}@kubernetescrd",
            ("shadow", staging): f"{world.namespace}-{staging}-{world.backends['staging'].port}@kubernetescrd",
        }
        (http_route,) = info["http_routes"]
        assert http_route["attached_by_darklaunch"] is True
        assert [t["target_type"] for t in http_route["rules"][1]["targets"]] == ["mirror"]
        (mirror,) = [m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror"]
        assert mirror["percent"] == 20 and mirror["active"] is True
        assert [(r["route_kind"], r["route_index"]) for r in mirror["referenced_by"]] == [("HTTPRoute", 1)]

        # The lookup answers the same (route_kind detected: only an HTTPRoute has that name).
        assert _lookup(new_lookup, "distribution", world) == distribution
        routes = _lookup(new_lookup, "routes", world)
        assert [m["name"] for m in routes["mirrors"]] == [mirror["name"]]
        assert _lookup(new_lookup, "ingressroutes", world)["http_routes"] == info["http_routes"]

        # What the sentence says is what the backends count.
        roles = ("stable", "canary", "staging")
        counted = {role: world.backends[role].total for role in roles}
        result = traffic(world.host, n=400, path="/api")
        assert result.by_status == {200: 400}, result.by_status
        time.sleep(1.5)  # copies are sent after the user's answer, in the background
        delta = {role: world.backends[role].total - counted[role] for role in roles}
        assert set(result.by_body) == {stable, canary} and min(result.by_body.values()) >= 160, result.by_body
        assert 0.14 <= delta["staging"] / 400 <= 0.26, delta
    finally:
        _detach(world)
    after = run_module("traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route})
    assert after["distribution"]["routes"][1]["explanation"] == split["explanation"]
