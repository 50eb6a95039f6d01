"""Faults (issue 11, item 4): the Kubernetes API stops, or answers too slowly, between the two writes of
an attach and of a teardown; Prometheus goes away during the gate. Run against the real cluster under
user load (at least 100 requests/s through Traefik) with the API's watch on the namespace.

The module reaches the apiserver through ``faultproxy.FaultProxy`` on loopback (the rest of the cluster,
Traefik included, keeps its direct connection: users are served throughout, as in production when the
control plane, not the data plane, has trouble). The proxy counts the module's writes and starts the fault
right after the first one answered:

- ``down``: the port closes, the next write is refused (never sent);
- ``slow``: the next write is forwarded (the API applies it) but its answer comes after the module stopped
  waiting (``request_timeout``), so the module cannot know whether it was applied.

Checked each time: the module fails within about its request timeout; its message says what was written,
what state the route is in and how to finish; the cluster is in exactly that state; a rerun (the API
healed) converges; no user request failed, the shadow answered none, and no recorded version of the
namespace has a route pointing at a missing object.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import DOWN, SLOW, FaultProxy, cluster_ca, cluster_server, kubeconfig_through
from modrun import run_module
from routes import launch_vars, mirror_exists, route_as_written, routes_through_mirror
from shadow import finish_playbook, start_playbook
from userload import LoadBench, check_users, traefik_back_on_the_split, traefik_routes

pytestmark = pytest.mark.integration

SHADOW = "staging"
REQUEST_TIMEOUT = 5  # seconds, through K8S_AUTH_REQUEST_TIMEOUT (the default is 20)


@pytest.fixture
def api_proxy(admin_kubeconfig: Path) -> Iterator[FaultProxy]:
    with FaultProxy(cluster_server(admin_kubeconfig), cluster_ca(admin_kubeconfig)) as proxy:
        yield proxy


# What each fault leaves, as the module must describe it and as the cluster must be:
# (route goes through the mirror, mirror exists, the sentence about the unanswered write, the route state)
EXPECTED = {
    ("attach", DOWN): (False, True, "Unanswered (it was not sent): patch IngressRoute", "is unchanged"),
    ("attach", SLOW): (
        True,
        True,
        "Unanswered (the API may or may not have applied it): patch IngressRoute",
        "either routes as before or already goes through the mirror",
    ),
    ("teardown", DOWN): (False, True, "Unanswered (it was not sent): delete TraefikService", "is restored"),
    ("teardown", SLOW): (
        False,
        False,
        "Unanswered (the API may or may not have applied it): delete TraefikService",
        "is restored",
    ),
}


@pytest.mark.parametrize("mode", [DOWN, SLOW])
@pytest.mark.parametrize("operation", ["attach", "teardown"])
def test_the_api_failing_between_two_writes_is_told_and_a_rerun_converges(
    operation: str, mode: str, load_bench: LoadBench, api_proxy: FaultProxy
) -> None:
    world, before = load_bench.seed(f"fault-{operation}-{mode}")
    kube, traefik_api_get = load_bench.kube, load_bench.traefik_api_get
    label = f"{operation}/{mode}"
    mirror = f"{world.route}-mirror"
    kubeconfig = kubeconfig_through(
        api_proxy, load_bench.admin_kubeconfig, load_bench.tmp_path / "through-proxy.kubeconfig"
    )
    attach = {
        "kubeconfig": str(kubeconfig),
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service(SHADOW),
        "mirror_percent": 20,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
    }
    teardown = {
        "kubeconfig": str(kubeconfig),
        "route_name": world.route,
        "namespace": world.namespace,
        "state": "absent",
    }
    args = attach if operation == "attach" else teardown
    timeout_env = {"K8S_AUTH_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT)}

    with load_bench.watch(world) as watch:
        load = load_bench.user_load(world)
        if operation == "teardown":
            assert run_module("traefik_mirror", attach).get("changed")
            traefik_routes(traefik_api_get, world, mirror, 20)
        time.sleep(1)

        api_proxy.fail_after_writes(1, mode, delay=REQUEST_TIMEOUT + 5)
        writes_before = len(api_proxy.writes())
        started = time.monotonic()
        failed = run_module("traefik_mirror", args, env=timeout_env)
        took = time.monotonic() - started
        fault_writes = api_proxy.writes()[writes_before:]
        time.sleep(1)  # users keep going while the route is half-done
        through_mirror, mirror_left = routes_through_mirror(kube, world), mirror_exists(kube, world)

        api_proxy.heal()
        rerun = run_module("traefik_mirror", args, env=timeout_env)
        if operation == "attach":
            traefik_routes(traefik_api_get, world, mirror, 20)
        else:
            traefik_back_on_the_split(traefik_api_get, world)
        time.sleep(1)
        load.stop()

    msg = failed.get("msg", "")
    print(
        f"\n[{label}] failed after {took:.1f} s (request_timeout {REQUEST_TIMEOUT} s); writes reaching the proxy: "
        f"{[(w.method, w.outcome) for w in fault_writes]}\n[{label}] message: {msg}\n"
        f"[{label}] rerun: changed={rerun.get('changed')} status={rerun.get('status')} "
        f"actions={[a['summary'] for a in rerun.get('actions', [])]}"
    )
    want_through, want_mirror, unanswered, route_state = EXPECTED[(operation, mode)]
    assert failed.get("failed") is True, failed
    # The operation's two writes: the first was answered; the second was refused (down: it never reached
    # the proxy) or forwarded and answered too late (slow).
    writes = ["POST", "PATCH"] if operation == "attach" else ["PATCH", "DELETE"]
    reached = [(w.method, w.outcome) for w in fault_writes]
    assert reached == (
        [(writes[0], reached[0][1])] if mode == DOWN else [(writes[0], reached[0][1]), (writes[1], "held")]
    )
    assert reached[0][1].startswith("20"), reached
    # Within its timeout: the unanswered write takes at most REQUEST_TIMEOUT, nothing is retried blindly.
    assert took < REQUEST_TIMEOUT + 15, f"the module took {took:.1f} s"
    assert "Done before that: " in msg and unanswered in msg and route_state in msg, msg
    assert "rerun this task" in msg, msg
    assert failed["done"] and failed["unanswered"], failed
    # The message tells the truth about the cluster.
    assert (through_mirror, mirror_left) == (want_through, want_mirror), (through_mirror, mirror_left, msg)
    # The rerun converges.
    assert not rerun.get("failed"), rerun
    if operation == "attach":
        assert rerun["status"] == "active" and routes_through_mirror(kube, world)
    else:
        assert (
            rerun["status"] == "absent" and route_as_written(kube, world) == before and not mirror_exists(kube, world)
        )
    check_users(load, world, SHADOW, label)
    assert not watch.errors, watch.errors
    assert watch.dangling_moments() == [], "\n".join(watch.timeline())
    print(f"[{label}] watch: {watch.versions()} versions recorded, none dangling")


def test_a_refused_connection_before_any_write_changes_nothing_and_says_so(
    seed_world: Callable[..., Any], kube: Any, admin_kubeconfig: Path, api_proxy: FaultProxy, tmp_path: Path
) -> None:
    world = seed_world(app="fault-first")
    before = route_as_written(kube, world)
    kubeconfig = kubeconfig_through(api_proxy, admin_kubeconfig, tmp_path / "through-proxy.kubeconfig")
    api_proxy.fail_after_writes(0, DOWN)
    failed = run_module(
        "traefik_mirror",
        {"kubeconfig": str(kubeconfig), "route_name": world.route, "namespace": world.namespace, "mirror_percent": 5},
    )
    assert failed.get("failed") is True and failed["field"] == "host", failed
    assert "cannot connect to the Kubernetes API" in failed["msg"] and "Nothing was written" in failed["msg"], failed
    assert route_as_written(kube, world) == before and not mirror_exists(kube, world)


def test_prometheus_going_away_during_the_gate_fails_closed_and_rolls_back(load_bench: LoadBench) -> None:
    world, before = load_bench.seed("fault-prometheus")
    kube, traefik_api_get = load_bench.kube, load_bench.traefik_api_get
    mirror = f"{world.route}-mirror"
    output = load_bench.tmp_path / "ansible-playbook.out"
    with FaultProxy(os.environ["PROMETHEUS_URL"]) as prometheus, load_bench.watch(world) as watch:
        load = load_bench.user_load(world)
        time.sleep(12)  # a little history for the gate's baseline
        launch = launch_vars(world, SHADOW, interval=5, prometheus_url=prometheus.url)
        process = start_playbook("shadow_launch", launch, output)
        deadline = time.monotonic() + 90
        while not mirror_exists(kube, world) or not routes_through_mirror(kube, world):
            assert time.monotonic() < deadline and process.poll() is None, output.read_text()
            time.sleep(0.2)
        traefik_routes(traefik_api_get, world, mirror, 50)
        time.sleep(6)  # the gate is asking: the preflight's question and the first check went through
        asked_before = len(prometheus.log)
        prometheus.fail_after_writes(0, DOWN)
        stopped = time.monotonic()
        out = finish_playbook(process, output, timeout=120)
        ended = time.monotonic() - stopped
        traefik_back_on_the_split(traefik_api_get, world)
        time.sleep(1)
        load.stop()
    print(
        f"\n[prometheus down] {asked_before} requests answered by Prometheus before it went away; the playbook "
        f"ended {ended:.1f} s later with rc {process.returncode}"
    )
    assert asked_before > 0, "the gate never asked Prometheus through the proxy"
    assert process.returncode != 0, out
    assert f"Cannot reach Prometheus at {prometheus.url}" in out, out
    assert "ROLLED BACK, the route is back as it was before the launch" in out, out
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)
    check_users(load, world, SHADOW, "prometheus down")
    assert not watch.errors and watch.dangling_moments() == [], "\n".join(watch.timeline())
