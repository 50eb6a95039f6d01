"""The seed world's IngressRoute and mirror as the tests see them (what the user wrote, whether the route
goes through the mirror), the one module run that puts a route behind its mirror, and the variables of a
one-step shadow_launch."""

from __future__ import annotations

import copy
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from modrun import run_module
from shadow import wait_mirror_live
from steady import SteadyTraffic

API = "traefik.io/v1alpha1"
WINDOW = "10s"  # the gate's window and interval in launch_vars: Prometheus scrapes every second here
INTERVAL = 10


def route_as_written(kube: Any, world: Any) -> dict[str, Any]:
    """The IngressRoute's spec, labels and annotations: what a launch must leave exactly as it found."""
    ir = kube.get(API, "IngressRoute", world.route, world.namespace)
    meta = ir["metadata"]
    return {"spec": ir["spec"], "labels": meta.get("labels"), "annotations": meta.get("annotations")}


def user_part(obj: dict[str, Any]) -> dict[str, Any]:
    """What a user wrote of an object: spec, labels, annotations (no server bookkeeping), as a copy."""
    meta = obj["metadata"]
    return {
        "spec": copy.deepcopy(obj["spec"]),
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
    }


def apply_as_written(kube: Any, obj: dict[str, Any]) -> None:
    """Write back an object read from the API as a user would: its name, namespace, labels, annotations and
    spec (no resourceVersion or other server bookkeeping)."""
    meta = obj["metadata"]
    kube.apply(
        {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta},
            "spec": obj["spec"],
        },
        meta["namespace"],
    )


def mirror_exists(kube: Any, world: Any) -> bool:
    return kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace) is not None


def routes_through_mirror(kube: Any, world: Any) -> bool:
    ir = kube.get(API, "IngressRoute", world.route, world.namespace)
    mirror = f"{world.route}-mirror"
    return any(ref.get("name") == mirror for route in ir["spec"]["routes"] for ref in route["services"])


def fail_shadow_while_attached(
    kube: Any, world: Any, traefik_api_get: Callable[[str], Any], name: str = "fail-shadow"
) -> threading.Thread:
    """The new version fails half its requests once Traefik routes through the mirror (so only copies fail)
    and is repaired once the route is restored. Callers split their users between stable and staging: a
    repair can lose the race with a rollback, and the canary must then still never answer a user."""
    canary = world.backends["canary"]

    def run() -> None:
        deadline = time.monotonic() + 300
        while not routes_through_mirror(kube, world) and time.monotonic() < deadline:
            time.sleep(0.1)
        # Traefik applies the change a moment after the apiserver has it: until then users are still on
        # the weighted split, where a failing canary would answer some of them.
        wait_mirror_live(traefik_api_get, world)
        canary.set_knobs(error_rate=0.5)
        while routes_through_mirror(kube, world) and time.monotonic() < deadline:
            time.sleep(0.05)
        canary.set_knobs(error_rate=0)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def launch_vars(world: Any, shadow_role: str = "canary", **extra: Any) -> dict[str, Any]:
    """shadow_launch's variables: ``shadow_role`` mirrored at 50% behind the world's route for a 120 s bake,
    judged every INTERVAL over WINDOW against the cluster's Prometheus, torn down at the end."""
    return {
        "route_name": world.route,
        "route_namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service(shadow_role),
        "steps": [50],
        "bake_seconds": 120,
        "window": WINDOW,
        "interval": INTERVAL,
        "history_windows": 3,
        "min_requests": 20,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        "prometheus_url": os.environ["PROMETHEUS_URL"],
        "teardown": True,
        **extra,
    }


def attach_args(world: Any, percent: int, shadow_role: str = "canary") -> dict[str, Any]:
    """traefik_mirror's arguments that mirror ``percent`` % of the world's route from stable to ``shadow_role``
    and attach the mirror, signing off the end of the weighted split."""
    return {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service(shadow_role),
        "mirror_percent": percent,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
    }


def shadow_route(world: Any, traefik_api_get: Callable[[str], Any], percent: int) -> None:
    """Stable serves every user and the canary gets a copy of ``percent`` % of the requests, as
    traefik_mirror leaves it (attached, the weighted split's end signed off), once Traefik routes so."""
    result = run_module("traefik_mirror", attach_args(world, percent))
    assert not result.get("failed") and result["status"] == "active", result
    wait_mirror_live(traefik_api_get, world, percent)


@contextmanager
def shadowed_under_traffic(
    world: Any,
    traefik_api_get: Callable[[str], Any],
    traefik_url: str,
    percent: int,
    rate: float,
    limit: float,
    window_seconds: float,
) -> Iterator[SteadyTraffic]:
    """The route shadowed (``shadow_route``), counters zeroed, and ``rate`` user requests per second
    through Traefik until the block ends (``limit`` seconds at most); entered once the current window is
    full of mirrored traffic, and scraped. On the way out every backend's knobs are back to healthy."""
    shadow_route(world, traefik_api_get, percent)
    world.reset_backends()
    traffic = SteadyTraffic(traefik_url, world.host, rate, limit).start()
    try:
        time.sleep(window_seconds + 3)
        yield traffic
    finally:
        traffic.stop()
        for backend in world.backends.values():
            backend.set_knobs(error_rate=0, latency_ms=0)
