"""traefik_mirror with mirror_methods on the real apiserver + Traefik: users send GETs, HEADs and POSTs
through the route; only the chosen methods are copied to the shadow (counted at the shadow backend) while
every user request, POST included, is answered by the main service. Check mode writes nothing, a rerun
writes nothing, and the teardown gives the IngressRoute back exactly (spec, labels, annotations).

The weighted split sends every user to stable (canary weight 0), so the canary only ever sees copies.
"""

from __future__ import annotations

import copy
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from modrun import run_module
from routes import apply_as_written, launch_vars, mirror_exists, route_as_written, user_part
from shadow import finish_playbook, start_playbook, wait_mirror_live
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

API = "traefik.io/v1alpha1"
USERS_ON_STABLE = {"stable": 100, "canary": 0}


def ingress_route(kube: Any, world: Any) -> dict[str, Any]:
    obj: dict[str, Any] = kube.get(API, "IngressRoute", world.route, world.namespace)
    return obj


def attach_args(world: Any, methods: list[str]) -> dict[str, Any]:
    return {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "mirror_percent": 100,
        "attach_to_ingress": True,
        "mirror_methods": methods,
    }


def attach_and_rerun(audit: Any, kube: Any, world: Any, methods: list[str]) -> dict[str, Any]:
    """Check mode (no write), the attach, a rerun (no write); returns the route added by the attach."""
    args = attach_args(world, methods)
    mark = audit.mark()
    checked = run_module("traefik_mirror", args, check=True, diff=True)
    assert checked["changed"] and not checked.get("failed"), checked
    assert audit.writes_since(mark, namespace=world.namespace) == [], "check mode wrote"
    attached = run_module("traefik_mirror", args)
    assert attached["changed"] and attached["status"] == "active", attached
    assert attached["ingress_route"]["after"] == checked["ingress_route"]["after"]
    mark = audit.mark()
    rerun = run_module("traefik_mirror", args)
    assert not rerun["changed"] and rerun["status"] == "active", rerun
    assert audit.writes_since(mark, namespace=world.namespace) == [], "an idempotent rerun wrote"
    added: dict[str, Any] = ingress_route(kube, world)["spec"]["routes"][-1]
    return added


