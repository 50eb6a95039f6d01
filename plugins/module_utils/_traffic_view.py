# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the cluster's Traefik objects and describe them: the one read path of traefik_traffic_info and
of the ``traffic`` lookup, so both answer the same question the same way.

I/O goes through a ``KubeClient``-like object (``traefik_group``, ``list``, ``get``); everything else is
delegated to the pure ``_distribution`` code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import (
    ROLE_OTHER_ROUTE,
    ROLE_SHADOW,
    RouteDistribution,
    build_reference_index,
    ingress_route_targets,
    resolve_route,
    summarise_mirror,
    summarise_weighted,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    describe_launch,
    read_launch_record,
)
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

    def namespace_exists(self, name: str) -> bool: ...


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
    now: datetime | None = None,
) -> dict[str, Any]:
    """mirrors, weighted, ingress_routes, abandoned_launches (and distribution with ``route_name``) of one
    or all namespaces. ``now`` (default: the clock) decides which launch records are past their deadline."""
    validate_scope(namespace, route_name)
    group = client.traefik_group(api_group)
    traefik_services = [parse_traefik_service(raw) for raw in client.list("TraefikService", namespace)]
    ingress_routes = [parse_ingress_route(raw) for raw in client.list("IngressRoute", namespace)]
    if namespace is not None and not traefik_services and not ingress_routes and not client.namespace_exists(namespace):
        # An empty answer would read as "no mirror here" when the namespace is a typo.
        raise DarklaunchError(f'namespace "{namespace}" does not exist: check namespace.', field="namespace")
    ts_index = index_by_key(traefik_services)
    references = build_reference_index(ingress_routes, ts_index)
    mirrors = [
        _with_launch(summarise_mirror(ts, references.get(ts.key, ())), ts, now or datetime.now(timezone.utc))
        for ts in traefik_services
        if ts.spec_type == SPEC_MIRRORING
    ]
    result: dict[str, Any] = {
        "api_group": group,
        "namespace": namespace,
        "mirrors": mirrors,
        "abandoned_launches": abandoned_launches(mirrors),
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


def _with_launch(summary: dict[str, Any], mirror: TraefikServiceObj, now: datetime) -> dict[str, Any]:
    """A mirror listing entry plus ``launch``: the launch recorded on it (see _launch_record), or None."""
    record = read_launch_record(mirror.annotations)
    summary["launch"] = (
        None
        if record is None
        else describe_launch(
            record,
            now,
            mirror_name=mirror.name,
            namespace=mirror.namespace,
            referenced_by=summary.get("referenced_by") or (),
        )
    )
    return summary


def abandoned_launches(mirrors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The launches past their deadline, each with the mirror it was found on."""
    return [
        {"mirror": mirror["name"], "namespace": mirror["namespace"], **mirror["launch"]}
        for mirror in mirrors
        if mirror.get("launch") and mirror["launch"]["abandoned"]
    ]


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
    """The backends of a route as anomaly-check targets.

    The mirror sits on one route (or a few) of the IngressRoute, and only those routes are under test:
    their user-facing Services are the ``main`` targets, and each ``shadow`` is paired with the Services
    whose users its copies come from. The IngressRoute's other routes (``/health``, a second host)
    have their own Traefik services and metrics; their backends come along as ``other_route`` targets,
    checked against their own history for information only, so an idle one cannot leave the mirrored
    route unjudged and a busy one is never mistaken for its main service.

    Without any mirror no route is under test: every route's backends are ``main`` targets, as the
    health of the whole IngressRoute is the question then.
    """
    mirrored = distribution.mirrored_routes
    if not mirrored:
        return [_target(backend, backend["role"], None) for backend in distribution.backends()]
    pairs: dict[str, dict[str, None]] = {}
    for route in mirrored:
        for shadow_label, main_labels in route.shadow_pairs:
            pairs.setdefault(shadow_label, {}).update(dict.fromkeys(main_labels))
    targets = []
    under_test: set[str] = set()
    for backend in distribution.backends(mirrored):
        role = backend["role"]
        pair = list(pairs.get(backend["service_label"], {})) if role == ROLE_SHADOW else []
        targets.append(_target(backend, role, pair or None))
        under_test.add(backend["service_label"])
    others = [route for route in distribution.routes if not route.carries_mirror]
    for backend in distribution.backends(others):
        # The same Traefik service on both routes (e.g. a shared weighted service) has one set of
        # metrics: it is judged as part of the mirrored route.
        if backend["service_label"] not in under_test:
            under_test.add(backend["service_label"])
            targets.append(_target(backend, ROLE_OTHER_ROUTE, None))
    return targets


def _target(backend: Mapping[str, Any], role: str, pair: list[str] | None) -> dict[str, Any]:
    return {
        "service_label": backend["service_label"],
        "name": backend["name"],
        "namespace": backend["namespace"],
        "role": role,
        "pair": pair,
    }


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
