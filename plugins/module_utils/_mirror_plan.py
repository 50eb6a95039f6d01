# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide what traefik_mirror must do: (desired params, observed objects) -> ordered actions.

Pure: the module reads the objects with ``_k8s``, calls :func:`plan_mirror`, and sends the actions back
through ``_k8s`` (skipping them in check mode). Every refusal is a :class:`DarklaunchError` raised while
planning, so a refused run writes nothing. Patches are RFC 6902 JSON Patches that start with a ``test`` of
the resourceVersion that was read: a concurrent change fails the write instead of being overwritten.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from fractions import Fraction
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution import (
    buffers_whole_body,
    build_reference_index,
    join_words,
    live_backends,
    percent_value,
    resolve_route,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    LaunchOption,
    LaunchRecord,
    LaunchRequest,
    launch_annotation_keys,
    parse_launch_request,
    plan_record,
    read_launch_record,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    ROUTES_ANNOTATION,
    RequestMatch,
    added_routes,
    annotation_ops,
    parse_request_match,
    plan_request_routes,
    refuse_switching,
    removal_ops,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    CRD_VERSION,
    KIND_INGRESS_ROUTE,
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    PRE_MIRROR_ANNOTATION,
    SERVER_OWNED_METADATA,
    SPEC_MIRRORING,
    TRAEFIK_GROUPS,
    IngressRouteObj,
    KubeServiceObj,
    ObjectKey,
    PortValue,
    ServiceRef,
    TraefikServiceObj,
    check_name,
    dump_saved_services,
    index_by_key,
    normalise_port,
    parse_ingress_route,
    parse_kube_service,
    parse_service_ref,
    parse_traefik_service,
)

STATE_PRESENT = "present"
STATE_ABSENT = "absent"
STATUS_ACTIVE = "active"
STATUS_INACTIVE = "inactive"
STATUS_ABSENT = "absent"
# LoadBalancerSpec keys that keep their meaning when an entry is repointed to a TraefikService.
_ROUTING_KEYS = {"name", "kind", "namespace", "port", "weight"}

JsonPatch = list[dict[str, Any]]


# --- inputs --------------------------------------------------------------------------------------------


# How long Traefik is given to see one write before the write that depends on it (see propagation_waits).
DEFAULT_PROPAGATION_SECONDS = 1.0
MAX_PROPAGATION_SECONDS = 60.0


def propagation_waits(writes: Sequence[tuple[str, str]]) -> list[bool]:
    """For each write ``(verb, kind)`` of a run, in order: whether to wait ``propagation_seconds`` before it.

    Traefik watches IngressRoutes and TraefikServices on separate streams and builds its configuration from
    whatever each has delivered so far. A route that names a TraefikService Traefik has not seen yet (created
    a moment ago), or no longer has (deleted before Traefik saw the route let go of it), is dropped, and that
    route answers 404 until the next change. So a route written after a TraefikService was created, and a
    TraefikService deleted after a route was written, each wait for the earlier write to reach Traefik.
    """
    waits: list[bool] = []
    created = routed = False
    for verb, kind in writes:
        wait = (kind == KIND_INGRESS_ROUTE and created) or (
            verb == "delete" and kind == KIND_TRAEFIK_SERVICE and routed
        )
        if wait:
            created = routed = False
        waits.append(wait)
        created = created or (verb == "create" and kind == KIND_TRAEFIK_SERVICE)
        routed = routed or kind == KIND_INGRESS_ROUTE
    return waits


@dataclass(frozen=True)
class MirrorParams:
    """traefik_mirror's options. Empty names mean "derive from route_name" (see :meth:`with_defaults`)."""

    route_name: str
    namespace: str = "default"
    state: str = STATE_PRESENT
    mirror_percent: int | None = None
    main_service: str = ""
    main_kind: str = KIND_SERVICE
    main_port: PortValue | None = None
    mirror_service: str = ""
    mirror_port: PortValue | None = None
    mirror_name: str = ""
    wrr_name: str = ""
    mirror_body: bool | None = None
    max_body_size: int | None = None
    attach_to_ingress: bool = False
    confirm_end_weighted_split: bool = False
    restore_ingress_to_wrr: bool = True
    propagation_seconds: float = DEFAULT_PROPAGATION_SECONDS
    api_group: str = TRAEFIK_GROUPS[0]
    # The launch-in-progress record to write on the mirror (see _launch_record); None leaves it alone.
    launch: LaunchOption | None = None
    # Copy only these requests (see _mirror_match); None: every request, as without these options.
    mirror_methods: Sequence[str] | None = None
    mirror_match: str | None = None
    # Set by validate_params: the planner, called once per attempt of a run, then checks nothing again.
    validated: bool = field(default=False, compare=False, repr=False)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MirrorParams:
        """Build from module params (unknown keys such as auth options are ignored), then validate."""
        known = {f.name for f in fields(cls)} - {"validated"}
        values = {key: value for key, value in options.items() if key in known and value is not None}
        return validate_params(cls(**{"route_name": "", **values}))

    def with_defaults(self) -> MirrorParams:
        """Fill the names the seed derives from route_name: -stable, -staging, -mirror, -wrr."""
        return replace(
            self,
            main_service=self.main_service or f"{self.route_name}-stable",
            mirror_service=self.mirror_service or f"{self.route_name}-staging",
            mirror_name=self.mirror_name or f"{self.route_name}-mirror",
            wrr_name=self.wrr_name or f"{self.route_name}-wrr",
        )


