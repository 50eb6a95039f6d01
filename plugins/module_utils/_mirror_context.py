# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the planner knows while it plans: the objects read, parsed; the ports chosen; what the options resolved to."""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import (
    build_reference_index,
    live_backends,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import percent_value
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import LaunchRecord
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    ROUTES_ANNOTATION,
    RequestMatch,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    STATE_PRESENT,
    Action,
    MirrorParams,
    MirrorPlan,
    Observed,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    PRE_MIRROR_ANNOTATION,
    IngressRouteObj,
    KubeServiceObj,
    ObjectKey,
    PortValue,
    ServiceRef,
    TraefikServiceObj,
    index_by_key,
    parse_ingress_route,
    parse_kube_service,
    parse_service_ref,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_walker import resolve_route


@dataclass
class PlanContext:
    params: MirrorParams
    observed: Observed
    mirror: TraefikServiceObj | None
    ingress_route: IngressRouteObj | None
    wrr: TraefikServiceObj | None
    main_service: KubeServiceObj | None
    main_traefik_service: TraefikServiceObj | None
    mirror_target: KubeServiceObj | None
    other_ingress_routes: list[IngressRouteObj]
    other_traefik_services: list[TraefikServiceObj]
    now: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    # Set when the planned attach ends a weighted split that served real users from several backends.
    ended_weighted_split: bool = False

    @property
    def mirror_key(self) -> ObjectKey:
        return (self.params.namespace, self.params.mirror_name)

    def main_exists(self) -> bool:
        if self.params.main_kind == KIND_TRAEFIK_SERVICE:
            return self.main_traefik_service is not None
        return self.main_service is not None

    def is_mirror(self, ref: ServiceRef) -> bool:
        return ref.kind == KIND_TRAEFIK_SERVICE and ref.key == self.mirror_key

    def is_wrr(self, ref: ServiceRef) -> bool:
        return ref.kind == KIND_TRAEFIK_SERVICE and ref.key == (self.params.namespace, self.params.wrr_name)

    def is_main(self, ref: ServiceRef) -> bool:
        return ref.kind == self.params.main_kind and ref.key == (self.params.namespace, self.params.main_service)

    def is_mirror_entry(self, entry: Mapping[str, Any]) -> bool:
        return self.is_mirror(parse_service_ref(entry, self.params.namespace))

    @property
    def request(self) -> RequestMatch | None:
        """The requests to copy when mirror_methods / mirror_match are set (validated)."""
        params = self.params
        if params.mirror_methods is None and params.mirror_match is None:
            return None
        return RequestMatch(tuple(params.mirror_methods or ()), params.mirror_match or "")


def build_context(params: MirrorParams, observed: Observed, now: datetime | None) -> PlanContext:
    mirror = parse_traefik_service(observed.mirror) if observed.mirror else None
    ingress_route = parse_ingress_route(observed.ingress_route) if observed.ingress_route else None
    main_service = main_traefik_service = None
    if observed.main:
        if params.main_kind == KIND_TRAEFIK_SERVICE:
            main_traefik_service = parse_traefik_service(observed.main)
        else:
            main_service = parse_kube_service(observed.main)
    own_keys = {(params.namespace, params.route_name)}
    others = [parse_ingress_route(raw) for raw in observed.routes_referencing_mirror]
    mirror_key = (params.namespace, params.mirror_name)
    return PlanContext(
        params=params,
        observed=observed,
        mirror=mirror,
        ingress_route=ingress_route,
        wrr=parse_traefik_service(observed.wrr) if observed.wrr else None,
        main_service=main_service,
        main_traefik_service=main_traefik_service,
        mirror_target=parse_kube_service(observed.mirror_target) if observed.mirror_target else None,
        other_ingress_routes=[ir for ir in others if ir.key not in own_keys],
        other_traefik_services=[
            ts for ts in (parse_traefik_service(raw) for raw in observed.traefik_services) if ts.key != mirror_key
        ],
        now=now,
    )