def copies_settled(world: Any, expected: dict[str, int], timeout: float = 15) -> dict[str, int]:
    """The shadow's requests by "METHOD path" once the expected copies arrived (they are sent after the
    users' answers) and a moment more, so that a late unwanted copy is counted too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = dict(world.backends["canary"].counters()["by_method_path"])
        if all(counts.get(key, 0) >= want for key, want in expected.items()):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    settled: dict[str, int] = world.backends["canary"].counters()["by_method_path"]
    return dict(settled)


def start_gets_only_launch(world: Any, output: Path, bake_seconds: int) -> subprocess.Popen[bytes]:
    """playbooks/shadow_launch.yml copying only GETs, judged every 5 s over 10 s windows, without a report."""
    launch = launch_vars(
        world,
        bake_seconds=bake_seconds,
        interval=5,
        window="10s",
        history_windows=3,
        min_requests=20,
        mirror_methods=["GET"],
        report=False,
    )
    return start_playbook("shadow_launch", launch, output)


def teardown_restores(kube: Any, world: Any, written: dict[str, Any]) -> None:
    removed = run_module("traefik_mirror", {"route_name": world.route, "namespace": world.namespace, "state": "absent"})
    assert removed["changed"] and removed["status"] == "absent", removed
    assert user_part(ingress_route(kube, world)) == written
    assert kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace) is None


@dataclass
class MethodsStand:
    """The fixtures these tests share."""

    seed_world: Callable[..., Any]
    kube: Any
    audit: Any
    traffic: Callable[..., Any]
    traefik_api_get: Callable[[str], Any]
    traffic_for: Callable[[Any, float], SteadyTraffic]
    tmp_path: Path

    def fixtures(self) -> tuple[Any, Any, Callable[..., Any], Callable[[str], Any]]:
        """kube, audit, traffic and traefik_api_get, as the tests name them."""
        return self.kube, self.audit, self.traffic, self.traefik_api_get

    def seed(self, app: str) -> Any:
        """A fresh world for ``app`` whose users all go to stable."""
        return self.seed_world(app=app, weights=USERS_ON_STABLE)


@pytest.fixture
def methods_stand(
    seed_world: Callable[..., Any],
    kube: Any,
    audit: Any,
    traffic: Callable[..., Any],
    traefik_api_get: Callable[[str], Any],
    traffic_for: Callable[[Any, float], SteadyTraffic],
    tmp_path: Path,
) -> MethodsStand:
    return MethodsStand(seed_world, kube, audit, traffic, traefik_api_get, traffic_for, tmp_path)


def test_only_gets_and_heads_reach_the_shadow(methods_stand: MethodsStand) -> None:
    kube, audit, traffic, traefik_api_get = methods_stand.fixtures()
    world = methods_stand.seed("mm-get")
    original = ingress_route(kube, world)
    written = user_part(original)

    added = attach_and_rerun(audit, kube, world, ["GET", "HEAD"])
    assert added == {
        "match": f"(Host(`{world.host}`)) && (Method(`GET`) || Method(`HEAD`))",
        "kind": "Rule",
        "middlewares": original["spec"]["routes"][0]["middlewares"],
        "priority": len(f"Host(`{world.host}`)") + 1,
        "services": [{"name": f"{world.route}-mirror", "kind": "TraefikService"}],
    }, "just above the original route's priority (its rule's length)"
    assert ingress_route(kube, world)["spec"]["routes"][0] == original["spec"]["routes"][0]

    wait_mirror_live(traefik_api_get, world, percent=100)
    world.reset_backends()
    gets = traffic(world.host, n=40)
    posts = traffic(world.host, n=40, method="POST", body=b'{"order": 1}')
    heads = traffic(world.host, n=10, method="HEAD")
    copies = copies_settled(world, {"GET /": 40, "HEAD /": 10})
    print(f"\nshadow copies by method: {copies}; main: {world.backends['stable'].counters()['by_method_path']}")

    assert gets.by_status == {200: 40} and posts.by_status == {200: 40} and heads.by_status == {200: 10}
    assert set(gets.bodies) == set(posts.bodies) == {world.service("stable")}
    assert copies == {"GET /": 40, "HEAD /": 10}, "POSTs must never be copied"
    assert world.backends["stable"].counters()["by_method_path"] == {"GET /": 40, "POST /": 40, "HEAD /": 10}

    teardown_restores(kube, world, written)


def test_an_explicit_priority_is_beaten_without_overtaking_a_higher_route(methods_stand: MethodsStand) -> None:
    kube, audit, traffic, traefik_api_get = methods_stand.fixtures()
    world = methods_stand.seed("mm-prio")
    ir = ingress_route(kube, world)
    ir["spec"]["routes"][0]["priority"] = 10
    ir["spec"]["routes"].append(
        {
            "match": f"Host(`{world.host}`) && PathPrefix(`/healthz`)",
            "kind": "Rule",
            "priority": 100,
            "services": [{"name": world.service("stable"), "port": world.port("stable")}],
        }
    )
    apply_as_written(kube, ir)
    written = user_part(ingress_route(kube, world))

    added = attach_and_rerun(audit, kube, world, ["GET"])
    assert added["priority"] == 11 and added["middlewares"] == [{"name": world.middleware}], added
    assert added["match"] == f"(Host(`{world.host}`)) && Method(`GET`)"

    wait_mirror_live(traefik_api_get, world, percent=100)
    world.reset_backends()
    gets = traffic(world.host, n=30)
    health = traffic(world.host, n=10, path="/healthz")
    posts = traffic(world.host, n=20, method="POST", body=b"x")
    copies = copies_settled(world, {"GET /": 30})
    print(f"\nshadow copies by method: {copies}")

    assert gets.by_status == {200: 30} and health.by_status == {200: 10} and posts.by_status == {200: 20}
    assert set(gets.bodies) == set(health.bodies) == set(posts.bodies) == {world.service("stable")}
    assert copies == {"GET /": 30}, "the /healthz route (priority 100) and POSTs are not copied"

    teardown_restores(kube, world, written)


def test_a_longer_rule_of_another_ingress_route_keeps_its_gets(methods_stand: MethodsStand) -> None:
    """Another IngressRoute on the same entry point sends `Host && PathPrefix(/api)` to staging: its longer rule
    beats the seed's `Host(...)` today. The added route's rule is longer still, so unset it would take the GETs
    of /api; its priority is set just above the seed route's instead, and staging keeps every /api request."""
    kube, audit, traffic, traefik_api_get = methods_stand.fixtures()
    world = methods_stand.seed("mm-rival")
    seed = ingress_route(kube, world)
    rule = seed["spec"]["routes"][0]["match"]
    other = {
        "apiVersion": seed["apiVersion"],
        "kind": "IngressRoute",
        "metadata": {"name": f"{world.route}-api", "namespace": world.namespace},
        "spec": {
            **({"entryPoints": seed["spec"]["entryPoints"]} if seed["spec"].get("entryPoints") else {}),
            "routes": [
                {
                    "match": f"{rule} && PathPrefix(`/api`)",
                    "kind": "Rule",
                    "services": [{"name": world.service("staging"), "port": world.port("staging")}],
                }
            ],
        },
    }
    kube.apply(other, world.namespace)
    try:
        deadline = time.monotonic() + 20
        while set(traffic(world.host, path="/api").bodies) != {world.service("staging")}:
            assert time.monotonic() < deadline, "Traefik never routed the other IngressRoute"
            time.sleep(0.2)
        written = user_part(ingress_route(kube, world))
        other_written = kube.get(API, "IngressRoute", other["metadata"]["name"], world.namespace)["spec"]

        added = attach_and_rerun(audit, kube, world, ["GET", "HEAD"])
        combined = f"({rule}) && (Method(`GET`) || Method(`HEAD`))"
        assert len(combined) > len(other["spec"]["routes"][0]["match"]), "the case needs the longer added rule"
        assert added["match"] == combined and added["priority"] == len(rule) + 1, added

        wait_mirror_live(traefik_api_get, world, percent=100)
        world.reset_backends()
        api_gets = traffic(world.host, n=30, path="/api")
        api_posts = traffic(world.host, n=10, path="/api", method="POST", body=b"x")
        gets = traffic(world.host, n=20)
        copies = copies_settled(world, {"GET /": 20})
        staging = world.backends["staging"].counters()["by_method_path"]
        print(f"\n[rival route] priority {added['priority']}; staging {staging}; shadow copies {copies}")

        assert api_gets.by_status == {200: 30} and set(api_gets.bodies) == {world.service("staging")}
        assert api_posts.by_status == {200: 10} and gets.by_status == {200: 20}
        assert staging == {"GET /api": 30, "POST /api": 10}, "the other IngressRoute keeps every /api request"
        assert copies == {"GET /": 20}, "no /api request is copied"
        assert world.backends["stable"].counters()["by_method_path"] == {"GET /": 20}

        teardown_restores(kube, world, written)
        assert kube.get(API, "IngressRoute", other["metadata"]["name"], world.namespace)["spec"] == other_written
    finally:
        kube.delete(API, "IngressRoute", other["metadata"]["name"], world.namespace)


