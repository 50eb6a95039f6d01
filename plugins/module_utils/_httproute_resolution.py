# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether Traefik can resolve an HTTPRoute backendRef to a TraefikService: before any write, and after attach.

Traefik's Gateway provider resolves ``{group: traefik.io, kind: TraefikService}`` only through a function the CRD
provider registers when it is enabled (pkg/provider/kubernetes/crd FillExtensionBuilderRegistry); otherwise, and
for any other group, the rule's backendRef is ``unsupported`` and, from Traefik 3.1 on, the route's status for
Traefik's controller gets ``ResolvedRefs=False`` (reason ``InvalidKind``). Two checks follow: the TraefikService
CRD must be served in traefik.io (discovery), and after a rule is pointed at the mirror, Traefik's status for
that generation must not say the reference is unresolved (users of the rule would get errors).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import (
    KIND_HTTP_ROUTE,
    TRAEFIK_CONTROLLER,
)

# The only group whose TraefikService Traefik v3's Gateway provider resolves (traefikv1alpha1.GroupName).
GATEWAY_TRAEFIK_GROUP = "traefik.io"
# How long Traefik gets to report the patched route's status (its provider throttles changes, 2 s by default).
STATUS_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.5
CRD_PROVIDER_HINT = (
    "Run Traefik with its CRD provider (--providers.kubernetescrd) beside the Gateway provider, watching this "
    "namespace, so that an HTTPRoute backendRef can name a TraefikService."
)


class CrdDiscovery(Protocol):
    def serves(self, group: str, plural: str) -> bool: ...


class RouteReader(Protocol):
    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...


def require_traefik_service_crd(client: CrdDiscovery, api_group: str, where: str) -> None:
    """Refuse (nothing written yet) when a backendRef to a TraefikService could not resolve on this cluster."""
    if api_group != GATEWAY_TRAEFIK_GROUP:
        raise DarklaunchError(
            f"{where}: Traefik's Gateway provider resolves a backendRef to a TraefikService only in the "
            f"{GATEWAY_TRAEFIK_GROUP} group (Traefik v3), and this run uses {api_group}. Install Traefik v3's CRDs "
            f"and set api_group to {GATEWAY_TRAEFIK_GROUP} (or leave it unset); nothing was changed.",
            field="api_group",
        )
    if not client.serves(GATEWAY_TRAEFIK_GROUP, "traefikservices"):
        raise DarklaunchError(
            f"{where}: the TraefikService CRD (traefikservices.{GATEWAY_TRAEFIK_GROUP}) is not served by this "
            "cluster's API server, so the mirror TraefikService the rule would point at could not exist and its "
            f"users would get errors. Install Traefik's CRDs. {CRD_PROVIDER_HINT} Nothing was changed.",
            field="route_kind",
        )


def traefik_parents(route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The route's status entries written by Traefik's Gateway controller (none on Traefik 3.0, which writes none)."""
    parents = ((route.get("status") or {}).get("parents")) or []
    return [p for p in parents if isinstance(p, Mapping) and p.get("controllerName") == TRAEFIK_CONTROLLER]


@dataclass(frozen=True)
class Resolution:
    """What Traefik said of one generation of the route: ``resolved`` True/False, or None when it said nothing."""

    resolved: bool | None
    message: str = ""


def resolution_of(route: Mapping[str, Any], generation: int) -> Resolution:
    """Traefik's ResolvedRefs for ``generation`` (or a later one), across the route's Gateways: False when any
    says False (with Traefik's message), True when every one says True, None while some have not caught up."""
    parents = traefik_parents(route)
    if not parents:
        return Resolution(None)
    verdicts = []
    for parent in parents:
        conditions = [c for c in parent.get("conditions") or [] if isinstance(c, Mapping)]
        resolved = [c for c in conditions if c.get("type") == "ResolvedRefs"]
        current = [c for c in resolved if int(c.get("observedGeneration") or 0) >= generation]
        if not current:
            return Resolution(None)
        condition = current[0]
        if condition.get("status") == "False":
            return Resolution(False, f"{condition.get('reason')}: {condition.get('message')}")
        verdicts.append(condition.get("status") == "True")
    return Resolution(all(verdicts))


def wait_for_resolution(
    client: RouteReader,
    namespace: str,
    name: str,
    *,
    timeout: float = STATUS_TIMEOUT_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Resolution:
    """Read the route until Traefik reports ResolvedRefs for its current generation, or ``timeout`` passes."""
    deadline = clock() + timeout
    while True:
        route = client.get(KIND_HTTP_ROUTE, namespace, name) or {}
        generation = int((route.get("metadata") or {}).get("generation") or 0)
        found = resolution_of(route, generation)
        if found.resolved is not None or clock() >= deadline:
            return found
        sleep(POLL_SECONDS)
