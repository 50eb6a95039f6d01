# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resolve an IngressRoute to its traffic split, and summarise TraefikServices for listings.

Pure: works on records from ``_model`` and returns JSON-serialisable dicts. The rules follow how Traefik
builds its configuration:

- a route with one service sends it everything; a route with several services round-robins them by
  weight, exactly like a weighted TraefikService (weight omitted = 1, weight 0 = nothing);
- a mirroring service answers users from its main service and copies ``percent`` of its requests to each
  mirror, whose responses are discarded;
- one unresolvable reference anywhere below a route makes Traefik drop that route's router: 404s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import RequestMatch, read_record
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    MIRROR_ROUTES_ANNOTATION,
    PRE_MIRROR_ANNOTATION,
    SPEC_MIRRORING,
    SPEC_WEIGHTED,
    IngressRouteObj,
    KubeServiceObj,
    ObjectKey,
    PortValue,
    RouteObj,
    ServiceRef,
    TraefikServiceObj,
    route_service_label,
    traefik_service_label,
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

_NOT_FOUND_EFFECT = "Traefik drops the router, so that route serves 404s"


def percent_value(share: Fraction) -> int | float:
    """A share as a percentage: an int when whole (20), else rounded to 2 decimals (33.33)."""
    value = share * 100
    if value.denominator == 1:
        return int(value)
    return round(float(value), 2)


# --- records -------------------------------------------------------------------------------------------


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
    """An IngressRoute route that sends traffic through a TraefikService, directly or via other ones."""

    ingress_route: str
    namespace: str
    route_index: int
    direct: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingress_route": self.ingress_route,
            "namespace": self.namespace,
            "route_index": self.route_index,
            "direct": self.direct,
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


# --- resolution ----------------------------------------------------------------------------------------


@dataclass
class _Sink:
    name: str
    kind: str
    namespace: str
    port: PortValue | None
    share: Fraction
    service_label: str | None
    # Why an opaque sink is not broken down (cross-provider, failover, ...); None for resolved sinks.
    opaque_reason: str | None = None


def _describe_object(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}"