def test_under_the_operator_role_the_namespace_is_checked_and_no_room_is_refused(
    seed_world: Callable[..., Any],
    kube: Any,
    audit: Any,
    make_namespace: Callable[[str], str],
    bind_operator: Callable[[str], None],
    operator_kubeconfig: Path,
) -> None:
    """With the shipped operator Role the cluster-wide list of IngressRoutes is refused (403): the route's
    namespace is listed instead and a warning says so. A route there with exactly the priority the added route
    needs is named in a refusal that writes nothing; with room, the attach goes through."""
    namespace = make_namespace("mm-role")
    bind_operator(namespace)
    world = seed_world(app="mm-role", namespace=namespace, weights=USERS_ON_STABLE)
    seed = ingress_route(kube, world)
    rule = seed["spec"]["routes"][0]["match"]
    written = user_part(seed)
    other: dict[str, Any] = {
        "apiVersion": seed["apiVersion"],
        "kind": "IngressRoute",
        "metadata": {"name": f"{world.route}-api", "namespace": namespace},
        "spec": {
            "routes": [
                {
                    "match": f"{rule} && PathPrefix(`/api`)",
                    "kind": "Rule",
                    "priority": len(rule) + 1,
                    "services": [{"name": world.service("staging"), "port": world.port("staging")}],
                }
            ]
        },
    }
    kube.apply(copy.deepcopy(other), namespace)
    args = {**attach_args(world, ["GET"]), "kubeconfig": str(operator_kubeconfig)}

    mark = audit.mark()
    refused = run_module("traefik_mirror", args)
    assert refused.get("failed") and refused.get("field") == "mirror_methods", refused
    assert f"route 0 of IngressRoute {namespace}/{world.route}-api has priority {len(rule) + 1}" in refused["msg"]
    assert audit.writes_since(mark, namespace=namespace) == [], "a refusal writes nothing"
    assert user_part(ingress_route(kube, world)) == written and not mirror_exists(kube, world)

    other["spec"]["routes"][0]["priority"] = len(rule) + 5
    kube.apply(copy.deepcopy(other), namespace)
    attached = run_module("traefik_mirror", args)
    assert attached["changed"] and attached["status"] == "active", attached
    assert ingress_route(kube, world)["spec"]["routes"][-1]["priority"] == len(rule) + 1
    warnings = [w for w in attached.get("warnings", []) if "could not be listed in all namespaces" in w]
    assert len(warnings) == 1 and f"namespace {namespace} only" in warnings[0], attached.get("warnings")
    print(f"\n[operator role] refused: {refused['msg'][:160]}...; warning: {warnings[0][:120]}...")

    removed = run_module(
        "traefik_mirror",
        {"route_name": world.route, "namespace": namespace, "state": "absent", "kubeconfig": str(operator_kubeconfig)},
    )
    assert removed["changed"] and removed["status"] == "absent", removed
    assert user_part(ingress_route(kube, world)) == written


