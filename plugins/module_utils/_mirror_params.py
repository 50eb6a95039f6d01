# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""traefik_mirror's planner at its edges: the options (validated), the objects read, the writes and the plan."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    LaunchOption,
    LaunchRecord,
    parse_launch_request,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import (
    parse_request_match,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    SERVER_OWNED_METADATA,
    TRAEFIK_GROUPS,
    PortValue,
    check_name,
    normalise_port,
)

STATE_PRESENT = "present"
STATE_ABSENT = "absent"
STATUS_ACTIVE = "active"
STATUS_INACTIVE = "inactive"
STATUS_ABSENT = "absent"

# How long Traefik is given to see one write before the write that depends on it (see propagation_waits).
DEFAULT_PROPAGATION_SECONDS = 1.0
MAX_PROPAGATION_SECONDS = 60.0


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
            main_service=self.main_service or default_names.main_service_name(self.route_name),
            mirror_service=self.mirror_service or default_names.shadow_service_name(self.route_name),
            mirror_name=self.mirror_name or default_names.mirror_name(self.route_name),
            wrr_name=self.wrr_name or default_names.wrr_name(self.route_name),
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
    # What the options resolved to (see resolved): callers use it instead of re-deriving the defaults.
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
