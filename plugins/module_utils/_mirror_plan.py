# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide what traefik_mirror must do: (desired params, observed objects) -> ordered actions.

Pure: the module reads the objects with ``_k8s``, calls :func:`plan_mirror`, and sends the actions back
through ``_k8s`` (skipping them in check mode). Every refusal is a :class:`DarklaunchError` raised while
planning, so a refused run writes nothing. Patches are RFC 6902 JSON Patches that start with a ``test`` of
the resourceVersion that was read: a concurrent change fails the write instead of being overwritten.

This module holds the two plans (present, absent) and their checks of the backends; each part has a file of
its own: ``_mirror_params`` (options, inputs, outputs), ``_mirror_context`` (what is known while planning),
``_mirror_object`` (the mirror TraefikService), ``_mirror_attach`` (the IngressRoute and the sign-off),
``_mirror_restore`` (teardown), ``_json_patch`` and ``_propagation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import buffers_whole_body
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_attach import (
    describe_targets,
    plan_attach,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_context import (
    PlanContext,
    build_context,
    choose_main_port,
    choose_mirror_port,
    finish_plan,
    observed_copy,
    referencing_routes,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_object import (
    plan_mirror_object,
    refuse_ambiguous_services,
    refuse_foreign_mirror,
    refuse_someone_elses_mirror,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    STATE_ABSENT,
    STATUS_ACTIVE,
    STATUS_INACTIVE,
    Action,
    MirrorParams,
    MirrorPlan,
    Observed,
    validate_params,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_restore import (
    plan_absent,
)


def _missing_backends(ctx: PlanContext) -> list[tuple[str, str]]:
    params = ctx.params
    missing = []
    if not ctx.main_exists():
        missing.append(("main_service", f"{params.main_kind} {params.namespace}/{params.main_service}"))
    if ctx.mirror_target is None:
        missing.append(("mirror_service", f"Service {params.namespace}/{params.mirror_service}"))
    return missing


def _check_backends(ctx: PlanContext, will_be_active: bool) -> None:
    missing = _missing_backends(ctx)
    if not missing:
        return
    names = " and ".join(description for _field, description in missing)
    if will_be_active:
        raise DarklaunchError(
            f"{names} does not exist. An IngressRoute routing through the mirror would serve 404s, because Traefik "
            "drops routers whose mirror cannot be built. Create it first, or correct "
            f"{' and '.join(field for field, _description in missing)}.",
            field=missing[0][0],
        )
    ctx.warnings.append(
        f"{names} does not exist yet; do not attach the mirror until it does (Traefik would answer 404)."
    )


def _present_warnings(ctx: PlanContext, status: str, mirror_after: Mapping[str, Any]) -> None:
    params = ctx.params
    if status == STATUS_INACTIVE:
        if ctx.ingress_route is None:
            where = f"IngressRoute {params.route_name} does not exist in {params.namespace}"
        else:
            where = f"IngressRoute {params.route_name} routes to {describe_targets(ctx.ingress_route)}"
        todo = (
            "attach_to_ingress=true found no route to repoint: point the route's services at"
            if params.attach_to_ingress
            else "Run with attach_to_ingress=true, or point the route's services at"
        )
        ctx.warnings.append(
            f"The mirror {params.mirror_name} exists but is inactive, waiting on an IngressRoute change: {where}, "
            f"so no request is copied yet. {todo} {params.mirror_name} (kind TraefikService) yourself."
        )
    request = ctx.request
    if request is not None and request.only_safe_methods():
        ctx.warnings.append(
            f"Shadow traffic really reaches {params.mirror_service}, but only copies of {request.describe()}: "
            "anything the shadow does for those (calls to other services, caches, logs) happens for real."
        )
    else:
        ctx.warnings.append(
            f"Shadow traffic really reaches {params.mirror_service}: anything it does per request (database "
            "writes, e-mails, payments, calls to other services) happens for real. Mirror only read-only or "
            "idempotent services, give the shadow its own isolated dependencies, or copy only safe requests: "
            "mirror_methods [GET, HEAD, OPTIONS] (role variable shadow_launch_mirror_methods)."
        )
    mirroring = mirror_after.get("spec", {}).get("mirroring", {})
    mirror_body = mirroring.get("mirrorBody", True)
    if buffers_whole_body(mirror_body, mirroring.get("maxBodySize")):
        ctx.warnings.append(
            "mirror_body is on and max_body_size is unlimited (-1): Traefik reads the whole body of every mirrored "
            "request into memory before copying it. Set max_body_size (bytes) to cap that; larger requests are "
            "then served but not mirrored."
        )
    elif mirror_body is False:
        ctx.warnings.append(
            "mirror_body is false: some Traefik versions mishandle mirrored requests that carry a body "
            "(traefik#13292); prefer mirror_body=true with a max_body_size."
        )


def _plan_present(ctx: PlanContext) -> MirrorPlan:
    refuse_foreign_mirror(ctx)
    refuse_ambiguous_services(ctx, uses_wrr=ctx.params.attach_to_ingress)
    refuse_someone_elses_mirror(ctx)
    if ctx.params.attach_to_ingress:
        # Attaching makes the mirror live: refuse a missing backend before its port is looked for, so the
        # error names the missing Service rather than the port that cannot be chosen.
        _check_backends(ctx, will_be_active=True)
    main_port = choose_main_port(ctx)
    mirror_port = choose_mirror_port(ctx)
    actions: list[Action] = []
    mirror_after, launch = plan_mirror_object(ctx, main_port, mirror_port, actions)
    ingress_route_after = observed_copy(ctx.observed.ingress_route)
    if ctx.params.attach_to_ingress:
        ingress_route_after = plan_attach(ctx, actions)
    referencing = referencing_routes(ctx, ingress_route_after, mirror_after)
    _check_backends(ctx, will_be_active=bool(referencing))
    status = STATUS_ACTIVE if referencing else STATUS_INACTIVE
    _present_warnings(ctx, status, mirror_after)
    return finish_plan(
        ctx,
        actions,
        status,
        mirror_after=mirror_after,
        ingress_route_after=ingress_route_after,
        ports=(main_port, mirror_port),
        launch=launch,
    )


def plan_mirror(params: MirrorParams, observed: Observed, now: datetime | None = None) -> MirrorPlan:
    """Everything traefik_mirror must do, in order, to reach ``params`` from ``observed``.

    Same desired state as observed => no actions. Raises DarklaunchError (naming the option) instead of
    planning anything unsafe. ``now`` (aware, UTC) is required with ``params.launch``: the record's
    deadline is counted from it.
    """
    validated = params if params.validated else validate_params(params)
    ctx = build_context(validated, observed, now)
    if validated.state == STATE_ABSENT:
        return plan_absent(ctx)
    return _plan_present(ctx)
