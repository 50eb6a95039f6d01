"""traefik_mirror against the real apiserver + Traefik: the whole shadow lifecycle, with real traffic.

Each transition (enable -> attach -> ramp -> disable) is its own test on a route of its own, brought to
the state it starts from by the module itself: first in check mode (nothing written, same actions),
then for real, then again (no write). Tests that only read (traffic through the mirror, what
traefik_traffic_info reports, a refused run) share one route per state, also built by the module.
Writes are counted in the apiserver's audit log, requests at the backends.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from modrun import run_module
from routes import apply_as_written, user_part
from shadow import wait_mirror_live

pytestmark = pytest.mark.integration

API = "traefik.io/v1alpha1"
PRE_MIRROR = "darklaunch.traefik/pre-mirror-services"


def params(world: Any, **extra: Any) -> dict[str, Any]:
    base = {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "mirror_percent": 20,
    }
    base.update(extra)
    return base


def attach_params(world: Any, percent: int = 20) -> dict[str, Any]:
    return params(world, mirror_percent=percent, attach_to_ingress=True, confirm_end_weighted_split=True)


def disable_params(world: Any) -> dict[str, Any]:
    return {"route_name": world.route, "namespace": world.namespace, "state": "absent"}


def ingress_route(kube: Any, world: Any) -> dict[str, Any]:
    obj: dict[str, Any] = kube.get(API, "IngressRoute", world.route, world.namespace)
    return obj


def mirror_object(kube: Any, world: Any) -> dict[str, Any] | None:
    obj: dict[str, Any] | None = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
    return obj


@dataclass(frozen=True)
class Route:
    """A seed world whose IngressRoute has three routes, and that IngressRoute as the user wrote it."""

    world: Any
    written: dict[str, Any]


def add_untouchable_routes(kube: Any, world: Any) -> None:
    """A second and a third route that must survive every operation untouched: one straight to stable
    (the health check), one to the weighted split under another Host and a middleware."""
    ir = ingress_route(kube, world)
    ir["spec"]["routes"].append(
        {
            "match": f"Host(`{world.host}`) && PathPrefix(`/healthz`)",
            "kind": "Rule",
            "priority": 100,
            "services": [{"name": world.service("stable"), "port": world.port("stable")}],
        }
    )
    ir["spec"]["routes"].append(
        {
            "match": f"Host(`admin.{world.host}`)",
            "kind": "Rule",
            "middlewares": [{"name": world.middleware}],
            "services": [{"name": world.wrr, "kind": "TraefikService"}],
        }
    )
    apply_as_written(kube, ir)


def run_ok(args: dict[str, Any], status: str) -> None:
    result = run_module("traefik_mirror", args)
    assert not result.get("failed") and result["status"] == status, result


# What brings a fresh route to each state: the module runs, in order, and the status each must end in.
STATES: dict[str, Callable[[Any], list[tuple[dict[str, Any], str]]]] = {
    "seeded": lambda w: [],
    "inactive": lambda w: [(params(w), "inactive")],
    "active": lambda w: [(attach_params(w), "active")],
    "ramped": lambda w: [(attach_params(w), "active"), (attach_params(w, 50), "active")],
}


@pytest.fixture(scope="module")
def new_route(seed_world: Callable[..., Any], kube: Any) -> Callable[..., Route]:
    """``new_route(app, state, routed=False)``: a fresh three-route world, then the module runs that lead
    to ``state``. Only tests that send traffic wait for Traefik to route the world (``routed``)."""

    def make(app: str, state: str, routed: bool = False) -> Route:
        world = seed_world(app=app, wait=routed)
        add_untouchable_routes(kube, world)
        written = user_part(ingress_route(kube, world))
        for args, status in STATES[state](world):
            run_ok(args, status)
        return Route(world, written)

    return make


# Shared by the tests that only read (they send traffic, ask traefik_traffic_info, or are refused).
@pytest.fixture(scope="module")
def inactive(new_route: Callable[..., Route]) -> Route:
    return new_route("lc-inactive", "inactive")


@pytest.fixture(scope="module")
def active(new_route: Callable[..., Route]) -> Route:
    return new_route("lc-active", "active", routed=True)


@pytest.fixture(scope="module")
def ramped(new_route: Callable[..., Route]) -> Route:
    return new_route("lc-ramped", "ramped", routed=True)


def transition(audit: Any, namespace: str, args: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Check mode (no writes), real run (the same actions), rerun (changed: false, no writes)."""
    mark = audit.mark()
    dry = run_module("traefik_mirror", args, check=True, diff=True, **kw)
    assert not dry.get("failed"), dry
    assert audit.writes_since(mark, namespace=namespace) == [], "check mode wrote to the cluster"
    assert "before" in dry["diff"] and "after" in dry["diff"]

    real = run_module("traefik_mirror", args, **kw)
    assert not real.get("failed"), real
    assert real["actions"] == dry["actions"], "check mode must announce exactly what the real run does"
    assert real["changed"] == dry["changed"]
    assert real["status"] == dry["status"]
    writes = audit.writes_since(mark, namespace=namespace)
    assert len(writes) == len(real["actions"]), [w.get("verb") for w in writes]

    mark = audit.mark()
    again = run_module("traefik_mirror", args, **kw)
    assert not again.get("failed"), again
    assert again["changed"] is False and again["actions"] == []
    assert audit.writes_since(mark, namespace=namespace) == [], "an idempotent rerun must not write"
    return real