class _RouteWalker:
    """Walks one route's reference tree, accumulating where user requests and copies end up."""

    def __init__(
        self,
        ingress_route: IngressRouteObj,
        route: RouteObj,
        traefik_services: TraefikServices,
        services: KubeServices | None,
    ) -> None:
        self.ingress_route = ingress_route
        self.route = route
        self.traefik_services = traefik_services
        self.services = services
        self.main: dict[tuple[Any, ...], _Sink] = {}
        self.shadow: dict[tuple[Any, ...], _Sink] = {}
        self.broken: list[BrokenRef] = []
        self.cycles: list[tuple[str, ...]] = []
        self.layers: dict[str, int] = {}  # user-path layer -> first depth it appears at
        # While the user side of a mirroring service is walked: the user-facing sinks found below it.
        self._mirror_mains: list[dict[tuple[Any, ...], _Sink]] = []
        # While a mirroring service's copies are walked: the user-facing sinks the copies come from.
        self._copied_from: tuple[_Sink, ...] | None = None
        self.shadow_sources: dict[tuple[Any, ...], dict[tuple[Any, ...], _Sink]] = {}

    def walk(self) -> None:
        refs = self.route.services
        here = f"route {self.route.index} of IngressRoute {self.ingress_route.namespace}/{self.ingress_route.name}"
        if not refs:
            self._break(here, f"{here} has no services", _NOT_FOUND_EFFECT)
            return
        if len(refs) == 1:
            label = route_service_label(self.ingress_route.namespace, self.ingress_route.name, self.route.match)
            self._visit(refs[0], Fraction(1), shadow=False, path=(), parent=here, depth=0, single_label=label)
            return
        self._layer(SPLIT_WEIGHTED, depth=0)
        self._visit_weighted(refs, Fraction(1), shadow=False, path=(), parent=here, depth=0)

    # -- helpers --

    def _break(self, reference: str, cause: str, effect: str) -> None:
        self.broken.append(BrokenRef(reference=reference, reason=f"{cause}; {effect}.", route_index=self.route.index))

    def _layer(self, layer: str, depth: int) -> None:
        self.layers.setdefault(layer, depth)

    def _record(self, sink: _Sink, shadow: bool) -> None:
        bucket = self.shadow if shadow else self.main
        key = _sink_key(sink)
        if shadow and self._copied_from is not None:
            sources = self.shadow_sources.setdefault(key, {})
            for source in self._copied_from:
                sources.setdefault(_sink_key(source), source)
        if not shadow:
            for captured in self._mirror_mains:
                _add_share(captured, key, sink)
        if key in bucket:
            bucket[key].share += sink.share
        else:
            bucket[key] = sink

    def _visit_weighted(
        self,
        refs: Sequence[ServiceRef],
        share: Fraction,
        *,
        shadow: bool,
        path: tuple[ObjectKey, ...],
        parent: str,
        depth: int,
    ) -> None:
        total = sum(ref.effective_weight for ref in refs)
        if total == 0:
            self._break(
                parent,
                f"every service of {parent} has weight 0",
                "Traefik has no backend to send requests to, so that route answers 503",
            )
        for ref in refs:
            child_share = share * ref.effective_weight / total if total else Fraction(0)
            self._visit(ref, child_share, shadow=shadow, path=path, parent=parent, depth=depth + 1)

    def _visit(
        self,
        ref: ServiceRef,
        share: Fraction,
        *,
        shadow: bool,
        path: tuple[ObjectKey, ...],
        parent: str,
        depth: int,
        single_label: str | None = None,
    ) -> None:
        if ref.is_cross_provider:
            # name@provider lives outside the cluster objects: report it, do not judge it.
            reason = "defined outside Kubernetes, not broken down further"
            self._record(_Sink(ref.name, ref.kind, ref.namespace, ref.port, share, None, reason), shadow)
            return
        if ref.kind == KIND_SERVICE:
            self._visit_kube_service(ref, share, shadow=shadow, parent=parent, single_label=single_label)
        elif ref.kind == KIND_TRAEFIK_SERVICE:
            self._visit_traefik_service(ref, share, shadow=shadow, path=path, parent=parent, depth=depth)
        else:
            self._break(parent, f"{parent} references {ref.name} with unsupported kind {ref.kind!r}", _NOT_FOUND_EFFECT)

    def _visit_kube_service(
        self, ref: ServiceRef, share: Fraction, *, shadow: bool, parent: str, single_label: str | None
    ) -> None:
        described = _describe_object(KIND_SERVICE, ref.namespace, ref.name)
        if ref.port is None:
            self._break(described, f"{parent} references {described} without a port", _NOT_FOUND_EFFECT)
        elif self.services is not None:
            service = self.services.get(ref.key)
            if service is None:
                self._break(described, f"{described} (referenced by {parent}) does not exist", _NOT_FOUND_EFFECT)
            elif service.find_port(ref.port) is None:
                cause = f"{described} has no port {ref.port!r} (it has {service.describe_ports()})"
                self._break(described, cause, _NOT_FOUND_EFFECT)
        label = single_label
        if label is None and ref.port is not None:
            label = traefik_service_label(ref.namespace, ref.name, ref.port)
        self._record(_Sink(ref.name, KIND_SERVICE, ref.namespace, ref.port, share, label), shadow)

    def _visit_traefik_service(
        self,
        ref: ServiceRef,
        share: Fraction,
        *,
        shadow: bool,
        path: tuple[ObjectKey, ...],
        parent: str,
        depth: int,
    ) -> None:
        described = _describe_object(KIND_TRAEFIK_SERVICE, ref.namespace, ref.name)
        if ref.key in path:
            loop = (*(f"{ns}/{name}" for ns, name in path[path.index(ref.key) :]), f"{ref.namespace}/{ref.name}")
            if loop not in self.cycles:
                self.cycles.append(loop)
                self._break(
                    described,
                    f"TraefikServices reference each other in a loop ({' -> '.join(loop)})",
                    _NOT_FOUND_EFFECT,
                )
            return
        service = self.traefik_services.get(ref.key)
        if service is None:
            self._break(described, f"{described} (referenced by {parent}) does not exist", _NOT_FOUND_EFFECT)
            self._record(_Sink(ref.name, KIND_TRAEFIK_SERVICE, ref.namespace, None, share, None), shadow)
            return
        inner_path = (*path, ref.key)
        if service.spec_type == SPEC_WEIGHTED:
            if not shadow:
                self._layer(SPLIT_WEIGHTED, depth)
            self._visit_weighted(service.weighted, share, shadow=shadow, path=inner_path, parent=described, depth=depth)
        elif service.spec_type == SPEC_MIRRORING:
            self._visit_mirroring(service, share, shadow=shadow, path=inner_path, depth=depth)
        else:
            # failover / highestRandomWeight / unknown: reported as one opaque sink, not guessed at.
            reason = f"a {service.spec_detail} service, not broken down further"
            self._record(_Sink(ref.name, KIND_TRAEFIK_SERVICE, ref.namespace, None, share, None, reason), shadow)

    def _visit_mirroring(
        self, service: TraefikServiceObj, share: Fraction, *, shadow: bool, path: tuple[ObjectKey, ...], depth: int
    ) -> None:
        described = _describe_object(KIND_TRAEFIK_SERVICE, service.namespace, service.name)
        if not shadow:
            self._layer(SPLIT_MIRROR, depth)
        self._mirror_mains.append({})
        if service.main is None or not service.main.name:
            self._break(described, f"{described} has no main service", _NOT_FOUND_EFFECT)
        else:
            self._visit(service.main, share, shadow=shadow, path=path, parent=described, depth=depth + 1)
        below = self._mirror_mains.pop()
        # A copy of a copy (a mirror inside a shadow path) keeps the users it ultimately comes from.
        outer = self._copied_from
        if not shadow:
            self._copied_from = tuple(sink for sink in below.values() if sink.share > 0)
        try:
            for mirror in service.mirrors:
                if not 0 <= mirror.percent <= 100:
                    cause = f"{described} copies {mirror.percent}% to {mirror.name}, outside 0..100"
                    self._break(described, cause, "Traefik rejects the service, so that route serves 404s")
                    continue
                copied = share * Fraction(mirror.percent, 100)
                self._visit(mirror.as_service_ref(), copied, shadow=True, path=path, parent=described, depth=depth + 1)
        finally:
            self._copied_from = outer

    # -- results --

    def split_type(self) -> str:
        if SPLIT_MIRROR in self.layers:
            return SPLIT_MIRROR
        if SPLIT_WEIGHTED in self.layers:
            return SPLIT_WEIGHTED
        return SPLIT_DIRECT

    def wraps_weighted(self) -> bool:
        """A mirror whose user-facing side (below it) is a weighted split."""
        mirror_depth = self.layers.get(SPLIT_MIRROR)
        weighted_depth = self.layers.get(SPLIT_WEIGHTED)
        return mirror_depth is not None and weighted_depth is not None and weighted_depth > mirror_depth

    def ordered_layers(self) -> tuple[str, ...]:
        return tuple(sorted(self.layers, key=lambda layer: self.layers[layer]))

    def shadow_pairs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each shadow's metrics label with the labels of the user-facing Services its copies come from.

        Only Services that answer users (share > 0) below the mirroring service count: a weight-0
        backend of a weighted main has no users to compare with, and a Service that is also the shadow
        itself (a weighted split containing the mirror) is not its own baseline."""
        pairs: dict[str, dict[str, None]] = {}
        for key, shadow in self.shadow.items():
            if shadow.kind != KIND_SERVICE or shadow.service_label is None:
                continue
            labels = pairs.setdefault(shadow.service_label, {})
            for source in self.shadow_sources.get(key, {}).values():
                label = source.service_label
                if source.kind == KIND_SERVICE and label is not None and label != shadow.service_label:
                    labels.setdefault(label, None)
        return tuple((label, tuple(mains)) for label, mains in pairs.items())


def _sink_key(sink: _Sink) -> tuple[Any, ...]:
    return (sink.namespace, sink.name, sink.kind, sink.port, sink.service_label)


def _add_share(bucket: dict[tuple[Any, ...], _Sink], key: tuple[Any, ...], sink: _Sink) -> None:
    known = bucket.get(key)
    if known is None:
        bucket[key] = _Sink(
            sink.name, sink.kind, sink.namespace, sink.port, sink.share, sink.service_label, sink.opaque_reason
        )
    else:
        known.share += sink.share


def _main_sink_dict(sink: _Sink) -> dict[str, Any]:
    return {
        "name": sink.name,
        "kind": sink.kind,
        "namespace": sink.namespace,
        "port": sink.port,
        "user_share_percent": percent_value(sink.share),
    }


def _shadow_dict(sink: _Sink) -> dict[str, Any]:
    return {
        "name": sink.name,
        "kind": sink.kind,
        "namespace": sink.namespace,
        "port": sink.port,
        "percent": percent_value(sink.share),
    }


def _backend_dicts(sinks: Iterable[_Sink], role: str) -> list[dict[str, Any]]:
    return [
        {
            "name": sink.name,
            "namespace": sink.namespace,
            "port": sink.port,
            "role": role,
            "service_label": sink.service_label,
            "percent": percent_value(sink.share),
        }
        for sink in sinks
        if sink.kind == KIND_SERVICE and sink.service_label is not None
    ]


def _target_dict(ref: ServiceRef, traefik_services: TraefikServices, services: KubeServices | None) -> dict[str, Any]:
    target = {"name": ref.name, "kind": ref.kind, "namespace": ref.namespace, "port": ref.port, "weight": ref.weight}
    target["target_type"] = target_type(ref, traefik_services, services)
    return target


def target_type(ref: ServiceRef, traefik_services: TraefikServices, services: KubeServices | None = None) -> str:
    """Service | weighted | mirror | TraefikService-other | missing, for an IngressRoute route's target."""
    if ref.kind == KIND_SERVICE and not ref.is_cross_provider:
        if services is not None and ref.key not in services:
            return TARGET_MISSING
        return TARGET_SERVICE
    if ref.kind != KIND_TRAEFIK_SERVICE or ref.is_cross_provider:
        return TARGET_OTHER
    service = traefik_services.get(ref.key)
    if service is None:
        return TARGET_MISSING
    if service.spec_type == SPEC_WEIGHTED:
        return TARGET_WEIGHTED
    if service.spec_type == SPEC_MIRRORING:
        return TARGET_MIRROR
    return TARGET_OTHER


