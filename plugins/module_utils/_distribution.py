# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Listings of TraefikServices and the index of which routes reference which objects.

The split of one route is resolved by ``_route_walker``; its records are in ``_distribution_records``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    KubeServices,
    RouteReference,
    TraefikServices,
    percent_value,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_SERVICE,
    MIRROR_ROUTES_ANNOTATION,
    PRE_MIRROR_ANNOTATION,
    IngressRouteObj,
    ObjectKey,
    RouteObj,
    ServiceRef,
    TraefikServiceObj,
    traefik_service_label,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import (
    target_dict,
)


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
        per_service[route_key] = RouteReference(
            ingress_route.name, ingress_route.namespace, route.index, direct, ingress_route.kind
        )
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
                "targets": [target_dict(ref, traefik_services, services) for ref in route.services],
            }
            for route in ingress_route.routes
        ],
    }
