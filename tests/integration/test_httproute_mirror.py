"""traefik_mirror on a Gateway API HTTPRoute served by Traefik: a 50/50 backendRefs split and a second rule,
attach at 20%, ramp to 50%, teardown, with live users; the route restored exactly; a foreign Gateway refused;
playbooks/mirror_enable.yml and mirror_disable.yml on an HTTPRoute."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
from dlcluster import gateway
from dlcluster.kube import Kube
from dlcluster.world import SeedWorld
from modrun import run_module
from shadow import run_playbook

pytestmark = pytest.mark.integration

GW = f"{gateway.GROUP}/v1"


def _route(kube: Kube, world: SeedWorld) -> dict[str, Any]:
    obj = kube.get(GW, "HTTPRoute", world.route, world.namespace)
    assert obj is not None
    return obj


def _user_part(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"labels": meta.get("labels"), "annotations": meta.get("annotations"), "spec": obj["spec"]}


def _settled(backend: Any, timeout: float = 10.0) -> int:
    """Copies are sent after the user's answer, in the background: wait until the count stops moving."""
    last: int = backend.total
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if backend.total == last:
            return last
        last = backend.total
    return last


def _args(world: SeedWorld, **extra: Any) -> dict[str, Any]:
    return {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("staging"),
        "propagation_seconds": 1,
        # The /static rule serves main_service too: the rule is named (alone, main_service would be refused as
        # ambiguous).
        "rule_index": 1,
        "attach_to_ingress": True,
        **extra,
    }


def _measure(traffic: Any, world: SeedWorld, n: int) -> tuple[dict[str, int], float]:
    """``n`` user requests on the split rule (beside the live users): who answered them, and the copies counted
    at the shadow per user request answered by the main backends in the same window."""
    roles = ("stable", "canary", "staging")
    before = {role: world.backends[role].total for role in roles}
    result = traffic(world.host, n=n, path="/api")
    assert result.by_status == {200: n}, result.by_status
    time.sleep(1.0)  # copies are sent after the user's answer, in the background
    delta = {role: world.backends[role].total - before[role] for role in roles}
    answered = dict(result.by_body)
    return answered, delta["staging"] / (delta["stable"] + delta["canary"])


def test_shadow_launch_on_an_httproute_split(
    httproute_world: Callable[..., SeedWorld], kube: Kube, traffic: Any, traffic_for: Any
) -> None:
    world = httproute_world(app="hrmirror")
    original = copy.deepcopy(_route(kube, world))
    users = traffic_for(world, 40.0)

    # Check mode: what would change, and nothing written.
    dry = run_module("traefik_mirror", _args(world, mirror_percent=20), check=True, diff=True)
    assert dry.get("failed") is not True, dry
    assert dry["changed"] is True and dry["route_kind"] == "HTTPRoute" and dry["httproute"]["rule_index"] == 1
    assert [a["kind"] for a in dry["actions"]] == ["TraefikService", "TraefikService", "HTTPRoute"]
    assert _route(kube, world)["metadata"]["resourceVersion"] == original["metadata"]["resourceVersion"]
    assert kube.get("traefik.io/v1alpha1", "TraefikService", f"{world.route}-mirror", world.namespace) is None

    # Attach at 20% (route_kind detected: only an HTTPRoute has that name).
    attached = run_module("traefik_mirror", _args(world, mirror_percent=20))
    assert attached["changed"] is True and attached["status"] == "active", attached
    assert run_module("traefik_mirror", _args(world, mirror_percent=20))["changed"] is False
    route = _route(kube, world)
    assert route["spec"]["rules"][0] == original["spec"]["rules"][0]  # the /static rule is untouched
    assert route["spec"]["rules"][1]["backendRefs"] == [
        {"group": "traefik.io", "kind": "TraefikService", "name": f"{world.route}-mirror", "weight": 1}
    ]
    assert route["spec"]["rules"][1]["filters"] == original["spec"]["rules"][1]["filters"]
    assert route["spec"]["parentRefs"] == original["spec"]["parentRefs"]
    for key, value in original["metadata"]["labels"].items():
        assert route["metadata"]["labels"][key] == value
    time.sleep(2)  # Traefik applies the new configuration

    answered, share = _measure(traffic, world, 400)
    # Users are all answered by the main services, still split 50/50; the shadow gets about 20% as copies.
    main_names = {world.service("stable"), world.service("canary")}
    assert set(answered) == main_names and min(answered.values()) >= 160, answered
    assert 0.15 <= share <= 0.25, share
    # The /static rule still serves stable alone, and is not copied.
    result = traffic(world.host, n=20, path="/static/x")
    assert result.by_status == {200: 20} and set(result.by_body) == {world.service("stable")}
    time.sleep(0.5)
    static = {
        role: world.backends[role].counters()["by_method_path"].get("GET /static/x", 0) for role in world.backends
    }
    assert static == {"stable": 20, "canary": 0, "staging": 0}, static

    # Ramp to 50%.
    ramped = run_module("traefik_mirror", _args(world, mirror_percent=50))
    assert ramped["changed"] is True and [a["kind"] for a in ramped["actions"]] == ["TraefikService"]
    time.sleep(2)
    answered, share = _measure(traffic, world, 400)
    assert set(answered) == main_names, answered
    assert 0.42 <= share <= 0.58, share

    # Teardown: the route restored exactly, both TraefikServices gone, idempotent.
    down = run_module("traefik_mirror", {**_args(world), "state": "absent"}, diff=True)
    assert down["changed"] is True and down["status"] == "absent", down
    assert _user_part(_route(kube, world)) == _user_part(original)
    for name in (f"{world.route}-mirror", f"{world.route}-split"):
        assert kube.get("traefik.io/v1alpha1", "TraefikService", name, world.namespace) is None
    assert run_module("traefik_mirror", {**_args(world), "state": "absent"})["changed"] is False
    time.sleep(1)
    users.stop()
    # The live users, through attach, ramp and teardown: no error, every answer from a main backend.
    assert users.sent > 100 and users.errors() == 0, (users.sent, users.statuses, users.failures)
    assert set(users.answered_by) == main_names, users.answered_by