@dataclass(frozen=True)
class Observed:
    """What the module read, as the API returned it (None = not found).

    ``main`` is a v1 Service or a TraefikService according to ``main_kind``; ``mirror_target`` is the shadow
    v1 Service. For ``state=absent`` fetch ``wrr`` (restoring checks that it exists) and ``main`` only where the
    plan looks at it (``_mirror_runner._teardown_checks_main``); the shadow Service is not needed there.
    ``routes_referencing_mirror`` may be every IngressRoute of the namespace (the planner filters).
    ``traefik_services`` (every TraefikService of the namespace) lets the planner see indirect references
    to the mirror and resolve the distribution; ``services`` (every v1 Service) enables Service checks in
    the distribution. Both are optional.
    """

    mirror: Mapping[str, Any] | None = None
    ingress_route: Mapping[str, Any] | None = None
    wrr: Mapping[str, Any] | None = None
    main: Mapping[str, Any] | None = None
    mirror_target: Mapping[str, Any] | None = None
    routes_referencing_mirror: Sequence[Mapping[str, Any]] = ()
    traefik_services: Sequence[Mapping[str, Any]] = ()
    services: Sequence[Mapping[str, Any]] | None = None
    # Attach with request matching: the IngressRoutes whose routes may compete with the route's on Traefik's
    # muxer (cluster-wide, else the namespace's; see _route_rivals), and what the read could not see.
    neighbours: Sequence[Mapping[str, Any]] = ()
    neighbours_warnings: Sequence[str] = ()


# --- outputs -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One write. ``body``: the object (create), a JSON Patch (patch) or None (delete, with
    ``resource_version`` as its precondition)."""

    verb: str
    kind: str
    name: str
    namespace: str
    body: Any
    summary: str
    resource_version: str | None = None
    # True when the write only starts, renews or closes the launch record: routing is unchanged. A
    # caller that renews its record at every check can leave such writes out of its own "changed".
    record_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "summary": self.summary,
            "record_only": self.record_only,
            "body": copy.deepcopy(self.body),
            "resource_version": self.resource_version,
        }


@dataclass
class MirrorPlan:
    actions: list[Action]
    warnings: list[str]
    status: str
    mirror_before: dict[str, Any] | None
    mirror_after: dict[str, Any] | None
    ingress_route_before: dict[str, Any] | None
    ingress_route_after: dict[str, Any] | None
    distribution: dict[str, Any] | None = None
    launch: LaunchRecord | None = None
    # What the options resolved to (see _resolved): callers use it instead of re-deriving the defaults.
    resolved: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def ingress_before(self) -> list[dict[str, Any]] | None:
        return route_targets(self.ingress_route_before)

    @property
    def ingress_after(self) -> list[dict[str, Any]] | None:
        return route_targets(self.ingress_route_after)

    @property
    def diff(self) -> dict[str, Any]:
        return {
            "before": {
                "mirror": trim_server_fields(self.mirror_before),
                "ingress_route": trim_server_fields(self.ingress_route_before),
            },
            "after": {
                "mirror": trim_server_fields(self.mirror_after),
                "ingress_route": trim_server_fields(self.ingress_route_after),
            },
        }

    def to_dict(self) -> dict[str, Any]:
        ingress_route = None
        source = self.ingress_route_after or self.ingress_route_before
        if source is not None:
            meta = source.get("metadata", {})
            ingress_route = {
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "before": self.ingress_before,
                "after": self.ingress_after,
            }
        return {
            "changed": self.changed,
            "status": self.status,
            "actions": [action.to_dict() for action in self.actions],
            "warnings": list(self.warnings),
            "mirror": copy.deepcopy(self.mirror_after),
            "ingress_route": ingress_route,
            "distribution": copy.deepcopy(self.distribution),
            "launch": self.launch.to_dict() if self.launch else None,
            "resolved": copy.deepcopy(self.resolved),
            "diff": self.diff,
        }


def route_targets(ingress_route: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """Each route's match and services, as stored in the IngressRoute."""
    if ingress_route is None:
        return None
    routes = ingress_route.get("spec", {}).get("routes") or []
    return [
        {"index": i, "match": route.get("match"), "services": copy.deepcopy(route.get("services") or [])}
        for i, route in enumerate(routes)
    ]


