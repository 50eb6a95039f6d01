"""The demo's fault: make the shadow fail in the middle of a bake and time what the gate does about it.

Waits until the IngressRoute (or HTTPRoute) routes through its mirror, lets the bake run for ``after`` seconds, sets
the shadow backend's error rate, then waits until the route no longer goes through the mirror (the
rollback), repairs the backend and reports the times. The repair comes a poll after the rollback, when
Traefik may already route users again: fail a backend that no users' split contains (the demo fails
api-service-staging), so that only copies ever meet the failure. Bounded in time; talks only to the
local cluster and backends on loopback.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .backends import BackendHandle
from .gateway import GROUP
from .kube import Kube


def _routes_through(kube: Kube, api: str, namespace: str, route: str, mirror: str) -> bool:
    """Whether the IngressRoute ``route`` (else the Gateway API HTTPRoute of that name) goes through ``mirror``."""
    ir = kube.get(api, "IngressRoute", route, namespace)
    if ir is not None:
        return any(
            service.get("name") == mirror for r in ir["spec"].get("routes", []) for service in r.get("services", [])
        )
    http_route = kube.get(f"{GROUP}/v1", "HTTPRoute", route, namespace)
    return http_route is not None and any(
        ref.get("kind") == "TraefikService" and ref.get("name") == mirror
        for rule in http_route["spec"].get("rules", [])
        for ref in rule.get("backendRefs") or []
    )


def _wait(condition: Any, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.2)
    raise TimeoutError(f"{what} not seen within {timeout:.0f}s")


def inject_shadow_failure(
    kube: Kube,
    backend: BackendHandle,
    *,
    namespace: str,
    route: str,
    after: float,
    error_rate: float,
    timeout: float = 600.0,
    report_path: str | None = None,
    api: str = "traefik.io/v1alpha1",
) -> dict[str, Any]:
    mirror = f"{route}-mirror"
    attached = _wait(lambda: _routes_through(kube, api, namespace, route, mirror), timeout, "the attach")
    time.sleep(max(0.0, attached + after - time.monotonic()))
    if not _routes_through(kube, api, namespace, route, mirror):
        raise RuntimeError(f"the launch was rolled back before the fault was injected ({after:.0f}s after the attach)")
    backend.set_knobs(error_rate=error_rate)
    failing_at = time.monotonic()
    failing_wall = time.time()
    try:
        restored = _wait(lambda: not _routes_through(kube, api, namespace, route, mirror), timeout, "the rollback")
    finally:
        backend.set_knobs(error_rate=0)
    summary = {
        "error_rate": error_rate,
        "failing_after_attach_seconds": round(failing_at - attached, 1),
        "failing_since": time.strftime("%H:%M:%S", time.localtime(failing_wall)),
        "restored_after_seconds": round(restored - failing_at, 1),
        "shadow_errors_on_copies": int(backend.counters()["errors"]),
    }
    if report_path:
        with open(report_path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, indent=2)
    return summary
