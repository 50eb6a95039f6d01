# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the cluster's Traefik objects and describe them: the one read path of traefik_traffic_info and
of the ``traffic`` lookup, so both answer the same question the same way.

I/O goes through a ``KubeClient``-like object (``traefik_group``, ``list``, ``get``); everything else is
delegated to the pure ``_distribution`` code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import (
    ROLE_MAIN,
    ROLE_SHADOW,
    RouteDistribution,
    build_reference_index,
    ingress_route_targets,
    resolve_route,
    summarise_mirror,
    summarise_weighted,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_TRAEFIK_SERVICE,
    SPEC_MIRRORING,
    SPEC_WEIGHTED,
    IngressRouteObj,
    KubeServiceObj,
    ObjectKey,
    TraefikServiceObj,
    check_name,
    index_by_key,
    parse_ingress_route,
    parse_kube_service,
    parse_traefik_service,
)

# How many hops of cross-namespace references are followed when one namespace was read.
_MAX_FOREIGN_HOPS = 5


class KubeReader(Protocol):
    def traefik_group(self, requested: str | None = None) -> str: ...

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]: ...


def validate_scope(namespace: str | None, route_name: str | None) -> None:
    """Names must be DNS-1123; a route is looked up in one namespace, so it needs one."""
    if namespace is not None:
        check_name(namespace, "namespace", "label")
    if route_name is not None:
        check_name(route_name, "route_name", "subdomain")
        if namespace is None:
            raise DarklaunchError(
                "route_name needs namespace: set namespace to the namespace of the IngressRoute.",
                field="namespace",
            )


def read_traffic(
    client: KubeReader,
    *,
    namespace: str | None,
    route_name: str | None = None,
    api_group: str | None = None,
) -> dict[str, Any]:
    """mirrors, weighted, ingress_routes (and distribution with ``route_name``) of one or all namespaces."""
    validate_scope(namespace, route_name)
    group = client.traefik_group(api_group)
    traefik_services = [parse_traefik_service(raw) for raw in client.list("TraefikService", namespace)]
    ingress_routes = [parse_ingress_route(raw) for raw in client.list("IngressRoute", namespace)]
    ts_index = index_by_key(traefik_services)
    references = build_reference_index(ingress_routes, ts_index)
    result: dict[str, Any] = {
        "api_group": group,
        "namespace": namespace,
        "mirrors": [
            summarise_mirror(ts, references.get(ts.key, ()))
            for ts in traefik_services
            if ts.spec_type == SPEC_MIRRORING
        ],
        "weighted": [
            summarise_weighted(ts, references.get(ts.key, ()))
            for ts in traefik_services
            if ts.spec_type == SPEC_WEIGHTED
        ],
        "ingress_routes": [ingress_route_targets(ir, ts_index) for ir in ingress_routes],
    }
    if route_name is not None and namespace is not None:
        wanted = next((ir for ir in ingress_routes if ir.name == route_name), None)
        if wanted is None:
            raise _missing_route(route_name, namespace)
        result["distribution"] = describe_route(client, wanted, ts_index).to_dict()
    return result


def read_distribution(
    client: KubeReader, *, namespace: str, route_name: str, api_group: str | None = None
) -> RouteDistribution:
    """Only the distribution of one route: reads that namespace's TraefikServices and Services."""
    validate_scope(namespace, route_name)
    client.traefik_group(api_group)
    raw = client.get("IngressRoute", namespace, route_name)
    if raw is None:
        raise _missing_route(route_name, namespace)
    ts_index = index_by_key(parse_traefik_service(item) for item in client.list("TraefikService", namespace))
    return describe_route(client, parse_ingress_route(raw), ts_index)


def describe_route(
    client: KubeReader, ingress_route: IngressRouteObj, ts_index: Mapping[ObjectKey, TraefikServiceObj]
) -> RouteDistribution:
    """Resolve a route, fetching TraefikServices it reaches in other namespaces (allowCrossNamespace)."""
    known: dict[ObjectKey, TraefikServiceObj] = dict(ts_index)
    services = _read_services(client, ingress_route.namespace)
    for _hop in range(_MAX_FOREIGN_HOPS):
        foreign = _unread_foreign_references(ingress_route, known)
        if not foreign:
            break
        for namespace, name in foreign:
            raw = client.get("TraefikService", namespace, name)
            if raw is not None:
                known[(namespace, name)] = parse_traefik_service(raw)
        if all(key not in known for key in foreign):
            break
    return resolve_route(ingress_route, known, services)


def anomaly_targets(distribution: RouteDistribution) -> list[dict[str, Any]]:
    """The backends of a route as anomaly-check targets: each shadow is paired with the main backends."""
    backends = distribution.backends()
    main_labels = [b["service_label"] for b in backends if b["role"] == ROLE_MAIN]
    targets = []
    for backend in backends:
        role = backend["role"]
        targets.append(
            {
                "service_label": backend["service_label"],
                "name": backend["name"],
                "namespace": backend["namespace"],
                "role": role,
                "pair": main_labels if role == ROLE_SHADOW and main_labels else None,
            }
        )
    return targets


def _read_services(client: KubeReader, namespace: str) -> dict[ObjectKey, KubeServiceObj] | None:
    """v1 Services of the route's namespace, for existence and port checks; None when not allowed to list."""
    try:
        return index_by_key(parse_kube_service(raw) for raw in client.list("Service", namespace))
    except DarklaunchError:
        # Reading Services is a bonus (it finds broken backends); users without that right still get
        # the TraefikService-level answer.
        return None


def _unread_foreign_references(
    ingress_route: IngressRouteObj, known: Mapping[ObjectKey, TraefikServiceObj]
) -> list[ObjectKey]:
    """TraefikServices the route reaches (directly or through known ones) that have not been read yet."""
    pending: list[ObjectKey] = []
    seen: set[ObjectKey] = set()
    stack = [ref for route in ingress_route.routes for ref in route.services]
    while stack:
        ref = stack.pop()
        if ref.kind != KIND_TRAEFIK_SERVICE or ref.is_cross_provider or ref.key in seen:
            continue
        seen.add(ref.key)
        service = known.get(ref.key)
        if service is not None:
            stack.extend(service.children())
        elif ref.namespace != ingress_route.namespace:
            pending.append(ref.key)
    return pending


def _missing_route(route_name: str, namespace: str) -> DarklaunchError:
    return DarklaunchError(
        f'IngressRoute "{route_name}" was not found in namespace "{namespace}": check route_name and namespace.',
        field="route_name",
    )