def _traefik_service_map(
    ctx: PlanContext, mirror_after: Mapping[str, Any] | None
) -> dict[ObjectKey, TraefikServiceObj]:
    known = index_by_key(ctx.other_traefik_services)
    for extra in (ctx.wrr, ctx.main_traefik_service):
        if extra is not None:
            known.setdefault(extra.key, extra)
    known.pop(ctx.mirror_key, None)
    if mirror_after is not None:
        known[ctx.mirror_key] = parse_traefik_service(mirror_after)
    return known


def _kube_service_map(ctx: PlanContext) -> dict[ObjectKey, KubeServiceObj] | None:
    if ctx.observed.services is None:
        return None
    known = index_by_key(parse_kube_service(raw) for raw in ctx.observed.services)
    for extra in (ctx.main_service, ctx.mirror_target):
        if extra is not None:
            known[extra.key] = extra
    return known


def referencing_routes(
    ctx: PlanContext, ingress_route_after: Mapping[str, Any] | None, mirror_after: Mapping[str, Any] | None
) -> list[str]:
    """IngressRoutes (``ns/name``) that send traffic through the mirror once the plan is applied."""
    ingress_routes = list(ctx.other_ingress_routes)
    if ingress_route_after is not None:
        ingress_routes.append(parse_ingress_route(ingress_route_after))
    index = build_reference_index(ingress_routes, _traefik_service_map(ctx, mirror_after))
    names = [f"{ref.namespace}/{ref.ingress_route}" for ref in index.get(ctx.mirror_key, [])]
    return list(dict.fromkeys(names))


