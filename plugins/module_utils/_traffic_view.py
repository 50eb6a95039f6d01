# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the cluster's Traefik objects and describe them: the one read path of traefik_traffic_info and
of the ``traffic`` lookup, so both answer the same question the same way.

I/O goes through a ``KubeClient``-like object (``traefik_group``, ``list``, ``get``); everything else is
delegated to the pure ``_distribution`` code. A whole namespace (or cluster) is listed, in pages; one named
route is read by name - the IngressRoute, the TraefikServices it reaches and their Services - so its cost
does not grow with the namespace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import (
    build_reference_index,
    ingress_route_targets,
    summarise_mirror,
    summarise_weighted,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import (
    ROLE_OTHER_ROUTE,
    ROLE_SHADOW,
    RouteDistribution,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_labels import pre_launch_patterns
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import (
    KIND_HTTP_ROUTE,
    saved_backend_refs,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_view import (
    describe_http_route,
    find_route,
    http_route_targets,
    label_form,
    parse_http_route,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control import PAUSED, read_control
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
    ServiceRef,
    TraefikServiceObj,
    check_name,
    index_by_key,
    parse_ingress_route,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_reads import RouteReads, require_namespace
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route


class KubeReader(Protocol):
    # What a printed rollback command names to reach this cluster (KubeClient.connection).
    connection: CommandConnection

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
    route_kind: str | None = None,
) -> dict[str, Any]:
    """mirrors, weighted, ingress_routes and abandoned_launches of one or all namespaces (listed); with
    ``route_name``, of that route only, read by name, plus its distribution (see ``_read_one_route``).
    ``now`` (default: the clock) decides which launch records are past their deadline; ``route_kind``
    (IngressRoute, HTTPRoute; unset: see _httproute_view.find_route) which route ``route_name`` names."""
    validate_scope(namespace, route_name)
    if route_name is not None and namespace is not None:
        return _read_one_route(
            client, namespace, route_name, api_group, now or datetime.now(timezone.utc), route_kind=route_kind
        )
    group = client.traefik_group(api_group)
    traefik_services = [parse_traefik_service(raw) for raw in client.list("TraefikService", namespace)]
    ingress_routes = [parse_ingress_route(raw) for raw in client.list("IngressRoute", namespace)]
    http_routes = _list_http_routes(client, namespace)
    routes = ingress_routes + http_routes
    if namespace is not None and not traefik_services and not routes:
        require_namespace(client, namespace)
    result = _listing(group, namespace, traefik_services, routes, now or datetime.now(timezone.utc), client.connection)
    result.setdefault("http_routes", [])
    return result


def read_http_routes(
    client: KubeReader, *, namespace: str | None, route_name: str | None = None, api_group: str | None = None
) -> dict[str, Any]:
    """The lookup's ``httproutes`` term: every HTTPRoute of one or all namespaces (listed), or the one named
    (read by name, with the TraefikServices it reaches), each described rule by rule (describe_http_route).
    Unlike the listings that merely include HTTPRoutes, a cluster without the Gateway API or credentials that may
    not read HTTPRoutes is an error here: HTTPRoutes are what was asked for."""
    validate_scope(namespace, route_name)
    group = client.traefik_group(api_group)
    if route_name is not None and namespace is not None:
        raw = client.get(KIND_HTTP_ROUTE, namespace, route_name)
        if raw is None:
            require_namespace(client, namespace)
            raise _missing_route(route_name, namespace, KIND_HTTP_ROUTE)
        routes = [parse_http_route(raw)]
        reached = RouteReads(client).reachable(ref for rule in routes[0].routes for ref in rule.services)
    else:
        routes = [parse_http_route(raw) for raw in client.list(KIND_HTTP_ROUTE, namespace)]
        if namespace is not None and not routes:
            require_namespace(client, namespace)
        # The mirrors and splits the rules route through (those of other namespaces, as in read_traffic, not).
        listed = client.list(KIND_TRAEFIK_SERVICE, namespace) if routes else []
        reached = index_by_key(parse_traefik_service(item) for item in listed)
    return {"api_group": group, "http_routes": [describe_http_route(route, reached) for route in routes]}


def _list_http_routes(client: KubeReader, namespace: str | None) -> list[IngressRouteObj]:
    """The HTTPRoutes, whose rules may route through a mirror too (traefik_mirror on an HTTPRoute); none where
    the Gateway API is not installed or they may not be listed (the shipped viewer Role predates them)."""
    try:
        return [parse_http_route(raw) for raw in client.list(KIND_HTTP_ROUTE, namespace)]
    except DarklaunchError:
        return []


def _listing(
    group: str,
    namespace: str | None,
    traefik_services: list[TraefikServiceObj],
    routes: list[IngressRouteObj],
    now: datetime,
    connection: CommandConnection,
) -> dict[str, Any]:
    """The answer's lists from what was read: every mirror (with its launch record) and weighted split with
    the routes among ``routes`` (IngressRoutes, HTTPRoutes) that go through it, and each route's targets
    (``http_routes`` only when an HTTPRoute is among them)."""
    ts_index = index_by_key(traefik_services)
    references = build_reference_index(routes, ts_index)
    ingress_routes = [route for route in routes if route.kind != KIND_HTTP_ROUTE]
    http_routes = [route for route in routes if route.kind == KIND_HTTP_ROUTE]
    mirrors = [
        _with_launch(summarise_mirror(ts, references.get(ts.key, ())), ts, now, connection)
        for ts in traefik_services
        if ts.spec_type == SPEC_MIRRORING
    ]
    return {
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
        **({"http_routes": [http_route_targets(route, ts_index) for route in http_routes]} if http_routes else {}),
    }


def read_route_listing(
    client: KubeReader,
    *,
    namespace: str,
    route_name: str,
    api_group: str | None = None,
    now: datetime | None = None,
    route_kind: str | None = None,
) -> dict[str, Any]:
    """What ``read_traffic`` answers for one route, without its distribution (and so without reading Services):
    the lookup's ``routes`` and ``ingressroutes`` terms with ``route_name``."""
    validate_scope(namespace, route_name)
    return _read_one_route(
        client,
        namespace,
        route_name,
        api_group,
        now or datetime.now(timezone.utc),
        with_distribution=False,
        route_kind=route_kind,
    )


def _read_one_route(
    client: KubeReader,
    namespace: str,
    route_name: str,
    api_group: str | None,
    now: datetime,
    *,
    with_distribution: bool = True,
    route_kind: str | None = None,
) -> dict[str, Any]:
    """``read_traffic`` for one named route, from by-name reads only.

    The answer has the shape of the namespace's: ``mirrors``, ``weighted`` and ``ingress_routes`` are the
    namespace's entries for the objects this route reaches, plus the route's default mirror
    (``<route>-mirror``, where a launch records itself) even when nothing routes through it. Entries are
    those the namespace listing would give, except that ``referenced_by`` (and so ``active``) counts this
    IngressRoute only: finding every other route through a service is what listing is for. An HTTPRoute is
    reported in ``http_routes`` (``ingress_routes`` is then empty).
    """
    reads = RouteReads(client)
    ingress_route = _read_route(client, namespace, route_name, api_group, route_kind)
    group = client.traefik_group(api_group)
    route_refs = [ref for route in ingress_route.routes for ref in route.services]
    reached = reads.reachable(route_refs)
    # The mirror traefik_mirror creates when mirror_name is not given carries the launch record, and is
    # reported with its route even while no route goes through it (inactive).
    default_mirror = ServiceRef(
        name=default_names.mirror_name(route_name), kind=KIND_TRAEFIK_SERVICE, namespace=namespace
    )
    listed = {**reached, **reads.reachable([default_mirror])}
    # As in the namespace listing: that namespace's TraefikServices, in the API's order (by name).
    own = [listed[key] for key in sorted(listed) if key[0] == namespace]
    result = _listing(group, namespace, own, [ingress_route], now, client.connection)
    if with_distribution:
        services = _services(reads, namespace, route_refs, reached)
        result["distribution"] = _resolve(ingress_route, reached, services).to_dict()
    return result


def _services(
    reads: RouteReads, namespace: str, route_refs: list[ServiceRef], reached: dict[ObjectKey, TraefikServiceObj]
) -> dict[ObjectKey, KubeServiceObj] | None:
    """The route namespace's Services the route reaches; None when they may not be read."""
    try:
        return reads.services(namespace, route_refs, reached)
    except DarklaunchError:
        # Reading Services is a bonus (it finds broken backends); users without that right still get the
        # TraefikService-level answer.
        return None


def _resolve(
    route: IngressRouteObj,
    reached: dict[ObjectKey, TraefikServiceObj],
    services: dict[ObjectKey, KubeServiceObj] | None,
) -> RouteDistribution:
    if route.kind != KIND_HTTP_ROUTE:
        return resolve_route(route, reached, services)
    distribution = resolve_route(route, reached, services, label_form=label_form(route))
    aliases = pre_launch_patterns(route.namespace, route.name, saved_backend_refs(route.raw) or {})
    return dataclasses.replace(distribution, label_aliases=tuple(aliases.items()))


def _with_launch(
    summary: dict[str, Any], mirror: TraefikServiceObj, now: datetime, connection: CommandConnection
) -> dict[str, Any]:
    """A mirror listing entry plus ``launch``: the launch recorded on it (see _launch_record) with the
    operator's standing command (see _launch_control), or None."""
    record = read_launch_record(mirror.annotations)
    if record is None:
        summary["launch"] = None
        return summary
    launch = describe_launch(
        record,
        now,
        mirror_name=mirror.name,
        namespace=mirror.namespace,
        referenced_by=summary.get("referenced_by") or (),
        connection=connection,
    )
    control = read_control(mirror.annotations)
    launch["control"] = control.to_dict() if control else None
    if control is not None and not launch["abandoned"]:
        launch["message"] += (
            f" It is PAUSED ({control.describe()}): it holds its step, still judging, until "
            "playbooks/shadow_resume.yml."
            if control.state == PAUSED
            else f" It is being ABORTED ({control.describe()}): it rolls back at its next check."
        )
    summary["launch"] = launch
    return summary


def abandoned_launches(mirrors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The launches past their deadline, each with the mirror it was found on."""
    return [
        {"mirror": mirror["name"], "namespace": mirror["namespace"], **mirror["launch"]}
        for mirror in mirrors
        if mirror.get("launch") and mirror["launch"]["abandoned"]
    ]


def read_distribution(
    client: KubeReader,
    *,
    namespace: str,
    route_name: str,
    api_group: str | None = None,
    route_kind: str | None = None,
) -> RouteDistribution:
    """Only the distribution of one route, read by name: the IngressRoute (or HTTPRoute), the TraefikServices
    it reaches (in any namespace) and the Services they reference in the route's namespace."""
    validate_scope(namespace, route_name)
    ingress_route = _read_route(client, namespace, route_name, api_group, route_kind)
    reads = RouteReads(client)
    route_refs = [ref for route in ingress_route.routes for ref in route.services]
    reached = reads.reachable(route_refs)
    services = _services(reads, namespace, route_refs, reached)
    return _resolve(ingress_route, reached, services)


def _read_route(
    client: KubeReader, namespace: str, route_name: str, api_group: str | None, route_kind: str | None = None
) -> IngressRouteObj:
    """The named IngressRoute (its read also settles the API group when it is not given), or the HTTPRoute
    (see _httproute_view.find_route), or a clear error."""
    if api_group not in (None, "", "auto"):
        client.traefik_group(api_group)
    kind, raw = find_route(client, namespace, route_name, route_kind)
    if raw is None:
        require_namespace(client, namespace)
        raise _missing_route(route_name, namespace, kind)
    return parse_http_route(raw) if kind == KIND_HTTP_ROUTE else parse_ingress_route(raw)


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
    aliases = dict(distribution.label_aliases)
    for backend in distribution.backends(mirrored):
        role = backend["role"]
        pair = list(pairs.get(backend["service_label"], {})) if role == ROLE_SHADOW else []
        target = _target(backend, role, pair or None)
        if role != ROLE_SHADOW and aliases.get(backend["service_label"]):
            # An HTTPRoute's main before attach: its series under the Gateway provider's labels (its history).
            target["label_patterns"] = list(aliases[backend["service_label"]])
        targets.append(target)
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
        "percent": backend.get("percent"),
    }


def _missing_route(route_name: str, namespace: str, kind: str = "IngressRoute") -> DarklaunchError:
    return DarklaunchError(
        f'{kind} "{route_name}" was not found in namespace "{namespace}": check route_name and namespace.',
        field="route_name",
    )