def trim_server_fields(obj: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    trimmed = copy.deepcopy(dict(obj))
    trimmed.pop("status", None)
    metadata = trimmed.get("metadata")
    if isinstance(metadata, dict):
        for key in SERVER_OWNED_METADATA:
            metadata.pop(key, None)
    return trimmed


# --- validation ----------------------------------------------------------------------------------------


def check_mirror_percent(value: object, field_name: str = "mirror_percent", hint: str = "") -> int:
    """The one rule for a share of requests copied to the shadow, shared by traefik_mirror's
    ``mirror_percent`` and the shadow_launch role's steps: a whole number from 1 to 100."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise DarklaunchError(
            f"{field_name} must be a whole number from 1 to 100; got {value!r}.{hint}", field=field_name
        )
    return value


def _check_derived_name(params: MirrorParams, field_name: str, rule: str, derived: bool) -> None:
    try:
        check_name(getattr(params, field_name), field_name, rule)
    except DarklaunchError as err:
        if derived:
            # The user never typed this name: say where it came from.
            raise DarklaunchError(
                f"{err.msg} It was derived from route_name; set {field_name} explicitly.", field=field_name
            ) from None
        raise


def validate_params(params: MirrorParams) -> MirrorParams:
    """The semantic checks of traefik_mirror's options; return the params with defaults filled, ports
    normalised and ``validated`` set, so the planner does not check them again.

    Types, choices and required options are AnsibleModule's job (the module's argument spec); only what
    it cannot express is checked here. Raises DarklaunchError naming the option at fault.
    """
    check_name(params.route_name, "route_name", "subdomain")
    check_name(params.namespace, "namespace", "label")
    if params.state == STATE_PRESENT:
        check_mirror_percent(params.mirror_percent, hint=" To stop mirroring use state=absent.")
    launch = parse_launch_request(params.launch)
    if launch is not None and params.state != STATE_PRESENT:
        raise DarklaunchError(
            "launch only applies with state=present (it records a running launch on the mirror); state=absent "
            "deletes the mirror and its launch record. Remove launch from this call.",
            field="launch",
        )
    if not 0 <= params.propagation_seconds <= MAX_PROPAGATION_SECONDS:
        raise DarklaunchError(
            f"propagation_seconds must be between 0 and {MAX_PROPAGATION_SECONDS:g} seconds; got "
            f"{params.propagation_seconds!r}.",
            field="propagation_seconds",
        )
    if params.max_body_size is not None and params.max_body_size < -1:
        raise DarklaunchError(
            f"max_body_size must be a number of bytes, or -1 for no limit; got {params.max_body_size!r}.",
            field="max_body_size",
        )
    request = parse_request_match(
        params.mirror_methods,
        params.mirror_match,
        attach=params.attach_to_ingress,
        present=params.state == STATE_PRESENT,
    )
    resolved = params.with_defaults()
    main_rule = "service" if resolved.main_kind == KIND_SERVICE else "subdomain"
    for name_field, rule in (
        ("main_service", main_rule),
        ("mirror_service", "service"),
        ("mirror_name", "subdomain"),
        ("wrr_name", "subdomain"),
    ):
        _check_derived_name(resolved, name_field, rule, derived=not getattr(params, name_field))
    if resolved.mirror_name == resolved.wrr_name:
        raise DarklaunchError(
            f"mirror_name and wrr_name are both {resolved.mirror_name!r}; the mirror needs its own name.",
            field="mirror_name",
        )
    if resolved.main_kind == KIND_TRAEFIK_SERVICE and resolved.main_service == resolved.mirror_name:
        raise DarklaunchError(
            f"main_service {resolved.main_service!r} is the mirror itself; a mirror cannot answer users from itself. "
            "Use the weighted TraefikService (for example the wrr_name) or a Service.",
            field="main_service",
        )
    return replace(
        resolved,
        launch=launch,
        main_port=normalise_port(resolved.main_port, "main_port"),
        mirror_port=normalise_port(resolved.mirror_port, "mirror_port"),
        mirror_methods=request.methods if request and request.methods else None,
        mirror_match=request.extra if request and request.extra else None,
        validated=True,
    )


# --- JSON Patch ----------------------------------------------------------------------------------------


def escape_pointer(token: str) -> str:
    """RFC 6901: '~' -> '~0', '/' -> '~1' (label and annotation keys contain '/')."""
    return token.replace("~", "~0").replace("/", "~1")


def _pointer_tokens(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _container_and_key(document: Any, path: str) -> tuple[Any, str]:
    tokens = _pointer_tokens(path)
    target = document
    for token in tokens[:-1]:
        target = target[int(token)] if isinstance(target, list) else target[token]
    return target, tokens[-1]


def apply_json_patch(document: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply add/remove/replace/test ops to a copy of ``document`` (what the API server will do)."""
    result: dict[str, Any] = copy.deepcopy(dict(document))
    for op in ops:
        container, key = _container_and_key(result, str(op["path"]))
        verb = op["op"]
        if isinstance(container, list):
            position = len(container) if key == "-" else int(key)
            if verb == "add":
                container.insert(position, copy.deepcopy(op["value"]))
            elif verb == "remove":
                del container[position]
            elif verb == "replace":
                container[position] = copy.deepcopy(op["value"])
            elif verb == "test" and container[position] != op["value"]:
                raise DarklaunchError(f"JSON Patch test failed at {op['path']}.")
            continue
        if verb in ("add", "replace"):
            container[key] = copy.deepcopy(op["value"])
        elif verb == "remove":
            del container[key]
        elif verb == "test" and container.get(key) != op["value"]:
            raise DarklaunchError(f"JSON Patch test failed at {op['path']}.")
    return result


def _set_op(ops: JsonPatch, container: Mapping[str, Any], base: str, key: str, value: Any) -> bool:
    """Append add/replace for ``base/key`` when the stored value differs; True if an op was added."""
    if key not in container:
        ops.append({"op": "add", "path": f"{base}/{escape_pointer(key)}", "value": value})
        return True
    if container[key] != value or type(container[key]) is not type(value):
        ops.append({"op": "replace", "path": f"{base}/{escape_pointer(key)}", "value": value})
        return True
    return False