def settled_count(backend: Any, timeout: float = 10.0) -> int:
    """Mirrored copies are sent after the user response, in the background: wait until the count stops."""
    last: int = backend.total
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now: int = backend.total
        if now == last:
            return now
        last = now
    return last


def measure_mirroring(traffic: Any, world: Any, n: int = 500) -> tuple[dict[str, int], int]:
    """Send ``n`` user requests; returns (who answered, copies received by the canary)."""
    canary = world.backends["canary"]
    before = settled_count(canary)
    result = traffic(world.host, n=n)
    assert result.by_status == {200: n}, result.by_status
    copies = settled_count(canary) - before
    return dict(result.by_body), copies


def traffic_info(world: Any) -> dict[str, Any]:
    info = run_module("traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route})
    assert not info.get("failed"), info
    return info


# --- enable: an inactive mirror ------------------------------------------------------------------------


def test_enable_without_attach_creates_an_inactive_mirror(
    new_route: Callable[..., Route], kube: Any, audit: Any
) -> None:
    route = new_route("lc-enable", "seeded")
    world = route.world
    result = transition(audit, world.namespace, params(world))

    assert result["changed"] is True
    assert result["status"] == "inactive"
    assert [a["verb"] + " " + a["kind"] for a in result["actions"]] == ["create TraefikService"]
    assert any("IngressRoute" in w and "inactive" in w.lower() for w in result["warnings"]), result["warnings"]
    mirror = mirror_object(kube, world)
    assert mirror is not None
    spec = mirror["spec"]["mirroring"]
    assert spec["name"] == world.service("stable") and spec["port"] == world.port("stable")
    assert spec["mirrors"] == [
        {"name": world.service("canary"), "kind": "Service", "port": world.port("canary"), "percent": 20}
    ]
    assert mirror["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "darklaunch.traefik"
    assert user_part(ingress_route(kube, world)) == route.written, "enable without attach must not touch the route"


def test_traffic_info_reports_the_inactive_mirror(inactive: Route) -> None:
    world = inactive.world
    info = traffic_info(world)
    mirror = next(m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror")
    assert mirror["active"] is False and mirror["percent"] == 20
    assert mirror["main"]["name"] == world.service("stable")
    dist = info["distribution"]
    assert dist["traffic_split"]["type"] == "weighted"
    assert dist["target"]["name"] == world.wrr
    shares = {s["name"]: s["user_share_percent"] for s in dist["main_sink"]}
    assert shares == {world.service("stable"): 50, world.service("canary"): 50}


# --- attach: the route goes through the mirror ------------------------------------------------------------


def test_attach_over_live_split_needs_sign_off(inactive: Route, kube: Any, audit: Any) -> None:
    world = inactive.world
    mark = audit.mark()
    refused = run_module("traefik_mirror", params(world, attach_to_ingress=True))
    assert refused.get("failed") and refused.get("field") == "confirm_end_weighted_split", refused
    assert "confirm_end_weighted_split" in refused["msg"]
    assert audit.writes_since(mark, namespace=world.namespace) == []
    assert user_part(ingress_route(kube, world)) == inactive.written


def test_attach_repoints_only_the_weighted_entries(new_route: Callable[..., Route], kube: Any, audit: Any) -> None:
    route = new_route("lc-attach", "inactive")
    world, before = route.world, route.written
    result = transition(audit, world.namespace, attach_params(world))
    assert result["status"] == "active"
    assert [(a["verb"], a["kind"]) for a in result["actions"]] == [("patch", "IngressRoute")]
    assert any("weighted" in w.lower() and "stable" in w for w in result["warnings"]), result["warnings"]

    after = user_part(ingress_route(kube, world))
    routes_before, routes_after = before["spec"]["routes"], after["spec"]["routes"]
    assert len(routes_after) == len(routes_before)
    for index, (old, new) in enumerate(zip(routes_before, routes_after, strict=True)):
        old_targets = [s["name"] for s in old["services"]]
        if old_targets == [world.wrr]:
            assert new["services"] == [{"name": f"{world.route}-mirror", "kind": "TraefikService"}], index
        else:
            assert new == old, f"route {index} does not target the WRR and must not change"
        assert new.get("middlewares") == old.get("middlewares")
    assert after["spec"]["entryPoints"] == before["spec"]["entryPoints"]
    assert after["labels"] == before["labels"]
    saved = after["annotations"].pop(PRE_MIRROR)
    assert after["annotations"] == before["annotations"], "user annotations must survive attach"
    assert world.wrr in saved


def test_real_traffic_at_20_percent(active: Route, traefik_api_get: Any, traffic: Any) -> None:
    world = active.world
    wait_mirror_live(traefik_api_get, world, 20)
    answered, copies = measure_mirroring(traffic, world)
    assert answered == {world.backends["stable"].name: 500}, "every user response must come from stable"
    assert 98 <= copies <= 102, f"20% of 500 is 100 copies (Traefik counts deterministically); got {copies}"


def test_traffic_info_reports_the_active_mirror(active: Route) -> None:
    world = active.world
    info = traffic_info(world)
    dist = info["distribution"]
    assert dist["traffic_split"]["type"] == "mirror"
    assert dist["target"] == {
        "name": f"{world.route}-mirror",
        "kind": "TraefikService",
        "namespace": world.namespace,
        "port": None,
        "target_type": "mirror",
    }
    assert [(s["name"], s["user_share_percent"]) for s in dist["main_sink"]] == [(world.service("stable"), 100)]
    assert [(s["name"], s["percent"]) for s in dist["shadow"]] == [(world.service("canary"), 20)]
    assert world.service("stable") in dist["explanation"] and "20%" in dist["explanation"]
    mirror = next(m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror")
    assert mirror["active"] is True
    assert {r["ingress_route"] for r in mirror["referenced_by"]} == {world.route}


# --- ramp: only the percent changes ---------------------------------------------------------------------


def test_ramp_changes_only_the_percent(new_route: Callable[..., Route], kube: Any, audit: Any) -> None:
    world = new_route("lc-ramp", "active").world
    ir_before = user_part(ingress_route(kube, world))
    mirror_before = mirror_object(kube, world)
    assert mirror_before is not None
    result = transition(audit, world.namespace, attach_params(world, 50))
    assert [(a["verb"], a["kind"]) for a in result["actions"]] == [("patch", "TraefikService")]
    mirror_after = mirror_object(kube, world)
    assert mirror_after is not None
    expected = copy.deepcopy(mirror_before["spec"])
    expected["mirroring"]["mirrors"][0]["percent"] = 50
    assert mirror_after["spec"] == expected
    assert user_part(ingress_route(kube, world)) == ir_before


def test_real_traffic_at_50_percent(ramped: Route, traefik_api_get: Any, traffic: Any) -> None:
    world = ramped.world
    wait_mirror_live(traefik_api_get, world, 50)
    answered, copies = measure_mirroring(traffic, world)
    assert answered == {world.backends["stable"].name: 500}
    assert 248 <= copies <= 252, f"50% of 500 is 250 copies; got {copies}"


# --- disable: the route as the user wrote it ----------------------------------------------------------


def test_disable_without_restore_is_refused_while_attached(active: Route, kube: Any, audit: Any) -> None:
    world = active.world
    mark = audit.mark()
    refused = run_module("traefik_mirror", {**disable_params(world), "restore_ingress_to_wrr": False})
    assert refused.get("failed"), refused
    assert "restore_ingress_to_wrr" in refused["msg"]
    assert audit.writes_since(mark, namespace=world.namespace) == []
    assert mirror_object(kube, world) is not None


def test_disable_restores_the_route_exactly_and_traffic_info_sees_the_split(
    new_route: Callable[..., Route], kube: Any, audit: Any
) -> None:
    route = new_route("lc-disable", "active")
    world = route.world
    result = transition(audit, world.namespace, disable_params(world))
    assert [(a["verb"], a["kind"]) for a in result["actions"]] == [
        ("patch", "IngressRoute"),
        ("delete", "TraefikService"),
    ], "the route must be restored before the mirror is deleted"
    assert result["status"] == "absent"
    assert user_part(ingress_route(kube, world)) == route.written
    assert mirror_object(kube, world) is None
    # traefik_traffic_info sees the weighted split again, and no mirror of this route.
    info = traffic_info(world)
    assert info["distribution"]["traffic_split"]["type"] == "weighted"
    assert info["distribution"]["target"]["name"] == world.wrr
    assert not [m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror"]


# --- mirror over the weighted split (main_kind: TraefikService) --------------------------------------


def test_mirror_over_weighted_split_keeps_users_split(
    seed_world: Any, kube: Any, audit: Any, traefik_api_get: Any, traffic: Any
) -> None:
    w = seed_world(app="wrr-app")
    args = {
        "route_name": w.route,
        "namespace": w.namespace,
        "main_service": w.wrr,
        "main_kind": "TraefikService",
        "mirror_service": w.service("staging"),
        "mirror_percent": 10,
        "attach_to_ingress": True,
    }
    result = transition(audit, w.namespace, args)
    assert result["status"] == "active"
    dist = traffic_info(w)["distribution"]
    assert dist["traffic_split"]["type"] == "mirror" and dist["traffic_split"]["wraps_weighted"] is True
    shares = {s["name"]: s["user_share_percent"] for s in dist["main_sink"]}
    assert shares == {w.service("stable"): 50, w.service("canary"): 50}
    assert [(s["name"], s["percent"]) for s in dist["shadow"]] == [(w.service("staging"), 10)]

    wait_mirror_live(traefik_api_get, w, 10)
    staging = w.backends["staging"]
    before = settled_count(staging)
    answered = traffic(w.host, n=200)
    assert answered.by_status == {200: 200}
    # Traefik's weighted round robin is deterministic: 50/50 stays 100/100 (a couple off for the reload).
    counts = answered.by_body
    assert set(counts) == {w.backends["stable"].name, w.backends["canary"].name}
    assert all(98 <= counts[name] <= 102 for name in counts), counts
    assert 18 <= settled_count(staging) - before <= 22

    off = run_module("traefik_mirror", disable_params(w))
    assert off["changed"] and off["status"] == "absent"
    assert ingress_route(kube, w)["spec"]["routes"][0]["services"] == [{"name": w.wrr, "kind": "TraefikService"}]
