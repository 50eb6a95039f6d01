# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attaching the IngressRoute to the mirror: repointed services, the sign-off to end a weighted split, added routes."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import live_backends
from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_wording import join_words
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import (
    JsonPatch,
    apply_json_patch,
    escape_pointer,
    version_test,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_context import (
    PlanContext,
    assert_preserved,
    raw_route_services,
    split_text,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    RequestMatch,
    added_routes,
    plan_request_routes,
    refuse_switching,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    Action,
    MirrorParams,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_restore import (
    restored_services,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    PRE_MIRROR_ANNOTATION,
    IngressRouteObj,
    ServiceRef,
    dump_saved_services,
    parse_service_ref,
)

# LoadBalancerSpec keys that keep their meaning when an entry is repointed to a TraefikService.
_ROUTING_KEYS = {"name", "kind", "namespace", "port", "weight"}


def describe_targets(ingress_route: IngressRouteObj) -> str:
    described = []
    for route in ingress_route.routes:
        names = ", ".join(f"{ref.kind} {ref.name}" for ref in route.services) or "nothing"
        described.append(f"route {route.index} -> {names}")
    return "; ".join(described) or "no routes"


def _require_ingress_route(ctx: PlanContext) -> IngressRouteObj:
    if ctx.ingress_route is None:
        params = ctx.params
        raise DarklaunchError(
            f"IngressRoute {params.namespace}/{params.route_name} does not exist, so attach_to_ingress has nothing "
            "to repoint. Check route_name and namespace, or run without attach_to_ingress.",
            field="route_name",
        )
    return ctx.ingress_route


def _check_weighted_split(ctx: PlanContext, repointed_refs: Sequence[ServiceRef]) -> None:
    """Refuse (without confirmation) to end a WRR that sends real users to more than one backend."""
    params = ctx.params
    mirror_keeps_split = params.main_kind == KIND_TRAEFIK_SERVICE and params.main_service == params.wrr_name
    wrr = ctx.wrr
    if mirror_keeps_split or wrr is None or not any(ctx.is_wrr(ref) for ref in repointed_refs):
        return
    live = live_backends(wrr)
    if len(live) < 2:
        return
    main_name = params.main_service if params.main_kind == KIND_SERVICE else f"TraefikService {params.main_service}"
    losers = [ref.name for ref in live if ref.name != params.main_service]
    request = ctx.request
    if request is not None:
        # Request matching leaves the route on its services for every request it does not copy: those would
        # stay on the split, so the losers (the shadow among them, typically) would keep answering real users'
        # writes, the very requests request matching keeps away from them.
        raise DarklaunchError(
            f"IngressRoute {params.namespace}/{params.route_name} splits real users through the weighted "
            f"TraefikService {wrr.name} ({split_text(wrr)}). With {request.field}, the route keeps serving the "
            f"requests that are not copied from that split, so {join_words(losers)} would keep answering real "
            f"users' requests, writes included. Send every user to {main_name} in {wrr.name} first (weight 0 for "
            f"{join_words(losers)}), keep the split and mirror on top of it (main_kind=TraefikService, "
            f"main_service={wrr.name}), or attach without {request.field}.",
            field=request.field,
            details={"weighted_split": split_text(wrr)},
        )
    if not params.confirm_end_weighted_split:
        raise DarklaunchError(
            f"IngressRoute {params.namespace}/{params.route_name} splits real users through the weighted "
            f"TraefikService {wrr.name} ({split_text(wrr)}). Attaching the mirror ends that split: every user "
            f"response would come from {main_name}, and {', '.join(losers)} would no longer serve real users. "
            "Set confirm_end_weighted_split=true to accept that, or keep the split by mirroring on top of it "
            f"(main_kind=TraefikService, main_service={wrr.name}).",
            field="confirm_end_weighted_split",
            details={"weighted_split": split_text(wrr)},
        )
    ctx.ended_weighted_split = True
    copies = f"copies of {params.mirror_percent}% of requests, whose responses are discarded"
    others = [name for name in losers if name != params.mirror_service]
    parts = []
    if others:
        parts.append(f"{join_words(others)} no longer serve{'s' if len(others) == 1 else ''} real users")
    if params.mirror_service in losers:
        parts.append(f"{params.mirror_service} no longer serves real users and only receives {copies}")
    else:
        parts.append(f"{params.mirror_service} receives {copies}")
    ctx.warnings.append(
        f"Attaching ended the weighted split of {wrr.name} ({split_text(wrr)}): all user responses now come from "
        f"{main_name}; {'; '.join(parts)}."
    )


def _mirror_entry_for(entry: Mapping[str, Any], params: MirrorParams) -> dict[str, Any]:
    repointed: dict[str, Any] = {"name": params.mirror_name, "kind": KIND_TRAEFIK_SERVICE}
    if entry.get("namespace"):
        repointed["namespace"] = entry["namespace"]
    if entry.get("weight") is not None:
        repointed["weight"] = entry["weight"]
    return repointed


def _repointed_services(
    ctx: PlanContext, route_index: int, entries: Sequence[Mapping[str, Any]], matched: Sequence[int]
) -> list[dict[str, Any]]:
    """The route's services with the WRR/main entries replaced by one mirror entry (other entries kept)."""
    result: list[dict[str, Any]] = []
    mirror_position: int | None = None
    for position, entry in enumerate(entries):
        if position not in matched:
            result.append(copy.deepcopy(dict(entry)))
            continue
        dropped = sorted(set(entry) - _ROUTING_KEYS)
        if dropped:
            ctx.warnings.append(
                f"Route {route_index}'s target {entry.get('name')} had {', '.join(dropped)}, which the mirror entry "
                f"cannot carry; they are kept in the {PRE_MIRROR_ANNOTATION} annotation and return on restore."
            )
        if mirror_position is None:
            mirror_position = len(result)
            result.append(_mirror_entry_for(entry, ctx.params))
            continue
        # Two entries of one route pointed at the old targets: one mirror entry carries their combined weight.
        merged = result[mirror_position]
        weight = parse_service_ref(entry, ctx.params.namespace).effective_weight
        merged_weight = parse_service_ref(merged, ctx.params.namespace).effective_weight
        merged["weight"] = merged_weight + weight
    return result


def _annotation_ops(ingress_route: IngressRouteObj, value: str | None) -> JsonPatch:
    """Ops that set (value) or remove (None) the pre-mirror annotation, keeping every other annotation."""
    annotations = ingress_route.raw.get("metadata", {}).get("annotations")
    path = f"/metadata/annotations/{escape_pointer(PRE_MIRROR_ANNOTATION)}"
    present = isinstance(annotations, Mapping) and PRE_MIRROR_ANNOTATION in annotations
    if value is None:
        if not present:
            return []
        if len(annotations) == 1:
            # Attach added the whole map: remove it whole, so the restored object is exactly the original.
            return [{"op": "remove", "path": "/metadata/annotations"}]
        return [{"op": "remove", "path": path}]
    if not isinstance(annotations, Mapping):
        return [{"op": "add", "path": "/metadata/annotations", "value": {PRE_MIRROR_ANNOTATION: value}}]
    if annotations.get(PRE_MIRROR_ANNOTATION) == value:
        return []
    return [{"op": "add", "path": path, "value": value}]


def _matching_entries(
    ingress_route: IngressRouteObj, predicate: Callable[[ServiceRef], bool], skip: Collection[int] = ()
) -> dict[int, list[int]]:
    """{route index: [positions of the service entries that satisfy predicate]} (routes in ``skip`` left out)"""
    matched = {}
    for route in ingress_route.routes:
        if route.index in skip:
            continue
        positions = [i for i, ref in enumerate(route.services) if predicate(ref)]
        if positions:
            matched[route.index] = positions
    return matched


def _pre_launch_services(
    ctx: PlanContext, index: int, entries: Sequence[Mapping[str, Any]], saved: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """What route ``index`` targeted before the launch, to save for the restore.

    A route that already routes through the mirror (an attach resumed after an interruption, or one
    redone by hand) is not the original: a record saved earlier is kept, and without one the mirror
    entries are recorded as what a restore without a record puts back (wrr_name). Saving the mirror as
    "the original" would make the restore keep the route on the mirror and then delete it (404s).
    """
    if not any(ctx.is_mirror(parse_service_ref(entry, ctx.params.namespace)) for entry in entries):
        return [copy.deepcopy(dict(entry)) for entry in entries]
    if str(index) in saved:
        return [copy.deepcopy(dict(entry)) for entry in saved[str(index)]]
    return restored_services(ctx, index, entries, None)


def plan_attach(ctx: PlanContext, actions: list[Action]) -> dict[str, Any]:
    """Repoint the routes that target the WRR or the main service at the mirror; returns the IngressRoute after."""
    params = ctx.params
    ingress_route = _require_ingress_route(ctx)
    added, added_warnings = added_routes(ingress_route.raw, ctx.is_mirror_entry)
    ctx.warnings.extend(added_warnings)
    already_attached = any(
        ctx.is_mirror(ref) for route in ingress_route.routes if route.index not in added for ref in route.services
    )
    refuse_switching(ctx.request, already_attached, added, params.route_name, params.mirror_name)
    # Entries on the WRR are what attach replaces. Only an IngressRoute that targets the main service
    # directly (no WRR, not attached yet) has those entries repointed instead, so a /healthz route on
    # stable beside the WRR route stays untouched, also on reruns.
    matched = _matching_entries(ingress_route, ctx.is_wrr, skip=added)
    if not matched and not already_attached:
        matched = _matching_entries(ingress_route, ctx.is_main, skip=added)
    if not matched and not already_attached:
        raise DarklaunchError(
            f"IngressRoute {params.namespace}/{params.route_name} targets neither the weighted TraefikService "
            f"{params.wrr_name}, the main {params.main_kind} {params.main_service} nor the mirror "
            f"{params.mirror_name} ({describe_targets(ingress_route)}), so there is nothing to repoint. Set wrr_name "
            "or main_service to what the route targets, or repoint it yourself and run without attach_to_ingress.",
            field="attach_to_ingress",
        )
    if not matched:
        return copy.deepcopy(dict(ingress_route.raw))
    repointed_refs = [ingress_route.routes[i].services[p] for i, positions in matched.items() for p in positions]
    _check_weighted_split(ctx, repointed_refs)
    request = ctx.request
    if request is not None:
        return _plan_request_routes(ctx, request, ingress_route, matched, added, actions)
    saved = ingress_route.saved_pre_mirror_services()
    if saved is None and PRE_MIRROR_ANNOTATION in ingress_route.annotations:
        ctx.warnings.append(f"The {PRE_MIRROR_ANNOTATION} annotation was unreadable; it was rewritten.")
    saved = dict(saved or {})
    ops: JsonPatch = [version_test(ingress_route.raw, "IngressRoute")]
    for index, positions in matched.items():
        entries = raw_route_services(ingress_route, index)
        saved[str(index)] = _pre_launch_services(ctx, index, entries, saved)
        new_services = _repointed_services(ctx, index, entries, positions)
        ops.append({"op": "replace", "path": f"/spec/routes/{index}/services", "value": new_services})
    ops.extend(_annotation_ops(ingress_route, dump_saved_services(saved)))
    old_targets = sorted({f"{ref.kind} {ref.name}" for ref in repointed_refs})
    routes_text = ", ".join(str(i) for i in matched)
    summary = (
        f"patch IngressRoute {params.route_name}: route {routes_text} now targets TraefikService {params.mirror_name} "
        f"(was {', '.join(old_targets)}); the previous targets are saved in annotation {PRE_MIRROR_ANNOTATION}"
    )
    actions.append(
        Action(
            "patch", "IngressRoute", params.route_name, params.namespace, ops, summary, ingress_route.resource_version
        )
    )
    after = apply_json_patch(ingress_route.raw, ops)
    assert_preserved(ingress_route.raw, after)
    return after


def _plan_request_routes(
    ctx: PlanContext,
    request: RequestMatch,
    ingress_route: IngressRouteObj,
    matched: Mapping[int, list[int]],
    added: Mapping[int, int | None],
    actions: list[Action],
) -> dict[str, Any]:
    """Attach with request matching: the matched routes stay as they are; one added route per matched route
    copies the chosen requests through the mirror (see _mirror_match). Returns the IngressRoute after."""
    params = ctx.params
    sources = {
        index: _repointed_services(ctx, index, raw_route_services(ingress_route, index), positions)
        for index, positions in matched.items()
    }
    observed = ctx.observed
    change = plan_request_routes(ingress_route.raw, request, sources, added, params.api_group, observed.neighbours)
    ctx.warnings.extend(observed.neighbours_warnings)
    ctx.warnings.extend(request.warnings(params.mirror_service))
    if not change.ops:
        return copy.deepcopy(dict(ingress_route.raw))
    ops: JsonPatch = [version_test(ingress_route.raw, "IngressRoute"), *change.ops]
    summary = f"patch IngressRoute {params.route_name}: {'; '.join(change.changes) or 'record updated'}"
    actions.append(
        Action(
            "patch", "IngressRoute", params.route_name, params.namespace, ops, summary, ingress_route.resource_version
        )
    )
    after = apply_json_patch(ingress_route.raw, ops)
    assert_preserved(ingress_route.raw, after, added_before=added, added_after=change.added_after)
    return after