def _version_test(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    version = obj.get("metadata", {}).get("resourceVersion")
    if not version:
        name = obj.get("metadata", {}).get("name")
        raise DarklaunchError(
            f"{kind} {name} was read without metadata.resourceVersion; read it from the API before planning."
        )
    return {"op": "test", "path": "/metadata/resourceVersion", "value": version}


# --- planning context ----------------------------------------------------------------------------------


@dataclass
class _Context:
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


def _build_context(params: MirrorParams, observed: Observed, now: datetime | None) -> _Context:
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
    return _Context(
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


def _traefik_service_map(ctx: _Context, mirror_after: Mapping[str, Any] | None) -> dict[ObjectKey, TraefikServiceObj]:
    known = index_by_key(ctx.other_traefik_services)
    for extra in (ctx.wrr, ctx.main_traefik_service):
        if extra is not None:
            known.setdefault(extra.key, extra)
    known.pop(ctx.mirror_key, None)
    if mirror_after is not None:
        known[ctx.mirror_key] = parse_traefik_service(mirror_after)
    return known


def _kube_service_map(ctx: _Context) -> dict[ObjectKey, KubeServiceObj] | None:
    if ctx.observed.services is None:
        return None
    known = index_by_key(parse_kube_service(raw) for raw in ctx.observed.services)
    for extra in (ctx.main_service, ctx.mirror_target):
        if extra is not None:
            known[extra.key] = extra
    return known


def _referencing_routes(
    ctx: _Context, ingress_route_after: Mapping[str, Any] | None, mirror_after: Mapping[str, Any] | None
) -> list[str]:
    """IngressRoutes (``ns/name``) that send traffic through the mirror once the plan is applied."""
    ingress_routes = list(ctx.other_ingress_routes)
    if ingress_route_after is not None:
        ingress_routes.append(parse_ingress_route(ingress_route_after))
    index = build_reference_index(ingress_routes, _traefik_service_map(ctx, mirror_after))
    names = [f"{ref.namespace}/{ref.ingress_route}" for ref in index.get(ctx.mirror_key, [])]
    return list(dict.fromkeys(names))


def _distribution_after(
    ctx: _Context, ingress_route_after: Mapping[str, Any] | None, mirror_after: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if ingress_route_after is None:
        return None
    resolved = resolve_route(
        parse_ingress_route(ingress_route_after), _traefik_service_map(ctx, mirror_after), _kube_service_map(ctx)
    )
    return resolved.to_dict()


# --- ports ---------------------------------------------------------------------------------------------


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


def _main_port(ctx: _Context) -> PortValue | None:
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


def _mirror_port(ctx: _Context) -> PortValue:
    params = ctx.params
    wanted = (params.namespace, params.mirror_service)
    mirrors = ctx.mirror.mirrors if ctx.mirror else ()
    current = next((m.port for m in mirrors if m.kind == KIND_SERVICE and m.key == wanted), None)
    return _backend_port(
        _PortChoice(
            ctx.mirror_target, params.mirror_port, current, "mirror_port", "mirror_service", params.mirror_service
        )
    )


# --- the mirror TraefikService -------------------------------------------------------------------------


def _desired_mirroring(params: MirrorParams, main_port: PortValue | None, mirror_port: PortValue) -> dict[str, Any]:
    mirroring: dict[str, Any] = {"name": params.main_service, "kind": params.main_kind}
    if main_port is not None:
        mirroring["port"] = main_port
    if params.mirror_body is not None:
        mirroring["mirrorBody"] = params.mirror_body
    if params.max_body_size is not None:
        mirroring["maxBodySize"] = params.max_body_size
    mirroring["mirrors"] = [
        {"name": params.mirror_service, "kind": KIND_SERVICE, "port": mirror_port, "percent": params.mirror_percent}
    ]
    return mirroring


def _new_mirror(params: MirrorParams, mirroring: dict[str, Any], launch: LaunchRecord | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": params.mirror_name,
        "namespace": params.namespace,
        "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
    }
    if launch is not None:
        metadata["annotations"] = launch.annotations()
    return {
        "apiVersion": f"{params.api_group}/{CRD_VERSION}",
        "kind": KIND_TRAEFIK_SERVICE,
        "metadata": metadata,
        "spec": {"mirroring": mirroring},
    }


def _endpoint(name: object, port: object) -> str:
    return f"{name}:{port}" if port not in (None, "") else str(name)


def _refuse_foreign_mirror(ctx: _Context) -> None:
    mirror = ctx.mirror
    if mirror is not None and mirror.spec_type != SPEC_MIRRORING:
        raise DarklaunchError(
            f"TraefikService {mirror.namespace}/{mirror.name} exists but is a {mirror.spec_type} service, "
            "not a mirror; refusing to change or delete it. Set mirror_name to another name.",
            field="mirror_name",
        )


# The spec keys of a TraefikService; Traefik builds only one of them, so an object with two is ambiguous.
_TRAEFIK_SERVICE_SPECS = ("weighted", "mirroring", "failover", "highestRandomWeight")


def _refuse_ambiguous(ts: TraefikServiceObj | None, field_name: str) -> None:
    spec = ts.raw.get("spec") if ts is not None and isinstance(ts.raw, Mapping) else None
    if ts is None or not isinstance(spec, Mapping):
        return
    kinds = [key for key in _TRAEFIK_SERVICE_SPECS if spec.get(key) is not None]
    if len(kinds) > 1:
        raise DarklaunchError(
            f"TraefikService {ts.namespace}/{ts.name} ({field_name}) has both {join_words(kinds)}: Traefik builds only "
            "one of them, so which backends answer users is ambiguous. Fix the object so that it has exactly one, "
            "then run again.",
            field=field_name,
        )


def _refuse_ambiguous_services(ctx: _Context, *, uses_wrr: bool) -> None:
    _refuse_ambiguous(ctx.mirror, "mirror_name")
    _refuse_ambiguous(ctx.main_traefik_service, "main_service")
    if uses_wrr:
        _refuse_ambiguous(ctx.wrr, "wrr_name")


def _hand_over_hint(ctx: _Context) -> str:
    return (
        f"Set mirror_name to another name, or, if it is yours to replace, label it "
        f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE} (kubectl -n {ctx.params.namespace} label traefikservice "
        f"{ctx.params.mirror_name} {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}) and run again."
    )


def _refuse_someone_elses_mirror(ctx: _Context) -> None:
    """A mirror that darklaunch.traefik did not create is adopted only when it already mirrors the requested
    main service to the requested shadow: anything else is someone else's launch, not ours to rewrite."""
    mirror, params = ctx.mirror, ctx.params
    if mirror is None or mirror.is_managed:
        return
    same_main = mirror.main is not None and ctx.is_main(mirror.main)
    wanted_shadow = (params.namespace, params.mirror_service)
    same_shadow = bool(mirror.mirrors) and all(
        m.kind == KIND_SERVICE and m.key == wanted_shadow for m in mirror.mirrors
    )
    if same_main and same_shadow:
        return
    shadows = ", ".join(m.key[1] for m in mirror.mirrors) or "nothing"
    main = mirror.main.key[1] if mirror.main else "nothing"
    raise DarklaunchError(
        f"TraefikService {mirror.namespace}/{mirror.name} was not created by {MANAGED_BY_VALUE} (no label "
        f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}) and mirrors {main} to {shadows}, not {params.main_service} to "
        f"{params.mirror_service}; refusing to rewrite someone else's mirror. {_hand_over_hint(ctx)}",
        field="mirror_name",
    )


def _refuse_deleting_someone_elses_mirror(ctx: _Context, routes_on_mirror: Sequence[int]) -> None:
    mirror = ctx.mirror
    if mirror is None or mirror.is_managed or routes_on_mirror:
        return
    raise DarklaunchError(
        f"TraefikService {mirror.namespace}/{mirror.name} was not created by {MANAGED_BY_VALUE} (no label "
        f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}) and IngressRoute {ctx.params.route_name} does not route through "
        f"it; refusing to delete someone else's mirror. {_hand_over_hint(ctx)}",
        field="mirror_name",
    )


