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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from time import sleep
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import (
    ApiUnavailableError,
    ConflictError,
    DarklaunchError,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    STATE_ABSENT,
    Action,
    MirrorParams,
    MirrorPlan,
    Observed,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_plan import plan_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    SERVER_OWNED_METADATA,
    parse_ingress_route,
    parse_service_ref,
    parse_traefik_service,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._propagation import propagation_waits
from ansible_collections.darklaunch.traefik.plugins.module_utils._route_reads import RouteReads, require_namespace

MAX_ATTEMPTS = 3


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


def _plan(client: KubeWriter, params: MirrorParams, now: datetime) -> tuple[MirrorPlan, MirrorParams]:
    """Plan from by-name reads, then read what the planned IngressRoute reaches and was not read yet, so the
    reported traffic split is complete (usually nothing: the route reaches the mirror and its two Services).
    Returns the params the plan was made with: their ``api_group`` is the cluster's."""
    observed, reads = _observe(client, params)
    # The first read settled the API group when it was not given; it names the apiVersion of what is written.
    params = replace(params, api_group=client.traefik_group())
    plan = plan_mirror(params, observed, now=now)
    while reads.read_reachable(plan):
        plan = plan_mirror(params, reads.observed(), now=now)
    return plan, params


def _observe(client: KubeWriter, params: MirrorParams) -> tuple[Observed, _NamedReads]:
    """What the planner needs, read by name; a namespace is listed only where the answer depends on objects
    whose names are not known: before deleting a mirror (does anything else route through it?) and when the
    mirror is not attached by this run (is it live through another route?). Each object is read once, so one
    plan sees one version of the IngressRoute."""
    ns = params.namespace
    mirror = client.get(KIND_TRAEFIK_SERVICE, ns, params.mirror_name)
    # Deleting needs every reference to the mirror. Attaching makes route_name's IngressRoute route through the
    # mirror (or the plan is refused), so it is live whatever other routes do; otherwise only they can make it.
    lists_references = mirror is not None if params.state == STATE_ABSENT else not params.attach_to_ingress
    if lists_references:
        routes = client.list("IngressRoute", ns)
        ingress_route = next((item for item in routes if _name(item) == params.route_name), None)
    else:
        routes = []
        ingress_route = client.get("IngressRoute", ns, params.route_name)
    if mirror is None and ingress_route is None:
        require_namespace(client, ns)
    reads = _NamedReads(client, ns)
    if lists_references:
        reads.walk.add_listing(ns, client.list(KIND_TRAEFIK_SERVICE, ns))
    reads.walk.remember(KIND_TRAEFIK_SERVICE, ns, params.mirror_name, mirror)
    # The WRR counts only where the route may go through it: attaching repoints what targets it (the sign-off
    # reads its split) and removing may restore the route to it. A route already on the mirror does not reach
    # it, so an idempotent rerun does not read it (if the planned route reaches it, _plan reads it then).
    uses_wrr = params.state == STATE_ABSENT or ingress_route is None or _targets(ingress_route, ns, params.wrr_name)
    wrr = reads.get(KIND_TRAEFIK_SERVICE, params.wrr_name) if uses_wrr else None
    if params.state == STATE_ABSENT:
        # A teardown creates nothing, so the shadow Service never counts, and the main service only where the
        # plan looks at it; whatever the restored route reaches is read afterwards for the reported split.
        main = (
            reads.get(params.main_kind, params.main_service) if _teardown_checks_main(ingress_route, params) else None
        )
        mirror_target = None
    else:
        main = reads.get(params.main_kind, params.main_service)
        mirror_target = reads.get(KIND_SERVICE, params.mirror_service)
    neighbours, neighbours_warnings = _neighbours(client, params) if _matches_requests(params) else ([], [])
    observed = reads.observed(
        mirror=mirror,
        ingress_route=ingress_route,
        wrr=wrr,
        main=main,
        mirror_target=mirror_target,
        routes_referencing_mirror=routes,
        neighbours=neighbours,
        neighbours_warnings=neighbours_warnings,
    )
    return observed, reads


def _matches_requests(params: MirrorParams) -> bool:
    """An attach with mirror_methods / mirror_match adds a route, whose priority depends on every other route."""
    wanted = params.mirror_methods is not None or params.mirror_match is not None
    return wanted and params.attach_to_ingress and params.state != STATE_ABSENT


def _neighbours(client: KubeWriter, params: MirrorParams) -> tuple[list[dict[str, Any]], list[str]]:
    """The IngressRoutes whose routes may compete with the route's on Traefik's muxers: every namespace's, or,
    for credentials that may list only the route's namespace (the shipped operator Role), that namespace's."""
    try:
        return client.list("IngressRoute", None), []
    except DarklaunchError as error:
        if error.details.get("api_status") != 403:
            raise
    warning = (
        f"IngressRoutes could not be listed in all namespaces (403), so the priority of the route added for "
        f"mirror_methods/mirror_match was checked against the IngressRoutes of namespace {params.namespace} only. "
        "A route of another namespace on the same entry point and host that beats this route today could lose "
        "the copied requests to the added route: allow list on ingressroutes cluster-wide (for example with the "
        "viewer ClusterRole in docs/rbac) to have them checked too."
    )
    return client.list("IngressRoute", params.namespace), [warning]


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _teardown_checks_main(ingress_route: Mapping[str, Any] | None, params: MirrorParams) -> bool:
    """Whether a teardown's plan looks at the main service: a main TraefikService is checked for an ambiguous
    spec, and restoring checks that the main service exists where it puts a route back on it - only a route
    that targeted it before attach (saved on the IngressRoute); every other route goes back to the WRR."""
    if params.main_kind == KIND_TRAEFIK_SERVICE:
        return True
    if ingress_route is None or not params.restore_ingress_to_wrr:
        return False
    saved = parse_ingress_route(ingress_route).saved_pre_mirror_services() or {}
    main = (params.main_kind, params.namespace, params.main_service)
    saved_refs = (
        parse_service_ref(entry, params.namespace)
        for entries in saved.values()
        for entry in entries
        if isinstance(entry, Mapping)
    )
    return any((ref.kind, ref.namespace, ref.name) == main for ref in saved_refs)


def _targets(ingress_route: Mapping[str, Any], namespace: str, traefik_service: str) -> bool:
    """Whether any route of ``ingress_route`` sends requests straight to the TraefikService ``traefik_service``."""
    wanted = (KIND_TRAEFIK_SERVICE, namespace, traefik_service)
    routes = parse_ingress_route(ingress_route).routes
    return any((ref.kind, ref.namespace, ref.name) == wanted for route in routes for ref in route.services)


class _NamedReads:
    """What the planner is handed: the route's namespace's objects read by name through the one route walk
    (_route_reads), which also reads what a planned IngressRoute reaches so the reported traffic split is
    complete."""

    def __init__(self, client: KubeWriter, namespace: str) -> None:
        self._namespace = namespace
        self._objects: dict[str, Any] = {}
        self.walk = RouteReads(client, namespaces=(namespace,))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.walk.read(kind, self._namespace, name)

    def observed(self, **objects: Any) -> Observed:
        """Observed from ``objects`` (the named ones; the last ones given when empty) and everything read."""
        self._objects = objects or self._objects
        return Observed(
            **self._objects,
            traefik_services=self.walk.known(KIND_TRAEFIK_SERVICE),
            services=self.walk.known(KIND_SERVICE),
        )

    def read_reachable(self, plan: MirrorPlan) -> bool:
        """Read the Services and TraefikServices the planned IngressRoute reaches that were not read yet, so
        that the reported traffic split is complete; True if anything new was read."""
        route = plan.ingress_route_after
        if route is None:
            return False
        # The planned mirror, not the one read: the route reaches what the mirror will mirror.
        mirror = parse_traefik_service(plan.mirror_after) if plan.mirror_after else None
        planned = {mirror.key: mirror} if mirror else {}
        requests_before = self.walk.requests
        refs = [ref for r in parse_ingress_route(route).routes for ref in r.services]
        self.walk.services(self._namespace, refs, self.walk.reachable(refs, planned=planned))
        return self.walk.requests > requests_before


# The planner words an ended weighted split as done; a dry run (check mode) changed nothing, so it says what
# the write would do. Ansible shows an identical warning once per run, so the two wordings also keep the real
# write's warning from being swallowed by its dry run's.
_DRY_RUN_WORDS = {
    "Attaching ended the weighted split": "Attaching would end the weighted split",
    "all user responses now come from": "all user responses would then come from",
    "no longer serves real users and only receives": "would no longer serve real users and would only receive",
    "no longer serves real users": "would no longer serve real users",
    "no longer serve real users": "would no longer serve real users",
    "receives copies": "would receive copies",
}
_DRY_RUN_PATTERN = re.compile("|".join(re.escape(done) for done in _DRY_RUN_WORDS))


def dry_run_warning(warning: str) -> str:
    """A planner's warning as a dry run says it: an ended weighted split in the conditional."""
    if not warning.startswith("Attaching ended the weighted split"):
        return warning
    return _DRY_RUN_PATTERN.sub(lambda match: _DRY_RUN_WORDS[match.group(0)], warning)


def run_mirror(client: KubeWriter, options: Mapping[str, Any], *, check_mode: bool) -> MirrorRun:
    """Converge the cluster to ``options`` (module params). Raises DarklaunchError with nothing changed,
    or with its own partial work undone."""
    params = MirrorParams.from_options(options).with_defaults()
    if options.get("api_group"):
        client.traefik_group(options["api_group"])  # a known group: no detection, not even by the first read
    applied: list[_Applied] = []
    run: MirrorRun | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            # The clock is read here, not in the pure planner: the launch record's deadline counts from it.
            plan, params = _plan(client, params, datetime.now(timezone.utc))
        except ApiUnavailableError as error:
            raise _interrupted(error, run, params) from None
        run = MirrorRun(plan=plan, api_group=params.api_group, attempts=attempt, applied=applied)
        if check_mode:
            plan.warnings = [dry_run_warning(warning) for warning in plan.warnings]
            return run
        if not plan.actions:
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
    waits = propagation_waits([(action.verb, action.kind) for action in run.plan.actions])
    for index, action in enumerate(run.plan.actions):
        if waits[index]:
            sleep(params.propagation_seconds)
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
    undoing = list(reversed(run.applied))
    waits = propagation_waits([_revert_write(applied.action) for applied in undoing])
    for index, applied in enumerate(undoing):
        if waits[index]:
            sleep(params.propagation_seconds)
        try:
            _revert(client, applied)
        except DarklaunchError:
            # Best effort: the original error is what the user must see; a rerun converges anyway.
            return False
    run.applied.clear()
    return True


def _revert_write(action: Action) -> tuple[str, str]:
    """The (verb, kind) of the write that reverts ``action`` (see _revert)."""
    opposite = {"create": "delete", "delete": "create"}
    return opposite.get(action.verb, action.verb), action.kind


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
    for key in SERVER_OWNED_METADATA:
        metadata.pop(key, None)
    return clean