def resolve_route_entry(
    ingress_route: IngressRouteObj,
    route: RouteObj,
    traefik_services: TraefikServices,
    services: KubeServices | None = None,
) -> RouteResolution:
    """Resolve one route of an IngressRoute. ``services=None`` skips the Kubernetes Service checks."""
    walker = _RouteWalker(ingress_route, route, traefik_services, services)
    walker.walk()
    main = list(walker.main.values())
    shadow = list(walker.shadow.values())
    broken = tuple(walker.broken)
    source_index, requests, methods = added_route_requests(ingress_route, route)
    return RouteResolution(
        index=route.index,
        match=route.match,
        targets=tuple(_target_dict(ref, traefik_services, services) for ref in route.services),
        split_type=walker.split_type(),
        wraps_weighted=walker.wraps_weighted(),
        layers=walker.ordered_layers(),
        main_sink=tuple(_main_sink_dict(s) for s in main),
        shadow=tuple(_shadow_dict(s) for s in shadow),
        broken=broken,
        cycles=tuple(walker.cycles),
        backends=tuple(_backend_dicts(main, ROLE_MAIN) + _backend_dicts(shadow, ROLE_SHADOW)),
        explanation=_explain(main, shadow, broken, ingress_route.namespace, requests or "requests"),
        shadow_pairs=walker.shadow_pairs(),
        source_index=source_index,
        requests=requests,
        methods=methods,
    )