def _own_mirror_index(entries: Sequence[Any], params: MirrorParams) -> int | None:
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            continue
        ref = parse_service_ref(entry, params.namespace)
        if ref.kind == KIND_SERVICE and ref.key == (params.namespace, params.mirror_service):
            return index
    return None


def _mirror_entry_ops(
    ctx: _Context, current: Mapping[str, Any], desired: Mapping[str, Any], ops: JsonPatch, changes: list[str]
) -> None:
    base = "/spec/mirroring/mirrors"
    wanted = desired["mirrors"][0]
    entries = current.get("mirrors")
    entries = entries if isinstance(entries, list) else []
    index = _own_mirror_index(entries, ctx.params)
    if index is None:
        ops.append({"op": "replace" if "mirrors" in current else "add", "path": base, "value": [wanted]})
        replaced = [_endpoint(e.get("name"), e.get("port")) for e in entries if isinstance(e, Mapping)]
        if replaced:
            changes.append(f"shadow {', '.join(replaced)} -> {_endpoint(wanted['name'], wanted['port'])}")
            ctx.warnings.append(
                f"The mirror copied requests to {', '.join(replaced)}; it now copies them to "
                f"{_endpoint(wanted['name'], wanted['port'])} only."
            )
        else:
            changes.append(f"shadow {_endpoint(wanted['name'], wanted['port'])} added")
        return
    entry = entries[index]
    old_percent = entry.get("percent", 0)
    if _set_op(ops, entry, f"{base}/{index}", "port", wanted["port"]):
        changes.append(f"shadow port {entry.get('port')} -> {wanted['port']}")
    if _set_op(ops, entry, f"{base}/{index}", "percent", wanted["percent"]):
        changes.append(f"mirror percent {old_percent} -> {wanted['percent']}")
    others = [_endpoint(e.get("name"), e.get("port")) for i, e in enumerate(entries) if i != index]
    if others:
        ctx.warnings.append(
            f"The mirror also copies requests to {', '.join(others)}; those entries were left as they are."
        )


def _main_ref_ops(
    ctx: _Context, current: Mapping[str, Any], desired: Mapping[str, Any], ops: JsonPatch, changes: list[str]
) -> None:
    base = "/spec/mirroring"
    old = _endpoint(current.get("name"), current.get("port"))
    touched = _set_op(ops, current, base, "name", desired["name"])
    current_kind = current.get("kind") or KIND_SERVICE
    if current_kind != desired["kind"]:
        _set_op(ops, current, base, "kind", desired["kind"])
        touched = True
    if "port" in desired:
        touched = _set_op(ops, current, base, "port", desired["port"]) or touched
    elif "port" in current:
        ops.append({"op": "remove", "path": f"{base}/port"})
        touched = True
    if current.get("namespace") not in (None, "", ctx.params.namespace):
        ops.append({"op": "remove", "path": f"{base}/namespace"})
        touched = True
    if touched:
        changes.append(f"main service {old} -> {_endpoint(desired['name'], desired.get('port'))}")
    for key in ("mirrorBody", "maxBodySize"):
        if key in desired and _set_op(ops, current, base, key, desired[key]):
            changes.append(f"{key} {current.get(key)} -> {desired[key]}")


