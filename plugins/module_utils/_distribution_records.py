# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The records of a resolved traffic split: where each route's users go, what is copied, what is broken."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KubeServiceObj,
    ObjectKey,
    PortValue,
    TraefikServiceObj,
)

SPLIT_DIRECT = "direct"
SPLIT_WEIGHTED = "weighted"
SPLIT_MIRROR = "mirror"
TARGET_SERVICE = "Service"
TARGET_WEIGHTED = "weighted"
TARGET_MIRROR = "mirror"
TARGET_OTHER = "TraefikService-other"
TARGET_MISSING = "missing"
ROLE_MAIN = "main"
ROLE_SHADOW = "shadow"

# A backend of another route of the same IngressRoute than the mirrored one: reported, never judged.
ROLE_OTHER_ROUTE = "other_route"
TraefikServices = Mapping[ObjectKey, TraefikServiceObj]
KubeServices = Mapping[ObjectKey, KubeServiceObj]


def percent_value(share: Fraction) -> int | float:
    """A share as a percentage: an int when whole (20), else rounded to 2 decimals (33.33)."""
    value = share * 100
    if value.denominator == 1:
        return int(value)
    return round(float(value), 2)


@dataclass(frozen=True)
class BrokenRef:
    """A reference Traefik cannot resolve; ``reason`` says what is wrong and what users see."""

    reference: str
    reason: str
    route_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "reason": self.reason, "route_index": self.route_index}


@dataclass(frozen=True)
class RouteReference:
    """An IngressRoute route (or HTTPRoute rule) that sends traffic through a TraefikService, directly or via
    other ones."""

    ingress_route: str
    namespace: str
    route_index: int
    direct: bool
    # HTTPRoute for a Gateway API route: ingress_route is then its name, route_index its rule's index.
    route_kind: str = "IngressRoute"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingress_route": self.ingress_route,
            "namespace": self.namespace,
            "route_index": self.route_index,
            "direct": self.direct,
            "route_kind": self.route_kind,
        }


@dataclass(frozen=True)
class RouteResolution:
    """The traffic split of one route of an IngressRoute."""

    index: int
    match: str
    targets: tuple[dict[str, Any], ...]
    split_type: str
    wraps_weighted: bool
    layers: tuple[str, ...]
    main_sink: tuple[dict[str, Any], ...]
    shadow: tuple[dict[str, Any], ...]
    broken: tuple[BrokenRef, ...]
    cycles: tuple[tuple[str, ...], ...]
    backends: tuple[dict[str, Any], ...]
    explanation: str
    # For each shadow's metrics label, the labels of the Services that answer the users whose requests
    # are copied to it: the user side of the mirroring service(s), not every service of the route.
    shadow_pairs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # A route attach added for request matching (the mirror-request-routes annotation): the index of the route it
    # copies from, and which of that route's requests it takes, in words ("GET and HEAD requests").
    source_index: int | None = None
    requests: str = ""
    methods: tuple[str, ...] = ()

    @property
    def carries_mirror(self) -> bool:
        """Users of this route pass through a mirroring service (even one copying 0%)."""
        return SPLIT_MIRROR in self.layers

    def traffic_split(self) -> dict[str, Any]:
        return {"type": self.split_type, "wraps_weighted": self.wraps_weighted, "layers": list(self.layers)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "match": self.match,
            "targets": [dict(t) for t in self.targets],
            "traffic_split": self.traffic_split(),
            "main_sink": [dict(s) for s in self.main_sink],
            "shadow": [dict(s) for s in self.shadow],
            "broken": [b.to_dict() for b in self.broken],
            "cycles": [list(c) for c in self.cycles],
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class RouteDistribution:
    """The traffic split of an IngressRoute.

    The top-level split, target, main sink and shadow describe the route operators mean by "the route":
    the first one that carries a mirror, else the first one (a second route such as ``/health`` or
    another host must not stand in for the mirrored one). ``routes`` has every route, and ``broken``,
    ``cycles`` and ``backends`` cover all.
    """

    route: str
    namespace: str
    routes: tuple[RouteResolution, ...]
    explanation: str
    broken: tuple[BrokenRef, ...] = field(default=())
    route_kind: str = "IngressRoute"
    # How the metrics' service labels of the backends were derived, in words (see _httproute_view); "" for the
    # IngressRoute forms.
    label_form: str = ""
    # An HTTPRoute's mirrored backends: (CRD-provider label, the Gateway provider's patterns of the same backend
    # before attach), so the anomaly checks find their pre-launch history (see _httproute_labels).
    label_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def primary(self) -> RouteResolution | None:
        return next(iter(self.mirrored_routes), self.routes[0] if self.routes else None)

    def all_broken(self) -> list[BrokenRef]:
        return list(self.broken) + [b for r in self.routes for b in r.broken]

    @property
    def mirrored_routes(self) -> tuple[RouteResolution, ...]:
        """The routes whose users pass through a mirror: the routes a shadow launch is judged on."""
        return tuple(r for r in self.routes if r.carries_mirror)

    @property
    def mirrored_methods(self) -> tuple[str, ...]:
        """The HTTP methods every mirrored route is limited to (routes attach added for mirror_methods), in
        order; () when some mirrored route copies every method (or there is none): the anomaly gate then
        compares the main's requests of these methods only."""
        mirrored = self.mirrored_routes
        if not mirrored or any(not route.methods for route in mirrored):
            return ()
        methods = dict.fromkeys(method for route in mirrored for method in route.methods)
        return tuple(methods)

    def backends(self, routes: Iterable[RouteResolution] | None = None) -> list[dict[str, Any]]:
        """Metrics-labelled backends of every route (or of ``routes``), once each."""
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        for resolution in self.routes if routes is None else routes:
            for backend in resolution.backends:
                key = tuple(backend[k] for k in ("role", "namespace", "name", "port", "service_label"))
                seen.setdefault(key, dict(backend))
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        primary = self.primary
        target = dict(primary.targets[0]) if primary and primary.targets else None
        if target is not None:
            target.pop("weight", None)
        return {
            "route": self.route,
            "namespace": self.namespace,
            "route_kind": self.route_kind,
            "label_form": self.label_form,
            "traffic_split": primary.traffic_split()
            if primary
            else {"type": SPLIT_DIRECT, "wraps_weighted": False, "layers": []},
            "target": target,
            "routes": [r.to_dict() for r in self.routes],
            "main_sink": [dict(s) for s in primary.main_sink] if primary else [],
            "shadow": [dict(s) for s in primary.shadow] if primary else [],
            "broken": [b.to_dict() for b in self.all_broken()],
            "cycles": [list(c) for r in self.routes for c in r.cycles],
            "backends": self.backends(),
            "explanation": self.explanation,
        }


@dataclass
class BackendShare:
    """Where a share of a route's requests ends: a Service, or an object the walk does not break down."""

    name: str
    kind: str
    namespace: str
    port: PortValue | None
    share: Fraction
    service_label: str | None
    # Why an opaque sink is not broken down (cross-provider, failover, ...); None for resolved sinks.
    opaque_reason: str | None = None