_METHOD = re.compile(r"Method\(`([A-Za-z]+)`\)")
_METHODS = re.compile(r"^(?:Method\(`[A-Za-z]+`\)|\(Method\(`[A-Za-z]+`\)(?: \|\| Method\(`[A-Za-z]+`\))+\))")


def added_route_requests(ingress_route: IngressRouteObj, route: RouteObj) -> tuple[int | None, str, tuple[str, ...]]:
    """For a route attach added for request matching (recorded in the mirror-request-routes annotation, its rule
    unchanged): the index of its source route, the requests it takes in words (``GET and HEAD requests``,
    ``requests matching <expr>``) and its methods (() for every method); ``(None, "", ())`` for any other route.
    The words come from the added rule, ``(<source rule>) && <methods> && (<extra>)``
    (_mirror_match.combined_rule)."""
    record, _readable = read_record(ingress_route.annotations)
    entry = record.get(route.index)
    if entry is None or entry.get("match") != route.match:
        return None, "", ()
    source = entry.get("source")
    sources = {r.index: r for r in ingress_route.routes}
    if not isinstance(source, int) or isinstance(source, bool) or source not in sources:
        return None, "", ()
    head = f"({sources[source].match.strip()})"
    rest = route.match[len(head) :].removeprefix(" && ") if route.match.startswith(head) else ""
    if not rest:
        return source, "requests", ()
    methods: tuple[str, ...] = ()
    found = _METHODS.match(rest)
    if found:
        methods = tuple(_METHOD.findall(found.group(0)))
        rest = rest[found.end() :].removeprefix(" && ")
    extra = rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest
    return source, RequestMatch(methods, extra).describe(), methods


