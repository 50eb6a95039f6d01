# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one walk of what a route reaches, by Traefik's rules: weights, mirrors, broken references drop the route.

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
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    ROLE_MAIN,
    ROLE_SHADOW,
    SPLIT_DIRECT,
    SPLIT_MIRROR,
    SPLIT_WEIGHTED,
    TARGET_MIRROR,
    TARGET_MISSING,
    TARGET_OTHER,
    TARGET_SERVICE,
    TARGET_WEIGHTED,
    BackendShare,
    BrokenRef,
    KubeServices,
    RouteDistribution,
    RouteResolution,
    TraefikServices,
    percent_value,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_wording import (
    explain,
    explain_ingress_route,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import RequestMatch, read_record
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_INGRESS_ROUTE,
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    SPEC_MIRRORING,
    SPEC_WEIGHTED,
    IngressRouteObj,
    ObjectKey,
    RouteObj,
    ServiceRef,
    TraefikServiceObj,
    route_service_label,
    traefik_service_label,
)

_NOT_FOUND_EFFECT = "Traefik drops the router, so that route serves 404s"


def route_word(ingress_route: IngressRouteObj) -> str:
    """What one entry of the route is called: an IngressRoute's route, an HTTPRoute's rule."""
    return "route" if ingress_route.kind == KIND_INGRESS_ROUTE else "rule"


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
        self.main: dict[tuple[Any, ...], BackendShare] = {}
        self.shadow: dict[tuple[Any, ...], BackendShare] = {}
        self.broken: list[BrokenRef] = []
        self.cycles: list[tuple[str, ...]] = []
        self.layers: dict[str, int] = {}  # user-path layer -> first depth it appears at
        # While the user side of a mirroring service is walked: the user-facing sinks found below it.
        self._mirror_mains: list[dict[tuple[Any, ...], BackendShare]] = []
        # While a mirroring service's copies are walked: the user-facing sinks the copies come from.
        self._copied_from: tuple[BackendShare, ...] | None = None
        self.shadow_sources: dict[tuple[Any, ...], dict[tuple[Any, ...], BackendShare]] = {}

    def walk(self) -> None:
        refs = self.route.services
        here = f"{route_word(self.ingress_route)} {self.route.index} of {self.ingress_route.kind} "
        here += f"{self.ingress_route.namespace}/{self.ingress_route.name}"
        # Traefik's Gateway provider names an HTTPRoute's own backends in a form that changed across releases
        # (see _httproute_view); they get no label here. Services below a TraefikService have the CRD form.
        gateway = self.ingress_route.kind != KIND_INGRESS_ROUTE
        if not refs:
            self._break(here, f"{here} has no {'backendRefs' if gateway else 'services'}", _NOT_FOUND_EFFECT)
            return
        if len(refs) == 1:
            label = route_service_label(self.ingress_route.namespace, self.ingress_route.name, self.route.match)
            first = refs[0]
            self._visit(
                first, Fraction(1), shadow=False, path=(), parent=here, depth=0, single_label=label, unlabelled=gateway
            )
            return
        self._layer(SPLIT_WEIGHTED, depth=0)
        self._visit_weighted(refs, Fraction(1), shadow=False, path=(), parent=here, depth=0, unlabelled=gateway)

    # -- helpers --

    def _break(self, reference: str, cause: str, effect: str) -> None:
        self.broken.append(BrokenRef(reference=reference, reason=f"{cause}; {effect}.", route_index=self.route.index))

    def _layer(self, layer: str, depth: int) -> None:
        self.layers.setdefault(layer, depth)

    def _record(self, sink: BackendShare, shadow: bool) -> None:
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
        unlabelled: bool = False,
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
            self._visit(
                ref, child_share, shadow=shadow, path=path, parent=parent, depth=depth + 1, unlabelled=unlabelled
            )

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
        unlabelled: bool = False,
    ) -> None:
        if ref.is_cross_provider:
            # name@provider lives outside the cluster objects: report it, do not judge it.
            reason = "defined outside Kubernetes, not broken down further"
            self._record(BackendShare(ref.name, ref.kind, ref.namespace, ref.port, share, None, reason), shadow)
            return
        if ref.kind == KIND_SERVICE:
            label = None if unlabelled else single_label
            labelled = not unlabelled
            self._visit_kube_service(ref, share, shadow=shadow, parent=parent, single_label=label, labelled=labelled)
        elif ref.kind == KIND_TRAEFIK_SERVICE:
            self._visit_traefik_service(ref, share, shadow=shadow, path=path, parent=parent, depth=depth)
        else:
            self._break(parent, f"{parent} references {ref.name} with unsupported kind {ref.kind!r}", _NOT_FOUND_EFFECT)

    def _visit_kube_service(
        self,
        ref: ServiceRef,
        share: Fraction,
        *,
        shadow: bool,
        parent: str,
        single_label: str | None,
        labelled: bool = True,
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
        if label is None and labelled and ref.port is not None:
            label = traefik_service_label(ref.namespace, ref.name, ref.port)
        self._record(BackendShare(ref.name, KIND_SERVICE, ref.namespace, ref.port, share, label), shadow)

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
            self._record(BackendShare(ref.name, KIND_TRAEFIK_SERVICE, ref.namespace, None, share, None), shadow)
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
            self._record(BackendShare(ref.name, KIND_TRAEFIK_SERVICE, ref.namespace, None, share, None, reason), shadow)

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


def _sink_key(sink: BackendShare) -> tuple[Any, ...]:
    return (sink.namespace, sink.name, sink.kind, sink.port, sink.service_label)


def _add_share(bucket: dict[tuple[Any, ...], BackendShare], key: tuple[Any, ...], sink: BackendShare) -> None:
    known = bucket.get(key)
    if known is None:
        bucket[key] = BackendShare(
            sink.name, sink.kind, sink.namespace, sink.port, sink.share, sink.service_label, sink.opaque_reason
        )
    else:
        known.share += sink.share


def _main_sink_dict(sink: BackendShare) -> dict[str, Any]:
    return {
        "name": sink.name,
        "kind": sink.kind,
        "namespace": sink.namespace,
        "port": sink.port,
        "user_share_percent": percent_value(sink.share),
    }


def _shadow_dict(sink: BackendShare) -> dict[str, Any]:
    return {
        "name": sink.name,
        "kind": sink.kind,
        "namespace": sink.namespace,
        "port": sink.port,
        "percent": percent_value(sink.share),
    }


def _backend_dicts(sinks: Iterable[BackendShare], role: str) -> list[dict[str, Any]]:
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


def target_dict(ref: ServiceRef, traefik_services: TraefikServices, services: KubeServices | None) -> dict[str, Any]:
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
        targets=tuple(target_dict(ref, traefik_services, services) for ref in route.services),
        split_type=walker.split_type(),
        wraps_weighted=walker.wraps_weighted(),
        layers=walker.ordered_layers(),
        main_sink=tuple(_main_sink_dict(s) for s in main),
        shadow=tuple(_shadow_dict(s) for s in shadow),
        broken=broken,
        cycles=tuple(walker.cycles),
        backends=tuple(_backend_dicts(main, ROLE_MAIN) + _backend_dicts(shadow, ROLE_SHADOW)),
        explanation=explain(main, shadow, broken, ingress_route.namespace, requests or "requests"),
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
    label_form: str = "",
) -> RouteDistribution:
    """Resolve an IngressRoute to its traffic split.

    ``traefik_services`` must hold every TraefikService the route may reach (a missing one is reported as
    broken); ``services`` (v1 Services) may be None to skip existence and port checks. An HTTPRoute comes as
    an IngressRouteObj of kind HTTPRoute (_httproute_view), ``label_form`` saying how its labels were derived.
    """
    resolutions = tuple(
        resolve_route_entry(ingress_route, route, traefik_services, services) for route in ingress_route.routes
    )
    kind, words = ingress_route.kind, f"{route_word(ingress_route)}s"
    if not resolutions:
        reference = _describe_object(kind, ingress_route.namespace, ingress_route.name)
        broken = BrokenRef(reference=reference, reason=f"{reference} has no {words}; it serves nothing.")
        return RouteDistribution(
            route=ingress_route.name,
            namespace=ingress_route.namespace,
            routes=(),
            explanation=f"{kind} {ingress_route.name} has no {words}, so it serves no traffic.",
            broken=(broken,),
            route_kind=kind,
            label_form=label_form,
        )
    return RouteDistribution(
        route=ingress_route.name,
        namespace=ingress_route.namespace,
        routes=resolutions,
        explanation=explain_ingress_route(resolutions, route_word(ingress_route)),
        route_kind=kind,
        label_form=label_form,
    )