def distribution_after(
    ctx: PlanContext, ingress_route_after: Mapping[str, Any] | None, mirror_after: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if ingress_route_after is None:
        return None
    resolved = resolve_route(
        parse_ingress_route(ingress_route_after), _traefik_service_map(ctx, mirror_after), _kube_service_map(ctx)
    )
    return resolved.to_dict()


@dataclass(frozen=True)
class _PortChoice:
    service: KubeServiceObj | None
    requested: PortValue | None
    current: PortValue | None  # what the existing mirror already references for this Service
    field_name: str
    service_field: str
    name: str


def _backend_port(choice: _PortChoice) -> PortValue:
    """The port to reference: the requested one (checked against the Service), else the one the mirror
    already uses (a hand-made mirror may say "http" where the default would say 80: not a change), else
    the Service's only port."""
    service, requested, field_name = choice.service, choice.requested, choice.field_name
    current = choice.current
    if requested is None and current is not None and (service is None or service.find_port(current) is not None):
        return current
    if service is None:
        if requested is None:
            raise DarklaunchError(
                f"Service {choice.name} ({choice.service_field}) does not exist, so its port cannot be chosen. "
                f"Create the Service first, or set {field_name}.",
                field=field_name,
            )
        return requested
    if requested is not None:
        if service.find_port(requested) is None:
            raise DarklaunchError(
                f"Service {service.namespace}/{service.name} has no port {requested!r} "
                f"(it has {service.describe_ports()}); set {field_name} to one of them.",
                field=field_name,
            )
        return requested
    if len(service.ports) == 1:
        return service.ports[0].port
    reason = "has no ports" if not service.ports else f"has several ports ({service.describe_ports()})"
    raise DarklaunchError(
        f"Service {service.namespace}/{service.name} {reason}; set {field_name} to the port that serves this route.",
        field=field_name,
    )


def choose_main_port(ctx: PlanContext) -> PortValue | None:
    params = ctx.params
    if params.main_kind == KIND_TRAEFIK_SERVICE:
        if params.main_port is not None:
            ctx.warnings.append("main_port is ignored: a TraefikService main service has no port.")
        return None
    main = ctx.mirror.main if ctx.mirror else None
    current = main.port if main is not None and ctx.is_main(main) else None
    return _backend_port(
        _PortChoice(ctx.main_service, params.main_port, current, "main_port", "main_service", params.main_service)
    )


def choose_mirror_port(ctx: PlanContext) -> PortValue:
    params = ctx.params
    wanted = (params.namespace, params.mirror_service)
    mirrors = ctx.mirror.mirrors if ctx.mirror else ()
    current = next((m.port for m in mirrors if m.kind == KIND_SERVICE and m.key == wanted), None)
    return _backend_port(
        _PortChoice(
            ctx.mirror_target, params.mirror_port, current, "mirror_port", "mirror_service", params.mirror_service
        )
    )


def split_text(wrr: TraefikServiceObj) -> str:
    total = sum(ref.effective_weight for ref in wrr.weighted)
    parts = [f"{percent_value(_fraction(ref.effective_weight, total))}% {ref.name}" for ref in wrr.weighted]
    return ", ".join(parts)


def _fraction(numerator: int, denominator: int) -> Fraction:
    return Fraction(numerator, denominator) if denominator else Fraction(0)


def raw_route_services(ingress_route: IngressRouteObj, index: int) -> list[Mapping[str, Any]]:
    routes = ingress_route.raw.get("spec", {}).get("routes") or []
    services = routes[index].get("services") or []
    return [entry for entry in services if isinstance(entry, Mapping)]


def assert_preserved(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    added_before: Collection[int] = (),
    added_after: Collection[int] = (),
) -> None:
    """Guard the promise that only route targets, the routes added for request matching and our annotations
    change."""

    def stripped(obj: Mapping[str, Any], added: Collection[int]) -> dict[str, Any]:
        copied = copy.deepcopy(dict(obj))
        metadata = copied.get("metadata", {})
        annotations = dict(metadata.get("annotations") or {})
        annotations.pop(PRE_MIRROR_ANNOTATION, None)
        annotations.pop(ROUTES_ANNOTATION, None)
        metadata["annotations"] = annotations
        spec = copied.get("spec", {})
        if spec.get("routes"):
            spec["routes"] = [route for index, route in enumerate(spec["routes"]) if index not in added]
        for route in spec.get("routes") or []:
            route.pop("services", None)
        return copied

    if stripped(before, added_before) != stripped(after, added_after):
        raise DarklaunchError("Internal error: the planned IngressRoute patch would change more than route targets.")


def _previous_percent(ctx: PlanContext) -> int | None:
    """The share the mirror copied to mirror_service before this run (None: no mirror, or another shadow)."""
    if ctx.mirror is None:
        return None
    wanted = (ctx.params.namespace, ctx.params.mirror_service)
    return next((m.percent for m in ctx.mirror.mirrors if m.kind == KIND_SERVICE and m.key == wanted), None)


def resolved_options(ctx: PlanContext, main_port: PortValue | None, mirror_port: PortValue | None) -> dict[str, Any]:
    params = ctx.params
    live = live_backends(ctx.wrr) if ctx.wrr is not None else []
    return {
        "route_name": params.route_name,
        "namespace": params.namespace,
        "mirror_name": params.mirror_name,
        "wrr_name": params.wrr_name,
        "main_service": params.main_service,
        "main_kind": params.main_kind,
        "main_port": main_port,
        "mirror_service": params.mirror_service,
        "mirror_port": mirror_port,
        "mirror_percent": params.mirror_percent if params.state == STATE_PRESENT else None,
        "previous_percent": _previous_percent(ctx),
        "weighted_split": {
            "live": len(live) > 1,
            "split": split_text(ctx.wrr) if ctx.wrr is not None and ctx.wrr.weighted else None,
            "ended": ctx.ended_weighted_split,
        },
    }


def observed_copy(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A plan's own copy of an object as read (the plan may change it; the read stays as it was)."""
    return copy.deepcopy(dict(obj)) if obj else None


def finish_plan(
    ctx: PlanContext,
    actions: list[Action],
    status: str,
    *,
    mirror_after: dict[str, Any] | None,
    ingress_route_after: dict[str, Any] | None,
    ports: tuple[PortValue | None, PortValue | None] = (None, None),
    launch: LaunchRecord | None = None,
) -> MirrorPlan:
    """The plan reported for what was decided: both objects before (as read) and after, the traffic split after,
    and the options as resolved (``ports``: the main and mirror ports chosen)."""
    return MirrorPlan(
        actions=actions,
        warnings=ctx.warnings,
        status=status,
        mirror_before=observed_copy(ctx.observed.mirror),
        mirror_after=mirror_after,
        ingress_route_before=observed_copy(ctx.observed.ingress_route),
        ingress_route_after=ingress_route_after,
        distribution=distribution_after(ctx, ingress_route_after, mirror_after),
        launch=launch,
        resolved=resolved_options(ctx, *ports),
    )