def test_refuses_a_gateway_that_is_not_traefiks(httproute_world: Callable[..., SeedWorld], kube: Kube) -> None:
    world = httproute_world(app="hrforeign")
    kube.apply(
        {
            "apiVersion": GW,
            "kind": "GatewayClass",
            "metadata": {"name": "not-traefik"},
            "spec": {"controllerName": "example.com/gateway"},
        }
    )
    kube.apply(
        {
            "apiVersion": GW,
            "kind": "Gateway",
            "metadata": {"name": "foreign", "namespace": world.namespace},
            "spec": {"gatewayClassName": "not-traefik", "listeners": [{"name": "web", "port": 80, "protocol": "HTTP"}]},
        }
    )
    route = _route(kube, world)
    route["spec"]["parentRefs"] = [{"group": gateway.GROUP, "kind": "Gateway", "name": "foreign"}]
    kube.apply(
        {
            "apiVersion": GW,
            "kind": "HTTPRoute",
            "metadata": {"name": world.route, "namespace": world.namespace},
            "spec": route["spec"],
        }
    )
    before = _route(kube, world)
    refused = run_module("traefik_mirror", _args(world, mirror_percent=20, route_kind="HTTPRoute"))
    assert refused.get("failed") is True, refused
    assert "not Traefik" in refused["msg"] and "nothing was changed" in refused["msg"], refused["msg"]
    assert _route(kube, world)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert kube.get("traefik.io/v1alpha1", "TraefikService", f"{world.route}-mirror", world.namespace) is None


def test_the_mirror_playbooks_on_an_httproute(httproute_world: Callable[..., SeedWorld], kube: Kube) -> None:
    world = httproute_world(app="hrplaybooks")
    original = _user_part(_route(kube, world))
    enable = {
        "route_name": world.route,
        "route_namespace": world.namespace,
        "route_kind": "HTTPRoute",
        "rule_index": 1,
        "mirror_service": world.service("staging"),
        "mirror_percent": 20,
        "attach_to_ingress": True,
    }
    first = run_playbook("mirror_enable", enable)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-4000:]
    assert f"ACTIVE on the cluster: HTTPRoute {world.route} routes through it" in out, out[-4000:]
    assert (
        f"Now (mirror split): User responses come 50% from {world.service('stable')}, 50% from "
        f"{world.service('canary')}; 20% of requests are copied to {world.service('staging')}"
    ) in out, out[-4000:]
    assert _on_mirror_rule(kube, world)
    # max_body_size (the playbook's 1 MiB default) is the mirror's, as on an IngressRoute.
    mirror = kube.get("traefik.io/v1alpha1", "TraefikService", f"{world.route}-mirror", world.namespace)
    assert mirror is not None and mirror["spec"]["mirroring"]["maxBodySize"] == 1048576
    again = run_playbook("mirror_enable", {key: value for key, value in enable.items() if key != "route_kind"})
    assert again.returncode == 0 and "Nothing to change" in again.stdout, again.stdout[-4000:]
    # The ramp finds the kind from the route the mirror serves, and the rule from the mirror.
    ramp = run_playbook(
        "mirror_ramp", {"route_name": world.route, "route_namespace": world.namespace, "mirror_percent": 50}
    )
    assert ramp.returncode == 0, (ramp.stdout + ramp.stderr)[-4000:]
    assert "went from 20% to 50%" in ramp.stdout, ramp.stdout[-4000:]
    mirror = kube.get("traefik.io/v1alpha1", "TraefikService", f"{world.route}-mirror", world.namespace)
    assert mirror is not None and mirror["spec"]["mirroring"]["mirrors"][0]["percent"] == 50
    assert _on_mirror_rule(kube, world)
    off = run_playbook("mirror_disable", {"route_name": world.route, "route_namespace": world.namespace})
    assert off.returncode == 0, (off.stdout + off.stderr)[-4000:]
    assert "rule(s) 1 back on their original backendRefs" in off.stdout, off.stdout[-4000:]
    assert _user_part(_route(kube, world)) == original


def _on_mirror_rule(kube: Kube, world: SeedWorld) -> bool:
    refs = _route(kube, world)["spec"]["rules"][1]["backendRefs"]
    return refs == [{"group": "traefik.io", "kind": "TraefikService", "name": f"{world.route}-mirror", "weight": 1}]