def _label_ops(ctx: _Context, current: Mapping[str, Any], ops: JsonPatch, changes: list[str]) -> None:
    labels = current.get("metadata", {}).get("labels")
    if not isinstance(labels, Mapping):
        ops.append({"op": "add", "path": "/metadata/labels", "value": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}})
        changes.append(f"label {MANAGED_BY_LABEL} added")
    elif MANAGED_BY_LABEL not in labels:
        path = f"/metadata/labels/{escape_pointer(MANAGED_BY_LABEL)}"
        ops.append({"op": "add", "path": path, "value": MANAGED_BY_VALUE})
        changes.append(f"label {MANAGED_BY_LABEL} added")
    elif labels[MANAGED_BY_LABEL] != MANAGED_BY_VALUE:
        # Someone else (Helm, Argo CD, ...) owns it: taking the label over would confuse them.
        ctx.warnings.append(
            f"TraefikService {ctx.params.mirror_name} is labelled {MANAGED_BY_LABEL}={labels[MANAGED_BY_LABEL]}; "
            "that tool may revert the changes made here."
        )


def _launch_after(ctx: _Context) -> tuple[LaunchRecord | None, str | None]:
    """The mirror's launch record after this call, and the change to describe (None: unchanged)."""
    current = read_launch_record(ctx.mirror.annotations) if ctx.mirror else None
    request = ctx.params.launch
    if request is None:
        return current, None
    if not isinstance(request, LaunchRequest) or ctx.now is None:
        raise DarklaunchError("Internal error: plan_mirror needs a validated launch and the current time (now).")
    change = plan_record(request, current, ctx.params.route_name, ctx.now)
    ctx.warnings.extend(change.warnings)
    return change.record, change.summary


def _launch_ops(current_raw: Mapping[str, Any], record: LaunchRecord | None) -> JsonPatch:
    """Ops that make the mirror's launch annotations equal ``record``'s, keeping every other annotation."""
    annotations = current_raw.get("metadata", {}).get("annotations")
    wanted = record.annotations() if record else {}
    if not isinstance(annotations, Mapping):
        return [{"op": "add", "path": "/metadata/annotations", "value": wanted}] if wanted else []
    stale = [key for key in launch_annotation_keys(annotations) if key not in wanted]
    if stale and not wanted and len(stale) == len(annotations):
        # Only the record was there: drop the map, as the mirror was before the launch wrote it.
        return [{"op": "remove", "path": "/metadata/annotations"}]
    ops: JsonPatch = [{"op": "remove", "path": f"/metadata/annotations/{escape_pointer(key)}"} for key in sorted(stale)]
    for key, value in wanted.items():
        if annotations.get(key) != value:
            ops.append({"op": "add", "path": f"/metadata/annotations/{escape_pointer(key)}", "value": value})
    return ops


def _plan_mirror_object(
    ctx: _Context, main_port: PortValue | None, mirror_port: PortValue, actions: list[Action]
) -> tuple[dict[str, Any], LaunchRecord | None]:
    """Create or patch the mirror (its spec and launch record in one write); returns the mirror as it
    will be and its launch record."""
    params = ctx.params
    desired = _desired_mirroring(params, main_port, mirror_port)
    launch, launch_change = _launch_after(ctx)
    if ctx.observed.mirror is None:
        body = _new_mirror(params, desired, launch)
        summary = (
            f"create TraefikService {params.mirror_name} copying {params.mirror_percent}% of requests to "
            f"{_endpoint(params.mirror_service, mirror_port)} (users are answered by "
            f"{_endpoint(params.main_service, main_port)})"
        )
        if launch is not None:
            summary += f"; {launch_change}"
        actions.append(Action("create", KIND_TRAEFIK_SERVICE, params.mirror_name, params.namespace, body, summary))
        return copy.deepcopy(body), launch
    current_raw = ctx.observed.mirror
    current = current_raw.get("spec", {}).get("mirroring", {})
    ops: JsonPatch = []
    changes: list[str] = []
    _main_ref_ops(ctx, current, desired, ops, changes)
    _mirror_entry_ops(ctx, current, desired, ops, changes)
    _label_ops(ctx, current_raw, ops, changes)
    record_ops = _launch_ops(current_raw, launch) if launch_change else []
    if record_ops:
        ops.extend(record_ops)
        changes.append(str(launch_change))
    if not ops:
        return copy.deepcopy(dict(current_raw)), launch
    patch = [_version_test(current_raw, KIND_TRAEFIK_SERVICE), *ops]
    summary = f"patch TraefikService {params.mirror_name}: {'; '.join(changes)}"
    actions.append(
        Action(
            "patch",
            KIND_TRAEFIK_SERVICE,
            params.mirror_name,
            params.namespace,
            patch,
            summary,
            ctx.mirror.resource_version if ctx.mirror else None,
            record_only=len(ops) == len(record_ops),
        )
    )
    return apply_json_patch(current_raw, patch), launch


# --- attaching the IngressRoute ------------------------------------------------------------------------


def _describe_targets(ingress_route: IngressRouteObj) -> str:
    described = []
    for route in ingress_route.routes:
        names = ", ".join(f"{ref.kind} {ref.name}" for ref in route.services) or "nothing"
        described.append(f"route {route.index} -> {names}")
    return "; ".join(described) or "no routes"


def _require_ingress_route(ctx: _Context) -> IngressRouteObj:
    if ctx.ingress_route is None:
        params = ctx.params
        raise DarklaunchError(
            f"IngressRoute {params.namespace}/{params.route_name} does not exist, so attach_to_ingress has nothing "
            "to repoint. Check route_name and namespace, or run without attach_to_ingress.",
            field="route_name",
        )
    return ctx.ingress_route