def resolve_route(
    ingress_route: IngressRouteObj,
    traefik_services: TraefikServices,
    services: KubeServices | None = None,
) -> RouteDistribution:
    """Resolve an IngressRoute to its traffic split.

    ``traefik_services`` must hold every TraefikService the route may reach (a missing one is reported as
    broken); ``services`` (v1 Services) may be None to skip existence and port checks.
    """
    resolutions = tuple(
        resolve_route_entry(ingress_route, route, traefik_services, services) for route in ingress_route.routes
    )
    if not resolutions:
        reference = _describe_object("IngressRoute", ingress_route.namespace, ingress_route.name)
        broken = BrokenRef(reference=reference, reason=f"{reference} has no routes; it serves nothing.")
        return RouteDistribution(
            route=ingress_route.name,
            namespace=ingress_route.namespace,
            routes=(),
            explanation=f"IngressRoute {ingress_route.name} has no routes, so it serves no traffic.",
            broken=(broken,),
        )
    return RouteDistribution(
        route=ingress_route.name,
        namespace=ingress_route.namespace,
        routes=resolutions,
        explanation=_explain_ingress_route(resolutions),
    )


# --- plain-language explanation ------------------------------------------------------------------------


def _display_names(sinks: Sequence[_Sink], route_namespace: str) -> list[str]:
    names = []
    for sink in sinks:
        name = sink.name if sink.namespace == route_namespace else f"{sink.namespace}/{sink.name}"
        if sink.kind == KIND_TRAEFIK_SERVICE:
            name = f"TraefikService {name}"
        if sink.opaque_reason:
            name = f"{name} ({sink.opaque_reason})"
        names.append(name)
    # The same Service on two ports would read twice the same: add the port to tell them apart.
    for i, sink in enumerate(sinks):
        if names.count(names[i]) > 1 and sink.port is not None:
            names[i] = f"{names[i]}:{sink.port}"
    return names


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _describe_users(main: Sequence[_Sink], route_namespace: str) -> str:
    serving = [s for s in main if s.share > 0]
    idle = [s for s in main if s.share == 0]
    names = dict(zip((id(s) for s in main), _display_names(main, route_namespace), strict=True))
    if not serving:
        text = "No service receives user requests"
    elif len(serving) == 1:
        text = f"All user responses come from {names[id(serving[0])]}"
    else:
        parts = [f"{percent_value(s.share)}% from {names[id(s)]}" for s in serving]
        text = "User responses come " + ", ".join(parts)
    if idle:
        verb = "gets" if len(idle) == 1 else "get"
        text += f" ({join_words([names[id(s)] for s in idle])} {verb} no users: weight 0)"
    return text