def test_a_launch_that_mirrors_only_gets_passes_and_restores_the_route(methods_stand: MethodsStand) -> None:
    """playbooks/shadow_launch.yml with mirror_methods [GET] and the gate on: a healthy shadow passes its step,
    gets copies of the users' GETs and of no POST, and the teardown gives the IngressRoute back exactly."""
    kube, traffic = methods_stand.kube, methods_stand.traffic
    world = methods_stand.seed("mm-launch")
    before = route_as_written(kube, world)
    load = methods_stand.traffic_for(world, 20.0)  # users' GETs
    time.sleep(4)  # some history for the gate's baseline (the launch's preflight adds more)
    output = methods_stand.tmp_path / "launch.out"
    process = start_gets_only_launch(world, output, bake_seconds=10)
    world.reset_backends()
    posts = 0
    deadline = time.monotonic() + 90
    while process.poll() is None and time.monotonic() < deadline:
        answered = traffic(world.host, n=2, method="POST", body=b'{"order": 1}')
        assert answered.by_status == {200: 2} and set(answered.bodies) == {world.service("stable")}
        posts += 2
        time.sleep(0.2)
    out = finish_playbook(process, output, timeout=30)
    load.stop()
    copies = dict(world.backends["canary"].counters()["by_method_path"])
    checks = re.findall(r"50% step, \d+/10 s, check (\d+)/\d+: (\w+)", out)
    lines = re.findall(r"50% step, .*", out)
    print(f"\n[mirror_methods launch] {lines}; shadow copies: {copies}; user POSTs: {posts}")

    assert process.returncode == 0, out[-6000:]
    assert checks and checks[-1][1] == "ok", checks
    assert "50% of GET requests are copied to" in out, "the distribution sentence names the mirrored methods"
    assert copies.get("GET /", 0) > 0 and "POST /" not in copies, copies
    assert posts > 0 and load.errors() == 0
    # The gate compares the shadow's GET copies with the main's GETs only (Traefik's method label): the users'
    # 20 GET/s over the 10 s window, without their POSTs.
    main_requests = [int(n) for n in re.findall(r"\| main (\d+) req", out)]
    assert main_requests and max(main_requests) <= 240, main_requests
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)


def test_a_launch_that_mirrors_only_gets_rolls_a_failing_shadow_back(methods_stand: MethodsStand) -> None:
    """The same launch with a shadow that fails half its requests: the gate sees the GET copies fail, the
    launch is rolled back, users (GETs and POSTs) never see an error, no POST is ever copied, and the
    IngressRoute is back exactly as written. The canary's weight is 0, so it only ever gets copies and can
    fail from the start."""
    kube, traffic = methods_stand.kube, methods_stand.traffic
    world = methods_stand.seed("mm-fail")
    before = route_as_written(kube, world)
    canary = world.backends["canary"]
    canary.set_knobs(error_rate=0.5)
    load = methods_stand.traffic_for(world, 20.0)  # users' GETs
    time.sleep(4)  # some history for the gate's baseline
    output = methods_stand.tmp_path / "launch.out"
    started = time.monotonic()
    process = start_gets_only_launch(world, output, bake_seconds=30)
    posts: dict[int, int] = {}
    post_bodies: set[str] = set()
    deadline = started + 90
    while process.poll() is None and time.monotonic() < deadline:
        answered = traffic(world.host, n=2, method="POST", body=b'{"order": 1}')
        for status, count in answered.by_status.items():
            posts[status] = posts.get(status, 0) + count
        post_bodies.update(answered.bodies)
        time.sleep(0.2)
    out = finish_playbook(process, output, timeout=30)
    took = time.monotonic() - started
    load.stop()
    canary.set_knobs(error_rate=0)
    shadow = canary.counters()
    lines = re.findall(r"50% step, .*", out)
    print(
        f"\n[mirror_methods failing shadow] {lines}; ended after {took:.1f} s; "
        f"shadow copies {shadow['by_method_path']} "
        f"({shadow['errors']} answered 5xx); users: GET {dict(load.statuses)} (failures {load.failures}), "
        f"POST {posts}; main {world.backends['stable'].counters()['by_method_path']}"
    )

    assert process.returncode != 0, out[-6000:]
    assert "anomalous" in out and "rolled back" in out, out[-6000:]
    assert shadow["by_method_path"].get("GET /", 0) > 0 and shadow["errors"] > 0, shadow
    assert "POST /" not in shadow["by_method_path"], "a POST was copied to the shadow"
    assert load.errors() == 0 and load.sent > 0, dict(load.statuses)
    assert set(load.answered_by) == {world.service("stable")}, dict(load.answered_by)
    assert set(posts) == {200} and post_bodies == {world.service("stable")}, (posts, post_bodies)
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)