def _split_text(wrr: TraefikServiceObj) -> str:
    total = sum(ref.effective_weight for ref in wrr.weighted)
    parts = [f"{percent_value(_fraction(ref.effective_weight, total))}% {ref.name}" for ref in wrr.weighted]
    return ", ".join(parts)


def _fraction(numerator: int, denominator: int) -> Fraction:
    return Fraction(numerator, denominator) if denominator else Fraction(0)


def _check_weighted_split(ctx: _Context, repointed_refs: Sequence[ServiceRef]) -> None:
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
            f"TraefikService {wrr.name} ({_split_text(wrr)}). With {request.field}, the route keeps serving the "
            f"requests that are not copied from that split, so {join_words(losers)} would keep answering real "
            f"users' requests, writes included. Send every user to {main_name} in {wrr.name} first (weight 0 for "
            f"{join_words(losers)}), keep the split and mirror on top of it (main_kind=TraefikService, "
            f"main_service={wrr.name}), or attach without {request.field}.",
            field=request.field,
            details={"weighted_split": _split_text(wrr)},
        )
    if not params.confirm_end_weighted_split:
        raise DarklaunchError(
            f"IngressRoute {params.namespace}/{params.route_name} splits real users through the weighted "
            f"TraefikService {wrr.name} ({_split_text(wrr)}). Attaching the mirror ends that split: every user "
            f"response would come from {main_name}, and {', '.join(losers)} would no longer serve real users. "
            "Set confirm_end_weighted_split=true to accept that, or keep the split by mirroring on top of it "
            f"(main_kind=TraefikService, main_service={wrr.name}).",
            field="confirm_end_weighted_split",
            details={"weighted_split": _split_text(wrr)},
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
        f"Attaching ended the weighted split of {wrr.name} ({_split_text(wrr)}): all user responses now come from "
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
    ctx: _Context, route_index: int, entries: Sequence[Mapping[str, Any]], matched: Sequence[int]
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


def _raw_route_services(ingress_route: IngressRouteObj, index: int) -> list[Mapping[str, Any]]:
    routes = ingress_route.raw.get("spec", {}).get("routes") or []
    services = routes[index].get("services") or []
    return [entry for entry in services if isinstance(entry, Mapping)]


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
    ctx: _Context, index: int, entries: Sequence[Mapping[str, Any]], saved: Mapping[str, Any]
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
    return _restored_services(ctx, index, entries, None)


def _plan_attach(ctx: _Context, actions: list[Action]) -> dict[str, Any]:
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
            f"{params.mirror_name} ({_describe_targets(ingress_route)}), so there is nothing to repoint. Set wrr_name "
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
    ops: JsonPatch = [_version_test(ingress_route.raw, "IngressRoute")]
    for index, positions in matched.items():
        entries = _raw_route_services(ingress_route, index)
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
    _assert_preserved(ingress_route.raw, after)
    return after


def _plan_request_routes(
    ctx: _Context,
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
        index: _repointed_services(ctx, index, _raw_route_services(ingress_route, index), positions)
        for index, positions in matched.items()
    }
    observed = ctx.observed
    change = plan_request_routes(ingress_route.raw, request, sources, added, params.api_group, observed.neighbours)
    ctx.warnings.extend(observed.neighbours_warnings)
    ctx.warnings.extend(request.warnings(params.mirror_service))
    if not change.ops:
        return copy.deepcopy(dict(ingress_route.raw))
    ops: JsonPatch = [_version_test(ingress_route.raw, "IngressRoute"), *change.ops]
    summary = f"patch IngressRoute {params.route_name}: {'; '.join(change.changes) or 'record updated'}"
    actions.append(
        Action(
            "patch", "IngressRoute", params.route_name, params.namespace, ops, summary, ingress_route.resource_version
        )
    )
    after = apply_json_patch(ingress_route.raw, ops)
    _assert_preserved(ingress_route.raw, after, added_before=added, added_after=change.added_after)
    return after


def _assert_preserved(
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


# --- what the options resolved to ------------------------------------------------------------------------


def _previous_percent(ctx: _Context) -> int | None:
    """The share the mirror copied to mirror_service before this run (None: no mirror, or another shadow)."""
    if ctx.mirror is None:
        return None
    wanted = (ctx.params.namespace, ctx.params.mirror_service)
    return next((m.percent for m in ctx.mirror.mirrors if m.kind == KIND_SERVICE and m.key == wanted), None)


def _resolved(ctx: _Context, main_port: PortValue | None, mirror_port: PortValue | None) -> dict[str, Any]:
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
            "split": _split_text(ctx.wrr) if ctx.wrr is not None and ctx.wrr.weighted else None,
            "ended": ctx.ended_weighted_split,
        },
    }


# --- present -------------------------------------------------------------------------------------------


def _missing_backends(ctx: _Context) -> list[tuple[str, str]]:
    params = ctx.params
    missing = []
    if not ctx.main_exists():
        missing.append(("main_service", f"{params.main_kind} {params.namespace}/{params.main_service}"))
    if ctx.mirror_target is None:
        missing.append(("mirror_service", f"Service {params.namespace}/{params.mirror_service}"))
    return missing


def _check_backends(ctx: _Context, will_be_active: bool) -> None:
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