def _describe_shadow(shadow: Sequence[_Sink], route_namespace: str, requests: str = "requests") -> str:
    """``requests``: which of the route's requests reach the mirror (``GET and HEAD requests`` on a route attach
    added for request matching)."""
    copying = [s for s in shadow if s.share > 0]
    names = dict(zip((id(s) for s in shadow), _display_names(shadow, route_namespace), strict=True))
    if len(copying) == 1:
        sink = copying[0]
        return (
            f"{percent_value(sink.share)}% of {requests} are copied to {names[id(sink)]} and its responses are "
            "discarded"
        )
    if copying:
        parts = [f"{names[id(s)]} ({percent_value(s.share)}%)" for s in copying]
        return f"{requests} are copied to {join_words(parts)} and their responses are discarded"
    if shadow:
        verb = "is" if len(shadow) == 1 else "are"
        return f"nothing is mirrored (the copy to {join_words([names[id(s)] for s in shadow])} {verb} set to 0%)"
    return "nothing is mirrored"


def _explain(
    main: Sequence[_Sink],
    shadow: Sequence[_Sink],
    broken: Sequence[BrokenRef],
    route_namespace: str,
    requests: str = "requests",
) -> str:
    """One plain sentence: who answers users, what is copied where; a broken route says so first."""
    if broken:
        return f"This route does not work: {broken[0].reason}"
    copied = _describe_shadow(shadow, route_namespace, requests)
    if requests != "requests" and any(s.share > 0 for s in shadow):
        copied += "; other requests are not copied"
    return f"{_describe_users(main, route_namespace)}; {copied}."


def _explain_ingress_route(resolutions: Sequence[RouteResolution]) -> str:
    primary = next((r for r in resolutions if r.carries_mirror), resolutions[0])
    # The route an added route copies from serves the requests it does not take: part of the same split.
    sources = {r.source_index for r in resolutions if r.source_index is not None and r.carries_mirror}
    differing = sum(
        1
        for r in resolutions
        if r is not primary and r.explanation != primary.explanation and not (r.index in sources and not r.shadow)
    )
    if not differing:
        return primary.explanation
    others = "1 other route splits" if differing == 1 else f"{differing} other routes split"
    return f"{primary.explanation[:-1]} (for route {primary.index}, {primary.match}; {others} differently, see routes)."


# --- references and listings ---------------------------------------------------------------------------


def build_reference_index(
    ingress_routes: Iterable[IngressRouteObj], traefik_services: TraefikServices
) -> dict[ObjectKey, list[RouteReference]]:
    """For every TraefikService, the IngressRoute routes that send traffic through it (also indirectly,
    e.g. IngressRoute -> weighted -> mirror). Loops are cut, never followed twice."""
    index: dict[ObjectKey, dict[tuple[str, str, int], RouteReference]] = {}
    for ingress_route in ingress_routes:
        for route in ingress_route.routes:
            for ref in route.services:
                if ref.is_traefik_service and not ref.is_cross_provider:
                    _collect_references(ingress_route, route, ref, traefik_services, index, direct=True, seen=set())
    return {key: list(refs.values()) for key, refs in index.items()}


def _collect_references(
    ingress_route: IngressRouteObj,
    route: RouteObj,
    ref: ServiceRef,
    traefik_services: TraefikServices,
    index: dict[ObjectKey, dict[tuple[str, str, int], RouteReference]],
    *,
    direct: bool,
    seen: set[ObjectKey],
) -> None:
    if ref.key in seen:
        return
    seen.add(ref.key)
    per_service = index.setdefault(ref.key, {})
    route_key = (ingress_route.namespace, ingress_route.name, route.index)
    known = per_service.get(route_key)
    if known is None or (direct and not known.direct):
        per_service[route_key] = RouteReference(ingress_route.name, ingress_route.namespace, route.index, direct)
    service = traefik_services.get(ref.key)
    if service is None:
        return
    for child in service.children():
        if child.is_traefik_service and not child.is_cross_provider:
            _collect_references(ingress_route, route, child, traefik_services, index, direct=False, seen=seen)


