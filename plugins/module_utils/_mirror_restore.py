# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Teardown: the IngressRoute restored exactly as it was before the launch, then the mirror deleted."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import (
    JsonPatch,
    apply_json_patch,
    version_test,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_context import (
    PlanContext,
    assert_preserved,
    finish_plan,
    observed_copy,
    raw_route_services,
    referencing_routes,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    ROUTES_ANNOTATION,
    added_routes,
    annotation_ops,
    removal_ops,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_object import (
    refuse_ambiguous_services,
    refuse_deleting_someone_elses_mirror,
    refuse_foreign_mirror,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    STATUS_ABSENT,
    Action,
    MirrorPlan,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_TRAEFIK_SERVICE,
    PRE_MIRROR_ANNOTATION,
    parse_service_ref,
)


def _blocking_references(ctx: PlanContext) -> list[str]:
    """Objects other than route_name's IngressRoute that send traffic through the mirror."""
    blockers = [
        f"IngressRoute {name}"
        for name in referencing_routes(ctx, None, ctx.observed.mirror)
        if name != f"{ctx.params.namespace}/{ctx.params.route_name}"
    ]
    for service in ctx.other_traefik_services:
        if any(ref.kind == KIND_TRAEFIK_SERVICE and ref.key == ctx.mirror_key for ref in service.children()):
            blockers.append(f"TraefikService {service.namespace}/{service.name}")
    return blockers


def restored_services(
    ctx: PlanContext, index: int, entries: Sequence[Mapping[str, Any]], saved: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    if saved is not None and str(index) in saved:
        recorded = [copy.deepcopy(dict(entry)) for entry in saved[str(index)]]
        if not any(ctx.is_mirror(parse_service_ref(entry, ctx.params.namespace)) for entry in recorded):
            return recorded
        # A record written by an older version over an already attached route: restoring it as it is
        # would leave the route on the mirror that is about to be deleted.
        ctx.warnings.append(
            f"The saved targets of route {index} name the mirror {ctx.params.mirror_name} itself; its mirror "
            f"entries were pointed at {ctx.params.wrr_name} instead."
        )
        entries = recorded
    restored = []
    for entry in entries:
        if ctx.is_mirror(parse_service_ref(entry, ctx.params.namespace)):
            back: dict[str, Any] = {"name": ctx.params.wrr_name, "kind": KIND_TRAEFIK_SERVICE}
            if entry.get("namespace"):
                back["namespace"] = entry["namespace"]
            if entry.get("weight") is not None:
                back["weight"] = entry["weight"]
            restored.append(back)
        else:
            restored.append(copy.deepcopy(dict(entry)))
    return restored


def _check_restore_targets(ctx: PlanContext, services: Sequence[Mapping[str, Any]]) -> None:
    params = ctx.params
    for entry in services:
        ref = parse_service_ref(entry, params.namespace)
        if ctx.is_wrr(ref) and ctx.wrr is None:
            raise DarklaunchError(
                f"Cannot restore IngressRoute {params.route_name} to TraefikService {params.wrr_name}: it does not "
                "exist, so the route would serve 404s. Create it, set wrr_name to the service to restore to, or "
                "repoint the IngressRoute yourself and run again with restore_ingress_to_wrr=false.",
                field="wrr_name",
            )
        if ctx.is_main(ref) and not ctx.main_exists():
            raise DarklaunchError(
                f"Cannot restore IngressRoute {params.route_name} to {params.main_kind} {params.main_service}: it "
                "does not exist, so the route would serve 404s. Create it, or repoint the IngressRoute yourself and "
                "run again with restore_ingress_to_wrr=false.",
                field="main_service",
            )


def _plan_restore(ctx: PlanContext, actions: list[Action]) -> dict[str, Any] | None:
    """Put route_name's IngressRoute back as it was before attach; returns the IngressRoute after."""
    ingress_route = ctx.ingress_route
    if ingress_route is None:
        return None
    saved = ingress_route.saved_pre_mirror_services()
    if saved is None and PRE_MIRROR_ANNOTATION in ingress_route.annotations:
        ctx.warnings.append(
            f"The {PRE_MIRROR_ANNOTATION} annotation was unreadable; routes were pointed at {ctx.params.wrr_name}."
        )
    ops: JsonPatch = []
    restored_routes: list[str] = []
    added, added_warnings = added_routes(ingress_route.raw, ctx.is_mirror_entry)
    ctx.warnings.extend(added_warnings)
    for route in ingress_route.routes:
        if route.index in added:
            continue
        on_mirror = any(ctx.is_mirror(ref) for ref in route.services)
        if not on_mirror:
            if saved is not None and str(route.index) in saved:
                ctx.warnings.append(
                    f"Route {route.index} no longer routes through {ctx.params.mirror_name} (changed since attach); "
                    "it was left as it is."
                )
            continue
        entries = raw_route_services(ingress_route, route.index)
        restored = restored_services(ctx, route.index, entries, saved)
        _check_restore_targets(ctx, restored)
        if restored != [dict(entry) for entry in entries]:
            ops.append({"op": "replace", "path": f"/spec/routes/{route.index}/services", "value": restored})
            names = ", ".join(str(entry.get("name")) for entry in restored)
            restored_routes.append(f"route {route.index} back to {names}")
    for index in sorted(saved or {}, key=int):
        if int(index) >= len(ingress_route.routes):
            ctx.warnings.append(f"Saved targets for route {index} were dropped: the IngressRoute has no such route.")
    ops.extend(removal_ops(added))
    restored_routes.extend(f"route {index} (added for request matching) removed" for index in sorted(added))
    annotations = ingress_route.raw.get("metadata", {}).get("annotations")
    ops.extend(annotation_ops(annotations, {PRE_MIRROR_ANNOTATION: None, ROUTES_ANNOTATION: None}))
    if not ops:
        return copy.deepcopy(dict(ingress_route.raw))
    patch = [version_test(ingress_route.raw, "IngressRoute"), *ops]
    what = "; ".join(restored_routes) or "stale record removed"
    removed = [key for key in (PRE_MIRROR_ANNOTATION, ROUTES_ANNOTATION) if key in ingress_route.annotations]
    summary = (
        f"patch IngressRoute {ctx.params.route_name}: {what}; annotation "
        f"{' and '.join(removed or [PRE_MIRROR_ANNOTATION])} removed"
    )
    actions.append(
        Action(
            "patch",
            "IngressRoute",
            ctx.params.route_name,
            ctx.params.namespace,
            patch,
            summary,
            ingress_route.resource_version,
        )
    )
    after = apply_json_patch(ingress_route.raw, patch)
    assert_preserved(ingress_route.raw, after, added_before=added)
    return after


def _routes_on_mirror(ctx: PlanContext) -> list[int]:
    if ctx.ingress_route is None:
        return []
    return [route.index for route in ctx.ingress_route.routes if any(ctx.is_mirror(ref) for ref in route.services)]


def plan_absent(ctx: PlanContext) -> MirrorPlan:
    params = ctx.params
    refuse_foreign_mirror(ctx)
    refuse_ambiguous_services(ctx, uses_wrr=params.restore_ingress_to_wrr)
    mirror_exists = ctx.observed.mirror is not None
    on_mirror = _routes_on_mirror(ctx)
    refuse_deleting_someone_elses_mirror(ctx, on_mirror)
    if mirror_exists:
        blockers = _blocking_references(ctx)
        if blockers:
            raise DarklaunchError(
                f"{', '.join(blockers)} still route{'s' if len(blockers) == 1 else ''} through TraefikService "
                f"{params.mirror_name}; deleting it would make those routes serve 404s. Repoint them first.",
                field="mirror_name",
            )
        if on_mirror and not params.restore_ingress_to_wrr:
            raise DarklaunchError(
                f"IngressRoute {params.route_name} still routes through {params.mirror_name} (route "
                f"{', '.join(map(str, on_mirror))}); deleting the mirror would make it serve 404s. Set "
                "restore_ingress_to_wrr=true to put it back first, or repoint it yourself and run again.",
                field="restore_ingress_to_wrr",
            )
    actions: list[Action] = []
    ingress_route_after = observed_copy(ctx.observed.ingress_route)
    if params.restore_ingress_to_wrr:
        ingress_route_after = _plan_restore(ctx, actions)
    elif on_mirror:
        ctx.warnings.append(
            f"IngressRoute {params.route_name} routes to {params.mirror_name}, which does not exist: that route "
            "serves 404s. Run with restore_ingress_to_wrr=true or repoint it yourself."
        )
    if mirror_exists:
        actions.append(
            Action(
                "delete",
                KIND_TRAEFIK_SERVICE,
                params.mirror_name,
                params.namespace,
                None,
                f"delete TraefikService {params.mirror_name}",
                ctx.mirror.resource_version if ctx.mirror else None,
            )
        )
    return finish_plan(ctx, actions, STATUS_ABSENT, mirror_after=None, ingress_route_after=ingress_route_after)
