# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""traefik_mirror on an HTTPRoute: read what _httproute_plan needs, plan, write in order (or not, in check mode)."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ConflictError, DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import (
    KIND_HTTP_ROUTE,
    HTTPRouteObserved,
    HTTPRouteParams,
    HTTPRoutePlan,
    parent_gateways,
    plan_absent,
    plan_present,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_resolution import (
    CRD_PROVIDER_HINT,
    GATEWAY_TRAEFIK_GROUP,
    require_traefik_service_crd,
    traefik_parents,
    wait_for_resolution,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_view import label_form, parse_http_route
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import parse_launch_request
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import check_mirror_percent
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import KubeWriter
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import parse_traefik_service
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_reads import RouteReads
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route

ROUTE_KINDS = ("IngressRoute", KIND_HTTP_ROUTE)
MAX_ATTEMPTS = 3


class Client(KubeWriter, Protocol):
    """What traefik_mirror's IngressRoute runner writes with, and API discovery (is the TraefikService CRD served)."""

    def serves(self, group: str, plural: str) -> bool: ...


def route_kind(client: Client, options: Mapping[str, Any]) -> str:
    """route_kind as given; unset: HTTPRoute when only an HTTPRoute of that name exists, else IngressRoute."""
    if options.get("route_kind"):
        return str(options["route_kind"])
    name, namespace = options["route_name"], options.get("namespace") or "default"
    try:
        if client.get("IngressRoute", namespace, name) is not None:
            return "IngressRoute"
        found = client.get(KIND_HTTP_ROUTE, namespace, name)
    except DarklaunchError:
        # Not readable (no Gateway API on this cluster, RBAC, no Traefik CRDs): the IngressRoute path, as
        # before route_kind existed, says what is missing in its own words.
        return "IngressRoute"
    return KIND_HTTP_ROUTE if found is not None else "IngressRoute"


# Options of the IngressRoute path that have no meaning on an HTTPRoute yet: refused rather than ignored.
UNSUPPORTED = ("mirror_methods", "mirror_match", "main_port", "mirror_name", "wrr_name")


def ingress_route_only(options: Mapping[str, Any]) -> list[str]:
    """The options among ``options`` that only an IngressRoute takes (given: set, and not an empty list/text)."""
    given = [name for name in UNSUPPORTED if options.get(name) not in (None, "", [])]
    if (options.get("main_kind") or "Service") != "Service":
        given.append("main_kind")
    return given


def params_from(options: Mapping[str, Any], api_group: str) -> HTTPRouteParams:
    route = options["route_name"]
    given = ingress_route_only(options)
    if given:
        raise DarklaunchError(
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} not supported on an HTTPRoute yet (route_kind "
            f"HTTPRoute, {options.get('namespace') or 'default'}/{route}); leave {'it' if len(given) == 1 else 'them'} "
            "unset; nothing was changed.",
            field=given[0],
        )
    launch = parse_launch_request(options.get("launch"))
    if launch is not None and (options.get("state") or "present") != "present":
        raise DarklaunchError(
            "launch only applies with state=present (it records a running launch on the mirror); state=absent "
            "deletes the mirror and its launch record. Remove launch from this call.",
            field="launch",
        )
    percent = options.get("mirror_percent")
    if options.get("state", "present") == "present":
        check_mirror_percent(percent, hint=" To stop mirroring use state=absent.")
    return HTTPRouteParams(
        route_name=route,
        namespace=options.get("namespace") or "default",
        state=options.get("state") or "present",
        mirror_service=options.get("mirror_service") or default_names.shadow_service_name(route),
        mirror_port=options.get("mirror_port"),
        mirror_percent=percent,
        main_service=options.get("main_service") or "",
        rule_index=options.get("rule_index"),
        api_group=api_group,
        attach=bool(options.get("attach_to_ingress")),
        restore=options.get("restore_ingress_to_wrr") is not False,
        launch=launch,
        mirror_body=options.get("mirror_body"),
        max_body_size=options.get("max_body_size"),
    )


def observe(client: Client, params: HTTPRouteParams) -> HTTPRouteObserved:
    route = client.get(KIND_HTTP_ROUTE, params.namespace, params.route_name)
    if route is None:
        raise DarklaunchError(f"HTTPRoute {params.namespace}/{params.route_name} does not exist.", field="route_name")
    gateways = {key: client.get("Gateway", key[0], key[1]) for key in parent_gateways(route, params.namespace)}
    class_names = {(gw.get("spec") or {}).get("gatewayClassName", "") for gw in gateways.values() if gw}
    classes = {name: client.get("GatewayClass", None, name) for name in class_names if name}
    mirror_service = None
    if params.state == "present":
        mirror_service = client.get("Service", params.namespace, params.mirror_service)
    return HTTPRouteObserved(
        route=route,
        gateways=gateways,
        classes=classes,
        mirror=client.get("TraefikService", params.namespace, params.mirror_name),
        split=client.get("TraefikService", params.namespace, params.split_name),
        mirror_service=mirror_service,
    )


def plan(client: Client, params: HTTPRouteParams) -> tuple[HTTPRoutePlan, HTTPRouteObserved]:
    observed = observe(client, params)
    if params.state == "present":
        # The clock is read here, not in the pure planner: the launch record's deadline counts from it.
        return plan_present(params, observed, datetime.now(timezone.utc)), observed
    return plan_absent(params, observed), observed


def _apply(client: Client, params: HTTPRouteParams, result: HTTPRoutePlan, propagation: float) -> None:
    previous = ""
    for write in result.writes:
        # Traefik watches HTTPRoutes and TraefikServices apart: a route must never name a TraefikService
        # it has not seen yet (users would get errors), nor lose one it still routes through.
        if previous and previous != write.kind:
            time.sleep(propagation)
        if write.verb == "create":
            client.create(write.kind, params.namespace, write.body)
        elif write.verb == "patch":
            client.json_patch(write.kind, params.namespace, write.name, write.body)
        else:
            client.delete(write.kind, params.namespace, write.name, write.resource_version)
        previous = write.kind


def _confirm_attach(
    client: Client, params: HTTPRouteParams, result: HTTPRoutePlan, observed: HTTPRouteObserved, propagation: float
) -> list[str]:
    """After a rule was pointed at the mirror: Traefik's status for the route must not say the TraefikService is
    unresolved (its CRD provider off, or not watching the namespace). If it does, put the rule back and delete the
    TraefikServices this run created, then fail. Warnings when Traefik reports nothing to check."""
    if params.state != "present" or not any(w.kind == KIND_HTTP_ROUTE for w in result.writes):
        return []
    where = f"HTTPRoute {params.namespace}/{params.route_name}"
    if not traefik_parents(observed.route):
        return [
            f"Traefik reports no status on {where} (Traefik 3.0 writes none), so whether it resolved rule "
            f"{result.rule_index}'s backendRef to TraefikService {params.mirror_name} was not checked."
        ]
    found = wait_for_resolution(client, params.namespace, params.route_name)
    if found.resolved is None:
        return [
            f"Traefik did not report {where}'s status for the change in time; check that its status.parents "
            f"say ResolvedRefs=True for rule {result.rule_index}'s backendRef to TraefikService {params.mirror_name}."
        ]
    if found.resolved:
        return []
    created = {w.name for w in result.writes if w.verb == "create"}
    restore = dataclasses.replace(params, state="absent", restore=True)
    back, _observed = plan(client, restore)
    back.writes = [w for w in back.writes if w.kind == KIND_HTTP_ROUTE or w.name in created]
    _apply(client, restore, back, propagation)
    raise DarklaunchError(
        f"Traefik does not resolve {where} rule {result.rule_index}'s backendRef to TraefikService "
        f"{params.mirror_name} ({found.message}), so the rule's users would get errors. {CRD_PROVIDER_HINT} "
        "The rule was put back on its original backendRefs and the TraefikServices this run created were deleted.",
        field="route_kind",
    )


def _distribution(client: Client, namespace: str, result: HTTPRoutePlan) -> dict[str, Any] | None:
    """The route's traffic split after the run (planned, in check mode): the route, the mirror and the split as
    planned, every other object of the route's namespace it reaches as read now (the one route walk, RouteReads).
    Same shape as traefik_traffic_info's."""
    if result.route_after is None:
        return None
    route = parse_http_route(result.route_after)
    planned = [parse_traefik_service(obj) for obj in (result.mirror_after, result.split_after) if obj is not None]
    reads = RouteReads(client, namespaces=[namespace])
    refs = [ref for rule in route.routes for ref in rule.services]
    reached = reads.reachable(refs, planned={service.key: service for service in planned})
    services = reads.services(namespace, refs, reached)
    return resolve_route(route, reached, services, label_form=label_form(route)).to_dict()


def _readable_distribution(client: Client, namespace: str, result: HTTPRoutePlan) -> dict[str, Any] | None:
    """_distribution, or None when what it reads may not be read: the run's own work is done either way."""
    try:
        return _distribution(client, namespace, result)
    except DarklaunchError:
        return None


def run_httproute_mirror(client: Client, options: Mapping[str, Any], *, check_mode: bool) -> dict[str, Any]:
    """Converge; returns the module's result (changed, status, actions, rule_index, httproute, diff, warnings)."""
    requested = options.get("api_group")
    params = params_from(options, GATEWAY_TRAEFIK_GROUP)
    if params.state == "present":
        # Before any write: a rule pointed at a TraefikService Traefik cannot resolve answers its users with errors.
        group = requested if requested not in (None, "", "auto") else GATEWAY_TRAEFIK_GROUP
        require_traefik_service_crd(client, group, f"HTTPRoute {params.namespace}/{params.route_name}")
    api_group = client.traefik_group(requested)
    params = dataclasses.replace(params, api_group=api_group)
    propagation = float(options.get("propagation_seconds") or 0)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        result, observed = plan(client, params)
        if check_mode or not result.writes:
            break
        try:
            _apply(client, params, result, propagation)
            break
        except ConflictError:
            # Changed between our read and our write: planning again from fresh objects is idempotent.
            if attempt == MAX_ATTEMPTS:
                raise
    if not check_mode:
        result.warnings += _confirm_attach(client, params, result, observed, propagation)
    before = copy.deepcopy(observed.route)
    after = result.route_after or before
    rules = sorted({result.rule_index} if result.rule_index is not None else set()) or list(
        range(len(before["spec"].get("rules") or []))
    )
    return {
        "changed": bool(result.writes),
        "api_group": api_group,
        "status": result.status,
        "route_kind": KIND_HTTP_ROUTE,
        "actions": [
            {
                "verb": w.verb,
                "kind": w.kind,
                "name": w.name,
                "namespace": params.namespace,
                "summary": w.summary,
                "record_only": w.record_only,
            }
            for w in result.writes
        ],
        "mirror": result.mirror_after,
        "launch": result.launch.to_dict() if result.launch else None,
        "resolved": copy.deepcopy(result.resolved),
        "httproute": {
            "name": params.route_name,
            "namespace": params.namespace,
            "rule_index": result.rule_index,
            "before": [{"rule": i, "backendRefs": before["spec"]["rules"][i].get("backendRefs")} for i in rules],
            "after": [{"rule": i, "backendRefs": after["spec"]["rules"][i].get("backendRefs")} for i in rules],
        },
        "distribution": _readable_distribution(client, params.namespace, result),
        "diff": {"before": before.get("spec"), "after": after.get("spec")},
        "warnings": result.warnings,
    }