def _ref_label(ref: ServiceRef) -> str | None:
    if ref.kind != KIND_SERVICE or ref.port is None or ref.is_cross_provider:
        return None
    return traefik_service_label(ref.namespace, ref.name, ref.port)


def buffers_whole_body(mirror_body: Any, max_body_size: Any) -> bool:
    """Traefik reads every mirrored request's whole body into memory: it copies bodies (the default) with
    no size cap (``maxBodySize`` absent or negative)."""
    return mirror_body is not False and (max_body_size is None or max_body_size < 0)


def summarise_mirror(ts: TraefikServiceObj, referenced_by: Sequence[RouteReference] = ()) -> dict[str, Any]:
    """A mirroring TraefikService for listings (traefik_traffic_info ``mirrors``, lookup term ``routes``).

    ``percent`` is the largest share copied to one mirror, so ``mirrors[?percent > `10`]`` works.
    """
    main = ts.main
    body_buffered = buffers_whole_body(ts.mirror_body, ts.max_body_size)
    return {
        "name": ts.name,
        "namespace": ts.namespace,
        "managed": ts.is_managed,
        "main": {
            "name": main.name if main else None,
            "kind": main.kind if main else None,
            "namespace": main.namespace if main else None,
            "port": main.port if main else None,
            "service_label": _ref_label(main) if main else None,
        },
        "mirrors": [dict(m.to_dict(), service_label=_ref_label(m.as_service_ref())) for m in ts.mirrors],
        "percent": max((m.percent for m in ts.mirrors), default=0),
        "mirror_body": ts.mirror_body,
        "max_body_size": ts.max_body_size,
        "body_buffered_in_memory": body_buffered,
        "active": bool(referenced_by),
        "referenced_by": [r.to_dict() for r in referenced_by],
    }


def summarise_weighted(ts: TraefikServiceObj, referenced_by: Sequence[RouteReference] = ()) -> dict[str, Any]:
    """A weighted (WRR) TraefikService: each backend's weight and its share of this service's users."""
    total = sum(ref.effective_weight for ref in ts.weighted)
    services = []
    for ref in ts.weighted:
        share = Fraction(ref.effective_weight, total) if total else Fraction(0)
        entry = ref.to_dict()
        entry["effective_weight"] = ref.effective_weight
        entry["user_share_percent"] = percent_value(share)
        entry["service_label"] = _ref_label(ref)
        services.append(entry)
    return {
        "name": ts.name,
        "namespace": ts.namespace,
        "services": services,
        "live_split": sum(1 for ref in ts.weighted if ref.effective_weight > 0) > 1,
        "sticky": ts.sticky,
        "active": bool(referenced_by),
        "referenced_by": [r.to_dict() for r in referenced_by],
    }


def live_backends(ts: TraefikServiceObj) -> list[ServiceRef]:
    """The weighted children that receive real users (weight > 0)."""
    return [ref for ref in ts.weighted if ref.effective_weight > 0]


def ingress_route_targets(
    ingress_route: IngressRouteObj, traefik_services: TraefikServices, services: KubeServices | None = None
) -> dict[str, Any]:
    """An IngressRoute with each route's live targets and their type, for listings."""
    return {
        "name": ingress_route.name,
        "namespace": ingress_route.namespace,
        "entry_points": list(ingress_route.entry_points),
        "attached_by_darklaunch": any(
            key in ingress_route.annotations for key in (PRE_MIRROR_ANNOTATION, MIRROR_ROUTES_ANNOTATION)
        ),
        "routes": [
            {
                "index": route.index,
                "match": route.match,
                "priority": route.priority,
                "middlewares": list(route.middlewares),
                "targets": [_target_dict(ref, traefik_services, services) for ref in route.services],
            }
            for route in ingress_route.routes
        ],
    }
