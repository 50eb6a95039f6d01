# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run traefik_mirror: observe the cluster, plan with the pure planner, apply the actions.

A concurrent change between read and write makes the write fail (every write carries the resourceVersion
it read); the whole observe -> plan -> apply cycle is then repeated on fresh objects. A failure after
part of a ``state=present`` change was written undoes that part, so a refused attach does not leave a
half-done launch behind.

When the API stops answering (refused, reset, or no answer within the request timeout) nothing is undone:
the undo could not be sent either, and the unanswered write may have been applied, so deleting what came
before it could leave a route pointing at nothing. The writes are ordered so that every prefix of them is
safe for users; the error then says which writes were made, what state the route is in, and how to finish.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import (
    ApiUnavailableError,
    ConflictError,
    DarklaunchError,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_plan import (
    STATE_ABSENT,
    Action,
    MirrorParams,
    MirrorPlan,
    Observed,
    plan_mirror,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import KIND_SERVICE

MAX_ATTEMPTS = 3
_SERVER_FIELDS = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink")


class KubeWriter(Protocol):
    def traefik_group(self, requested: str | None = None) -> str: ...

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]: ...

    def namespace_exists(self, name: str) -> bool: ...

    def create(self, kind: str, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]: ...

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None: ...


@dataclass
class _Applied:
    action: Action
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass
class MirrorRun:
    plan: MirrorPlan
    api_group: str
    attempts: int
    applied: list[_Applied] = field(default_factory=list)
    # The write the API did not answer, if it stopped answering during the apply.
    unanswered: Action | None = None


def observe(client: KubeWriter, params: MirrorParams) -> Observed:
    """Everything the planner needs, read from the params' namespace."""
    ns = params.namespace
    if not client.namespace_exists(ns):
        raise DarklaunchError(f'namespace "{ns}" does not exist: check namespace.', field="namespace")
    traefik_services = client.list("TraefikService", ns)
    by_name = {item["metadata"]["name"]: item for item in traefik_services}
    services = client.list("Service", ns)
    services_by_name = {item["metadata"]["name"]: item for item in services}
    main = (
        services_by_name.get(params.main_service)
        if params.main_kind == KIND_SERVICE
        else by_name.get(params.main_service)
    )
    return Observed(
        mirror=by_name.get(params.mirror_name),
        ingress_route=client.get("IngressRoute", ns, params.route_name),
        wrr=by_name.get(params.wrr_name),
        main=main,
        mirror_target=services_by_name.get(params.mirror_service),
        routes_referencing_mirror=client.list("IngressRoute", ns),
        traefik_services=traefik_services,
        services=services,
    )


def run_mirror(client: KubeWriter, options: Mapping[str, Any], *, check_mode: bool) -> MirrorRun:
    """Converge the cluster to ``options`` (module params). Raises DarklaunchError with nothing changed,
    or with its own partial work undone."""
    params = MirrorParams.from_options(options).with_defaults()
    try:
        group = client.traefik_group(options.get("api_group"))
    except ApiUnavailableError as error:
        raise _interrupted(error, None, params) from None
    # The detected group, not the option's default, names the apiVersion of the objects written.
    params = replace(params, api_group=group)
    applied: list[_Applied] = []
    run: MirrorRun | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            # The clock is read here, not in the pure planner: the launch record's deadline counts from it.
            plan = plan_mirror(params, observe(client, params), now=datetime.now(timezone.utc))
        except ApiUnavailableError as error:
            raise _interrupted(error, run, params) from None
        run = MirrorRun(plan=plan, api_group=group, attempts=attempt, applied=applied)
        if check_mode or not plan.actions:
            return run
        try:
            _apply(client, run, params)
        except ApiUnavailableError as error:
            raise _interrupted(error, run, params) from None
        except ConflictError as conflict:
            # Someone changed an object between our read and our write. The planner is idempotent, so
            # planning again from fresh objects finishes whatever part is still missing.
            if attempt < MAX_ATTEMPTS:
                continue
            undone = _undo(client, run, params)
            raise DarklaunchError(
                f"{conflict.msg.rstrip('.')}. The objects kept changing during {MAX_ATTEMPTS} attempts"
                + ("; the changes made in this run were undone." if undone else ".")
                + " Find who else edits them (a GitOps controller?) and retry.",
                field=conflict.field,
                details=conflict.details,
            ) from conflict
        except DarklaunchError as error:
            if _undo(client, run, params):
                error.msg += " The changes already made in this run were undone."
            raise
        return run
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _apply(client: KubeWriter, run: MirrorRun, params: MirrorParams) -> None:
    for action in run.plan.actions:
        try:
            run.applied.append(_apply_action(client, run.plan, action))
        except ApiUnavailableError:
            run.unanswered = action
            raise
        except ConflictError as conflict:
            # The API client knows objects, not options: name the option of the object that changed.
            if conflict.field is None:
                conflict.field = _option_of(action, params)
            raise


def _interrupted(error: ApiUnavailableError, run: MirrorRun | None, params: MirrorParams) -> ApiUnavailableError:
    """The API stopped answering: say what was written, what state the route is in and how to finish."""
    done = [applied.action for applied in run.applied] if run else []
    unanswered = run.unanswered if run else None
    remaining = run.plan.actions[run.plan.actions.index(unanswered) + 1 :] if run and unanswered else []
    sentences = [error.msg.rstrip(". ") + "."]
    if done:
        sentences.append(f"Done before that: {'; '.join(action.summary for action in done)}.")
    else:
        sentences.append("Nothing was written before that.")
    if unanswered is not None:
        outcome = "the API may or may not have applied it" if error.request_sent else "it was not sent"
        sentences.append(f"Unanswered ({outcome}): {unanswered.summary}.")
    if remaining:
        sentences.append(f"Not done: {'; '.join(action.summary for action in remaining)}.")
    if run is not None:
        sentences.append(_route_state(run, params, error.request_sent))
    if params.state == STATE_ABSENT:
        sentences.append(
            "To finish, rerun this task (state=absent) once the API answers: it reads the cluster again and "
            "makes only the writes still missing."
        )
    else:
        sentences.append(
            "To finish, rerun this task once the API answers: it reads the cluster again and makes only the "
            "writes still missing; or run it with state=absent to go back to the route as it was."
        )
    details = dict(error.details)
    details["done"] = [action.summary for action in done]
    details["not_done"] = [action.summary for action in remaining]
    if unanswered is not None:
        details["unanswered"] = unanswered.summary
    return ApiUnavailableError(" ".join(sentences), request_sent=error.request_sent, field=error.field, details=details)


def _route_state(run: MirrorRun, params: MirrorParams, request_sent: bool) -> str:
    """Where users' requests go now, from which of the run's IngressRoute writes were made."""
    route, mirror = params.route_name, params.mirror_name
    ingress_writes = [action for action in run.plan.actions if action.kind == "IngressRoute"]
    if not ingress_writes:
        return f"The IngressRoute {route} was not to be changed by this run: users are routed as before."
    written = any(applied.action in ingress_writes for applied in run.applied)
    unknown = not written and run.unanswered in ingress_writes and request_sent
    if params.state == STATE_ABSENT:
        if written:
            return f"The IngressRoute {route} is restored: it no longer goes through the mirror {mirror}."
        if unknown:
            return (
                f"The IngressRoute {route} is either restored or still goes through the mirror {mirror}, which "
                "still exists: either way users are answered as before."
            )
        return (
            f"The IngressRoute {route} still goes through the mirror {mirror}, which still exists: users are "
            "answered by its main service."
        )
    if written:
        return f"The IngressRoute {route} goes through the mirror {mirror}: users are answered by its main service."
    if unknown:
        return (
            f"The IngressRoute {route} either routes as before or already goes through the mirror {mirror}; "
            "every object it can point at exists."
        )
    return f"The IngressRoute {route} is unchanged: users are routed as before, not through the mirror {mirror}."


def _option_of(action: Action, params: MirrorParams) -> str:
    if action.kind == "IngressRoute":
        return "route_name"
    return "mirror_name" if action.name == params.mirror_name else "route_name"


def _observed_before(plan: MirrorPlan, action: Action) -> dict[str, Any] | None:
    if action.kind == "IngressRoute":
        return plan.ingress_route_before
    return plan.mirror_before


def _apply_action(client: KubeWriter, plan: MirrorPlan, action: Action) -> _Applied:
    if action.verb == "create":
        created = client.create(action.kind, action.namespace, action.body)
        return _Applied(action, None, created)
    if action.verb == "patch":
        patched = client.json_patch(action.kind, action.namespace, action.name, action.body)
        return _Applied(action, _observed_before(plan, action), patched)
    if action.verb == "delete":
        client.delete(action.kind, action.namespace, action.name, action.resource_version)
        return _Applied(action, _observed_before(plan, action), None)
    raise DarklaunchError(f"internal error: unknown action verb {action.verb!r}")


def _undo(client: KubeWriter, run: MirrorRun, params: MirrorParams) -> bool:
    """Revert this run's writes, newest first. Disabling is not reverted: its partial result (the
    IngressRoute restored, the mirror not yet deleted) is the safe state, and the rerun finishes it."""
    if params.state == STATE_ABSENT or not run.applied:
        run.applied.clear()
        return False
    for applied in reversed(run.applied):
        try:
            _revert(client, applied)
        except DarklaunchError:
            # Best effort: the original error is what the user must see; a rerun converges anyway.
            return False
    run.applied.clear()
    return True


def _revert(client: KubeWriter, applied: _Applied) -> None:
    action = applied.action
    if action.verb == "create" and applied.after is not None:
        version = applied.after.get("metadata", {}).get("resourceVersion")
        client.delete(action.kind, action.namespace, action.name, version)
    elif action.verb == "patch" and applied.before is not None and applied.after is not None:
        client.json_patch(action.kind, action.namespace, action.name, _restore_ops(applied.before, applied.after))
    elif action.verb == "delete" and applied.before is not None:
        client.create(action.kind, action.namespace, _without_server_fields(applied.before))


def _restore_ops(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Put spec, labels and annotations back, only if nobody changed the object since our write."""
    meta_before = before.get("metadata", {})
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": after["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec", "value": copy.deepcopy(before.get("spec", {}))},
        {"op": "add", "path": "/metadata/labels", "value": dict(meta_before.get("labels") or {})},
        {"op": "add", "path": "/metadata/annotations", "value": dict(meta_before.get("annotations") or {})},
    ]


def _without_server_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    clean = copy.deepcopy(dict(obj))
    metadata = clean.get("metadata", {})
    for key in _SERVER_FIELDS:
        metadata.pop(key, None)
    return clean
