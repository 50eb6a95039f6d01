"""Live load and never dangling (issue 11, items 1 and 2), against the real apiserver, Traefik and
Prometheus.

Users send at least 100 requests per second through Traefik during three cycles:

- the modules' whole cycle: enable -> attach -> ramp -> teardown (``traefik_mirror`` run as Ansible runs it);
- the role's rollback path: the shadow starts failing during the bake and the gate rolls back;
- the role's interrupted path: SIGINT during the bake, and the controller's watchdog restores the route.

Every response is counted at the client and at the backends: no user request fails, and the shadow
(``<app>-staging``, never one of the route's user-facing backends) answers no user at any time, in
particular between the attach and the restore as the IngressRoute's watch saw them. Meanwhile the API's
watch records every version of the namespace's IngressRoutes, TraefikServices and Services: at no recorded
version does a route reach an object that does not exist. After each step Traefik's own API says the
router is enabled and its service loaded without errors. ``-s`` prints the figures.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubewatch import NamespaceWatch
from modrun import run_module
from routes import API, launch_vars, mirror_exists, route_as_written, routes_through_mirror
from shadow import finish_playbook, start_playbook
from userload import (
    LoadBench,
    UserLoad,
    check_users,
    traefik_back_on_the_split,
    traefik_forgot,
    traefik_loaded,
    traefik_routes,
)

pytestmark = pytest.mark.integration

SHADOW = "staging"  # the shadow backend: not in the route's weighted split, so it may never answer a user


def attached_window(watch: NamespaceWatch, world: Any) -> tuple[float, float]:
    """When the watch saw the IngressRoute start and stop routing through the mirror."""
    mirror = f"{world.route}-mirror"
    start = end = None
    for event in watch.ordered():
        if event.kind != "IngressRoute" or event.name != world.route:
            continue
        through = any(
            ref.get("name") == mirror for route in event.obj["spec"].get("routes", []) for ref in route["services"]
        )
        if through and start is None:
            start = event.at
        elif not through and start is not None and end is None:
            end = event.at
    assert start is not None and end is not None, f"attach and restore not both seen: {watch.timeline()}"
    return start, end


def check_watch(watch: NamespaceWatch, load: UserLoad, world: Any, label: str) -> None:
    start, end = attached_window(watch, world)
    answered, errors = load.between(start, end)
    print(
        f"[{label}] watch: {watch.versions()} versions recorded ({watch.versions('IngressRoute')} IngressRoute, "
        f"{watch.versions('TraefikService')} TraefikService); mirror attached for {end - start:.1f} s, "
        f"user responses meanwhile by {dict(answered)}, errors {errors}"
    )
    assert not watch.errors, watch.errors
    assert watch.versions("IngressRoute") >= 2 and watch.versions("TraefikService") >= 2, watch.timeline()
    assert watch.dangling_moments() == [], "\n".join(watch.timeline())
    assert answered.get(world.service(SHADOW), 0) == 0 and errors == 0
    assert sum(answered.values()) > 0, "no user traffic while attached: the window is wrong"


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError(f"{what} not seen within {timeout:.0f} s")


def start_launch(bench: LoadBench, world: Any, output: Path, **extra: Any) -> subprocess.Popen[bytes]:
    """``shadow_launch`` in the background, returned once Traefik routes the world through its mirror."""
    process = start_playbook("shadow_launch", launch_vars(world, SHADOW, **extra), output)
    wait_until(lambda: routes_through_mirror(bench.kube, world), 90, "attach")
    traefik_routes(bench.traefik_api_get, world, f"{world.route}-mirror", 50)
    return process


def check_left_as_found(
    load: UserLoad, watch: NamespaceWatch, kube: Any, world: Any, before: dict[str, Any], label: str
) -> None:
    """No user failed or met the shadow, no version dangled, and the route is as its user wrote it."""
    check_users(load, world, SHADOW, label)
    check_watch(watch, load, world, label)
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)


def test_the_modules_whole_cycle_under_load_never_fails_a_user(load_bench: LoadBench) -> None:
    world, before = load_bench.seed("live-cycle")
    kube, traefik_api_get = load_bench.kube, load_bench.traefik_api_get
    mirror, wrr = f"{world.route}-mirror", world.wrr
    base = {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service(SHADOW),
    }
    steps: list[str] = []
    with load_bench.watch(world) as watch:
        load = load_bench.user_load(world)
        time.sleep(2)

        enabled = run_module("traefik_mirror", {**base, "mirror_percent": 10})
        assert enabled.get("changed") and enabled["status"] == "inactive", enabled
        traefik_loaded(traefik_api_get, world, mirror)
        waited = traefik_routes(traefik_api_get, world, wrr)
        steps.append(f"enable: Traefik still routes through {wrr}, mirror loaded ({waited:.1f} s)")

        for step, percent in (("attach", 10), ("ramp", 50)):
            attached = run_module(
                "traefik_mirror",
                {**base, "mirror_percent": percent, "attach_to_ingress": True, "confirm_end_weighted_split": True},
            )
            assert attached.get("changed") and attached["status"] == "active", (step, attached)
            waited = traefik_routes(traefik_api_get, world, mirror, percent)
            steps.append(f"{step}: router -> {mirror} at {percent}% ({waited:.1f} s)")
            time.sleep(3)

        torn_down = run_module(
            "traefik_mirror", {"route_name": world.route, "namespace": world.namespace, "state": "absent"}
        )
        assert torn_down.get("changed") and torn_down["status"] == "absent", torn_down
        steps.append(f"teardown: router -> {wrr} ({traefik_routes(traefik_api_get, world, wrr):.1f} s)")
        traefik_forgot(traefik_api_get, world, mirror)
        time.sleep(2)
        load.stop()

    print("\n" + "\n".join(f"[cycle] Traefik after {step}" for step in steps))
    check_left_as_found(load, watch, kube, world, before, "cycle")
    assert world.backends[SHADOW].counters()["total"] > 0, "the shadow got no copies"


def test_the_roles_rollback_under_load_never_fails_a_user(load_bench: LoadBench) -> None:
    world, before = load_bench.seed("live-rollback")
    shadow = world.backends[SHADOW]
    output = load_bench.tmp_path / "ansible-playbook.out"
    with load_bench.watch(world) as watch:
        load = load_bench.user_load(world)
        time.sleep(12)  # a little history for the gate's baseline
        try:
            process = start_launch(load_bench, world, output)
            time.sleep(3)
            shadow.set_knobs(error_rate=0.3)
            failing = time.monotonic()
            out = finish_playbook(process, output, timeout=180)
        finally:
            shadow.set_knobs(error_rate=0)
        restored_after = time.monotonic() - failing
        traefik_back_on_the_split(load_bench.traefik_api_get, world)
        time.sleep(1)
        load.stop()

    print(f"\n[rollback] shadow failing; playbook ended {restored_after:.1f} s later (rc {process.returncode})")
    assert process.returncode != 0, out
    assert "anomalous" in out and "rolled back" in out, out
    check_left_as_found(load, watch, load_bench.kube, world, before, "rollback")
    assert shadow.counters()["errors"] > 0, "the shadow's failures must have happened (on copies)"


def test_an_interrupted_launch_under_load_never_fails_a_user(load_bench: LoadBench) -> None:
    world, before = load_bench.seed("live-sigint")
    kube = load_bench.kube
    output = load_bench.tmp_path / "ansible-playbook.out"
    with load_bench.watch(world) as watch:
        load = load_bench.user_load(world)
        process = start_launch(load_bench, world, output, bake_seconds=300)
        time.sleep(5)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        out = finish_playbook(process, output, timeout=60)
        restored = wait_until(lambda: not mirror_exists(kube, world), 60, "the watchdog's restore")
        traefik_back_on_the_split(load_bench.traefik_api_get, world)
        time.sleep(1)
        load.stop()

    print(
        f"\n[SIGINT] ansible-playbook exited {process.returncode}; "
        f"restored {restored - interrupted:.1f} s after the signal"
    )
    assert process.returncode != 0, out
    check_left_as_found(load, watch, kube, world, before, "SIGINT")


def test_the_watch_sees_a_dangling_route_when_there_is_one(
    kube: Any, admin_kubeconfig: Path, make_namespace: Callable[[str], str]
) -> None:
    """The never-dangling check is only worth something if it fails on a dangling route: make one."""
    namespace = make_namespace("live-dangling")
    route = {
        "apiVersion": API,
        "kind": "IngressRoute",
        "metadata": {"name": "r", "namespace": namespace},
        "spec": {
            "entryPoints": ["web"],
            "routes": [
                {
                    "match": "Host(`dangling.test`)",
                    "kind": "Rule",
                    "services": [{"name": "m", "kind": "TraefikService"}],
                }
            ],
        },
    }
    mirror = {
        "apiVersion": API,
        "kind": "TraefikService",
        "metadata": {"name": "m", "namespace": namespace},
        "spec": {"mirroring": {"name": "gone", "port": 80, "mirrors": [{"name": "gone", "port": 80, "percent": 5}]}},
    }
    with NamespaceWatch(admin_kubeconfig, namespace) as watch:
        kube.apply(route)
        kube.apply(mirror)
        kube.delete(API, "TraefikService", "m", namespace)
    problems = watch.dangling_moments()
    assert any("TraefikService m does not exist" in p for p in problems), problems
    assert any("Service gone does not exist" in p for p in problems), problems
    assert any(p.startswith("after DELETED TraefikService m") for p in problems), problems