def _present_warnings(ctx: _Context, status: str, mirror_after: Mapping[str, Any]) -> None:
    params = ctx.params
    if status == STATUS_INACTIVE:
        if ctx.ingress_route is None:
            where = f"IngressRoute {params.route_name} does not exist in {params.namespace}"
        else:
            where = f"IngressRoute {params.route_name} routes to {_describe_targets(ctx.ingress_route)}"
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


def _plan_present(ctx: _Context) -> MirrorPlan:
    _refuse_foreign_mirror(ctx)
    _refuse_ambiguous_services(ctx, uses_wrr=ctx.params.attach_to_ingress)
    _refuse_someone_elses_mirror(ctx)
    if ctx.params.attach_to_ingress:
        # Attaching makes the mirror live: refuse a missing backend before its port is looked for, so the
        # error names the missing Service rather than the port that cannot be chosen.
        _check_backends(ctx, will_be_active=True)
    main_port = _main_port(ctx)
    mirror_port = _mirror_port(ctx)
    actions: list[Action] = []
    mirror_after, launch = _plan_mirror_object(ctx, main_port, mirror_port, actions)
    ingress_route_before = copy.deepcopy(dict(ctx.observed.ingress_route)) if ctx.observed.ingress_route else None
    ingress_route_after = ingress_route_before
    if ctx.params.attach_to_ingress:
        ingress_route_after = _plan_attach(ctx, actions)
    referencing = _referencing_routes(ctx, ingress_route_after, mirror_after)
    _check_backends(ctx, will_be_active=bool(referencing))
    status = STATUS_ACTIVE if referencing else STATUS_INACTIVE
    _present_warnings(ctx, status, mirror_after)
    return MirrorPlan(
        actions=actions,
        warnings=ctx.warnings,
        status=status,
        mirror_before=copy.deepcopy(dict(ctx.observed.mirror)) if ctx.observed.mirror else None,
        mirror_after=mirror_after,
        ingress_route_before=ingress_route_before,
        ingress_route_after=ingress_route_after,
        distribution=_distribution_after(ctx, ingress_route_after, mirror_after),
        launch=launch,
        resolved=_resolved(ctx, main_port, mirror_port),
    )


# --- absent --------------------------------------------------------------------------------------------


def _blocking_references(ctx: _Context) -> list[str]:
    """Objects other than route_name's IngressRoute that send traffic through the mirror."""
    blockers = [
        f"IngressRoute {name}"
        for name in _referencing_routes(ctx, None, ctx.observed.mirror)
        if name != f"{ctx.params.namespace}/{ctx.params.route_name}"
    ]
    for service in ctx.other_traefik_services:
        if any(ref.kind == KIND_TRAEFIK_SERVICE and ref.key == ctx.mirror_key for ref in service.children()):
            blockers.append(f"TraefikService {service.namespace}/{service.name}")
    return blockers


def _restored_services(
    ctx: _Context, index: int, entries: Sequence[Mapping[str, Any]], saved: Mapping[str, Any] | None
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


def _check_restore_targets(ctx: _Context, services: Sequence[Mapping[str, Any]]) -> None:
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


def _plan_restore(ctx: _Context, actions: list[Action]) -> dict[str, Any] | None:
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
        entries = _raw_route_services(ingress_route, route.index)
        restored = _restored_services(ctx, route.index, entries, saved)
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
    patch = [_version_test(ingress_route.raw, "IngressRoute"), *ops]
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
    _assert_preserved(ingress_route.raw, after, added_before=added)
    return after


def _routes_on_mirror(ctx: _Context) -> list[int]:
    if ctx.ingress_route is None:
        return []
    return [route.index for route in ctx.ingress_route.routes if any(ctx.is_mirror(ref) for ref in route.services)]


def _plan_absent(ctx: _Context) -> MirrorPlan:
    params = ctx.params
    _refuse_foreign_mirror(ctx)
    _refuse_ambiguous_services(ctx, uses_wrr=params.restore_ingress_to_wrr)
    mirror_exists = ctx.observed.mirror is not None
    on_mirror = _routes_on_mirror(ctx)
    _refuse_deleting_someone_elses_mirror(ctx, on_mirror)
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
    ingress_route_before = copy.deepcopy(dict(ctx.observed.ingress_route)) if ctx.observed.ingress_route else None
    ingress_route_after = ingress_route_before
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
    return MirrorPlan(
        actions=actions,
        warnings=ctx.warnings,
        status=STATUS_ABSENT,
        mirror_before=copy.deepcopy(dict(ctx.observed.mirror)) if ctx.observed.mirror else None,
        mirror_after=None,
        ingress_route_before=ingress_route_before,
        ingress_route_after=ingress_route_after,
        distribution=_distribution_after(ctx, ingress_route_after, None),
        resolved=_resolved(ctx, None, None),
    )


# --- entry point ---------------------------------------------------------------------------------------


def plan_mirror(params: MirrorParams, observed: Observed, now: datetime | None = None) -> MirrorPlan:
    """Everything traefik_mirror must do, in order, to reach ``params`` from ``observed``.

    Same desired state as observed => no actions. Raises DarklaunchError (naming the option) instead of
    planning anything unsafe. ``now`` (aware, UTC) is required with ``params.launch``: the record's
    deadline is counted from it.
    """
    validated = params if params.validated else validate_params(params)
    ctx = _build_context(validated, observed, now)
    if validated.state == STATE_ABSENT:
        return _plan_absent(ctx)
    return _plan_present(ctx)
