# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide what traefik_mirror does on a Gateway API HTTPRoute: (options, observed objects) -> ordered writes.

Pure, like _mirror_plan. Traefik's Gateway provider does not implement the HTTPRoute RequestMirror filter,
but a backendRef may name a TraefikService (with the CRD provider on): attach points one rule's backendRefs at
the ``{route}-mirror`` TraefikService, whose main is what the rule served (one Service, or a weighted
``{route}-split`` TraefikService with the backendRefs' weights), so users keep the same backends. The rule's
original backendRefs are saved in an annotation and put back exactly on teardown. Every refusal is raised while
planning, so a refused run writes nothing; patches test the resourceVersion that was read.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_launch import (
    launch_after,
    mirror_write,
    resolved_options,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import LaunchRecord, LaunchRequest

GATEWAY_GROUP = "gateway.networking.k8s.io"
KIND_HTTP_ROUTE = "HTTPRoute"
TRAEFIK_CONTROLLER = "traefik.io/gateway-controller"
SAVED_ANNOTATION = "darklaunch.traefik/pre-mirror-backendrefs"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "darklaunch.traefik"
# GatewayClass.status.supportedFeatures names (Traefik publishes them from 3.2).
NATIVE_MIRROR_FEATURES = ("HTTPRouteRequestMirror", "HTTPRouteRequestPercentageMirror")


@dataclass(frozen=True)
class HTTPRouteParams:
    route_name: str
    namespace: str
    state: str
    mirror_service: str
    mirror_port: int | str | None = None
    mirror_percent: int | None = None
    main_service: str = ""
    rule_index: int | None = None
    api_group: str = "traefik.io"
    # attach_to_ingress: point the rule at the mirror (else the mirror waits, inactive, as for IngressRoutes).
    attach: bool = True
    # restore_ingress_to_wrr: on teardown, put the rule back (else a rule still on the mirror is refused).
    restore: bool = True
    # mirror_body / max_body_size: the mirror's mirrorBody / maxBodySize (None: Traefik's default).
    mirror_body: bool | None = None
    max_body_size: int | None = None
    # The launch record to write on the mirror (traefik_mirror's launch option, validated); None leaves it alone.
    launch: LaunchRequest | None = None

    @property
    def mirror_name(self) -> str:
        return default_names.mirror_name(self.route_name)

    @property
    def split_name(self) -> str:
        return default_names.split_name(self.route_name)


@dataclass
class HTTPRouteObserved:
    route: dict[str, Any]
    # What the route's parentRefs name: {(namespace, name): Gateway or None}; {name: GatewayClass or None}.
    gateways: Mapping[tuple[str, str], dict[str, Any] | None]
    classes: Mapping[str, dict[str, Any] | None]
    mirror: dict[str, Any] | None = None
    split: dict[str, Any] | None = None
    # The mirror Service (None: missing), to take its port from when mirror_port is not given.
    mirror_service: dict[str, Any] | None = None


@dataclass
class Write:
    verb: str  # create | patch | delete
    kind: str  # HTTPRoute | TraefikService
    name: str
    body: Any = None
    summary: str = ""
    resource_version: str | None = None
    # True when the write only starts, renews or closes the launch record: routing is unchanged.
    record_only: bool = False


@dataclass
class HTTPRoutePlan:
    writes: list[Write] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    status: str = "absent"
    rule_index: int | None = None
    route_after: dict[str, Any] | None = None
    mirror_after: dict[str, Any] | None = None
    launch: LaunchRecord | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    # The {route}-split TraefikService as planned (None: the rule has one backend, or a teardown).
    split_after: dict[str, Any] | None = None


def parent_gateways(route: Mapping[str, Any], namespace: str) -> list[tuple[str, str]]:
    """(namespace, name) of each Gateway the route's parentRefs name (a parentRef's default kind is Gateway)."""
    result = []
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        if ref.get("group", GATEWAY_GROUP) == GATEWAY_GROUP and ref.get("kind", "Gateway") == "Gateway":
            result.append((ref.get("namespace") or namespace, ref["name"]))
    return result


def check_traefik_gateways(params: HTTPRouteParams, observed: HTTPRouteObserved) -> list[str]:
    """Refuse a route whose Gateways are not Traefik's; warnings for classes that report native mirroring."""
    where = f"HTTPRoute {params.namespace}/{params.route_name}"
    gateways = parent_gateways(observed.route, params.namespace)
    if not gateways:
        raise DarklaunchError(f"{where} has no Gateway in its parentRefs, so no Traefik serves it.", field="route_name")
    warnings = []
    for key in gateways:
        gateway = observed.gateways.get(key)
        if gateway is None:
            raise DarklaunchError(
                f"{where} attaches to Gateway {key[0]}/{key[1]}, which does not exist (or cannot be read).",
                field="route_name",
            )
        class_name = (gateway.get("spec") or {}).get("gatewayClassName", "")
        klass = observed.classes.get(class_name)
        controller = ((klass or {}).get("spec") or {}).get("controllerName")
        if controller != TRAEFIK_CONTROLLER:
            raise DarklaunchError(
                f"{where} attaches to Gateway {key[0]}/{key[1]} of GatewayClass {class_name or '(none)'}, whose "
                f"controller is {controller or 'unknown'}, not Traefik ({TRAEFIK_CONTROLLER}). traefik_mirror puts "
                "a TraefikService behind the route, which only Traefik resolves: nothing was changed.",
                field="route_name",
            )
        features = {
            item.get("name") if isinstance(item, Mapping) else item
            for item in ((klass or {}).get("status") or {}).get("supportedFeatures") or []
        }
        native = [name for name in NATIVE_MIRROR_FEATURES if name in features]
        if native:
            warnings.append(
                f"GatewayClass {class_name} reports native mirroring ({', '.join(native)}); traefik_mirror keeps "
                "using a TraefikService mirror until the native filter is tested with the collection."
            )
    return warnings


def _rules(route: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((route.get("spec") or {}).get("rules") or [])


def _is_mirror_ref(ref: Mapping[str, Any], params: HTTPRouteParams) -> bool:
    return ref.get("kind") == "TraefikService" and ref.get("name") == params.mirror_name


def saved_backend_refs(route: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]] | None:
    raw = ((route.get("metadata") or {}).get("annotations") or {}).get(SAVED_ANNOTATION)
    if raw is None:
        return None
    try:
        saved = json.loads(raw)
    except ValueError:
        return None
    return saved if isinstance(saved, dict) else None


def choose_rule(params: HTTPRouteParams, route: Mapping[str, Any]) -> int:
    """rule_index; else the rule already on the mirror; else the one rule whose backendRefs hold main_service."""
    rules = _rules(route)
    where = f"HTTPRoute {params.namespace}/{params.route_name}"
    if params.rule_index is not None:
        if not 0 <= params.rule_index < len(rules):
            raise DarklaunchError(
                f"rule_index {params.rule_index} is out of range: {where} has {len(rules)} rule(s) (0-based).",
                field="rule_index",
            )
        return params.rule_index
    attached = [
        i for i, rule in enumerate(rules) if any(_is_mirror_ref(r, params) for r in rule.get("backendRefs") or [])
    ]
    if attached:
        return attached[0]
    if not params.main_service:
        raise DarklaunchError(
            f"{where} has {len(rules)} rule(s): set main_service (a Service of the rule to mirror) or rule_index.",
            field="main_service",
        )
    holding = [
        i
        for i, rule in enumerate(rules)
        if any(
            r.get("name") == params.main_service and r.get("kind", "Service") == "Service"
            for r in rule.get("backendRefs") or []
        )
    ]
    if len(holding) != 1:
        raise DarklaunchError(
            f"{where}: {len(holding)} rules have main_service {params.main_service} among their backendRefs "
            f"({', '.join(map(str, holding)) or 'none'}); set rule_index to the rule to mirror.",
            field="rule_index",
        )
    return holding[0]


def _service_refs(params: HTTPRouteParams, index: int, refs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    for ref in refs:
        if ref.get("group", "") not in ("", "core") or ref.get("kind", "Service") != "Service":
            raise DarklaunchError(
                f"HTTPRoute {params.namespace}/{params.route_name} rule {index} has backendRef {ref.get('kind')} "
                f"{ref.get('name')}; only rules whose backendRefs are Services can be mirrored.",
                field="rule_index",
            )
        if ref.get("namespace") not in (None, params.namespace):
            raise DarklaunchError(
                f"HTTPRoute rule {index}'s backendRef {ref.get('name')} is in namespace {ref['namespace']}; only "
                "backendRefs in the route's own namespace can be mirrored.",
                field="rule_index",
            )
        if ref.get("filters"):
            raise DarklaunchError(
                f"HTTPRoute rule {index}'s backendRef {ref.get('name')} has its own filters, which a TraefikService "
                "cannot carry; move them to the rule's filters first.",
                field="rule_index",
            )
        if ref.get("port") is None:
            raise DarklaunchError(
                f"HTTPRoute rule {index}'s backendRef {ref.get('name')} has no port.", field="rule_index"
            )
    return [dict(ref) for ref in refs]


def _labels() -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


def _traefik_service(params: HTTPRouteParams, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A TraefikService of the route's namespace that traefik_mirror owns (its label)."""
    return {
        "apiVersion": f"{params.api_group}/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": name, "namespace": params.namespace, "labels": _labels()},
        "spec": spec,
    }


def split_object(params: HTTPRouteParams, refs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The weighted TraefikService with the rule's backendRefs and their weights (Gateway API default 1)."""
    services = [{"name": ref["name"], "port": ref["port"], "weight": int(ref.get("weight", 1))} for ref in refs]
    return _traefik_service(params, params.split_name, {"weighted": {"services": services}})


def _mirror_port(params: HTTPRouteParams, observed: HTTPRouteObserved) -> int | str:
    service = observed.mirror_service
    # Checked even with mirror_port: a mirror whose shadow Service is missing fails in Traefik as a whole, and
    # the rule's users would get errors.
    if service is None:
        raise DarklaunchError(
            f"mirror_service {params.mirror_service} does not exist in namespace {params.namespace}; traefik_mirror "
            "never routes copies to a missing service. Create it first.",
            field="mirror_service",
        )
    if params.mirror_port is not None:
        return params.mirror_port
    ports = (service.get("spec") or {}).get("ports") or []
    if len(ports) != 1:
        raise DarklaunchError(
            f"Service {params.mirror_service} has {len(ports)} ports; set mirror_port.", field="mirror_port"
        )
    return int(ports[0]["port"])


def mirror_object(params: HTTPRouteParams, main: Mapping[str, Any], mirror_port: int | str) -> dict[str, Any]:
    mirroring: dict[str, Any] = dict(main)
    # The mirror is a TraefikService as on an IngressRoute, so body copying is set the same way.
    if params.mirror_body is not None:
        mirroring["mirrorBody"] = params.mirror_body
    if params.max_body_size is not None:
        mirroring["maxBodySize"] = params.max_body_size
    mirroring["mirrors"] = [{"name": params.mirror_service, "port": mirror_port, "percent": params.mirror_percent}]
    return _traefik_service(params, params.mirror_name, {"mirroring": mirroring})


def _route_patch(params: HTTPRouteParams, route: Mapping[str, Any], ops: list[dict[str, Any]], what: str) -> Write:
    """The JSON Patch of the HTTPRoute ``route`` (as read), summarised as ``what`` it does."""
    return Write(
        "patch", KIND_HTTP_ROUTE, params.route_name, ops, f"patch HTTPRoute {params.route_name}: {what}", _rv(route)
    )


def _version_test(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"op": "test", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]}


def _ensure(plan: HTTPRoutePlan, current: Mapping[str, Any] | None, desired: dict[str, Any], what: str) -> None:
    """Create ``desired`` or replace its spec (and our label) when it differs; refuse an object we do not own."""
    name = desired["metadata"]["name"]
    if current is None:
        plan.writes.append(Write("create", "TraefikService", name, desired, f"create TraefikService {name} ({what})"))
        return
    labels = (current.get("metadata") or {}).get("labels") or {}
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        raise DarklaunchError(
            f"TraefikService {name} exists and is not managed by darklaunch.traefik; rename or remove it.",
            field="route_name",
        )
    if current.get("spec") == desired["spec"]:
        return
    ops = [_version_test(current), {"op": "replace", "path": "/spec", "value": desired["spec"]}]
    plan.writes.append(
        Write("patch", "TraefikService", name, ops, f"update TraefikService {name} ({what})", _rv(current))
    )


def _rv(obj: Mapping[str, Any]) -> str | None:
    return (obj.get("metadata") or {}).get("resourceVersion")


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _ensure_mirror(
    plan: HTTPRoutePlan, params: HTTPRouteParams, current: Mapping[str, Any] | None, desired: dict[str, Any], now: Any
) -> None:
    """The mirror as ``desired``, with the launch record the call asks for, in one write (or none)."""
    if current is not None:
        labels = (current.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
            raise DarklaunchError(
                f"TraefikService {params.mirror_name} exists and is not managed by darklaunch.traefik; rename or "
                "remove it.",
                field="route_name",
            )
    record, change, warnings = launch_after(params.launch, current, params.route_name, now)
    plan.warnings.extend(warnings)
    plan.launch = record
    verb, body, summary, record_only, after = mirror_write(current, desired, record, change, params.mirror_service)
    if verb is not None:
        plan.writes.append(
            Write(verb, "TraefikService", params.mirror_name, body, summary, _rv(current or {}), record_only)
        )
    plan.mirror_after = after


def plan_present(params: HTTPRouteParams, observed: HTTPRouteObserved, now: datetime | None = None) -> HTTPRoutePlan:
    """Attach (or ramp): the split and mirror TraefikServices, then the rule's backendRefs on the mirror.
    ``now`` (aware, UTC) is required with ``params.launch``: the record's deadline counts from it."""
    plan = HTTPRoutePlan(warnings=check_traefik_gateways(params, observed))
    route = observed.route
    index = choose_rule(params, route)
    plan.rule_index = index
    refs = list(_rules(route)[index].get("backendRefs") or [])
    saved = saved_backend_refs(route) or {}
    attached = any(_is_mirror_ref(ref, params) for ref in refs)
    if attached:
        if str(index) not in saved:
            raise DarklaunchError(
                f"HTTPRoute {params.namespace}/{params.route_name} rule {index} is on {params.mirror_name} but the "
                f"{SAVED_ANNOTATION} annotation does not hold its original backendRefs; restore the rule by hand.",
                field="route_name",
            )
        original = saved[str(index)]
    else:
        original = _service_refs(params, index, refs)
    if not original:
        raise DarklaunchError(f"HTTPRoute rule {index} has no backendRefs to mirror.", field="rule_index")
    if len(original) > 1:
        plan.split_after = split_object(params, original)
        _ensure(plan, observed.split, plan.split_after, "the rule's weighted backendRefs")
        main: dict[str, Any] = {"name": params.split_name, "kind": "TraefikService"}
    else:
        main = {"name": original[0]["name"], "port": original[0]["port"]}
    desired = mirror_object(params, main, _mirror_port(params, observed))
    _ensure_mirror(plan, params, observed.mirror, desired, now)
    plan.resolved = _resolved(params, index, original, observed.mirror, plan.mirror_after)
    after = copy.deepcopy(route)
    if not attached and not params.attach:
        plan.route_after = after
        plan.status = "inactive"
        return plan
    if not attached:
        saved[str(index)] = original
        ops: list[dict[str, Any]] = [_version_test(route)]
        # weight 1 written out: the API server defaults it, and the planned object must be what it stores.
        new_refs = [{"group": params.api_group, "kind": "TraefikService", "name": params.mirror_name, "weight": 1}]
        ops.append({"op": "replace", "path": f"/spec/rules/{index}/backendRefs", "value": new_refs})
        annotations = (route.get("metadata") or {}).get("annotations")
        value = json.dumps(saved, sort_keys=True, separators=(",", ":"))
        if isinstance(annotations, Mapping):
            ops.append({"op": "add", "path": f"/metadata/annotations/{_escape(SAVED_ANNOTATION)}", "value": value})
        else:
            ops.append({"op": "add", "path": "/metadata/annotations", "value": {SAVED_ANNOTATION: value}})
        targets = ", ".join(f"{ref['name']}:{ref['port']}" for ref in original)
        what = (
            f"rule {index} now targets TraefikService {params.mirror_name} (was {targets}); the previous "
            f"backendRefs are saved in annotation {SAVED_ANNOTATION}"
        )
        plan.writes.append(_route_patch(params, route, ops, what))
        after["spec"]["rules"][index]["backendRefs"] = new_refs
        after["metadata"].setdefault("annotations", {})[SAVED_ANNOTATION] = value
    plan.route_after = after
    plan.status = "active"
    return plan


def plan_absent(params: HTTPRouteParams, observed: HTTPRouteObserved) -> HTTPRoutePlan:
    """Teardown: put every saved rule's backendRefs back exactly, then delete the mirror and the split."""
    plan = HTTPRoutePlan()
    route = observed.route
    saved = saved_backend_refs(route) or {}
    rules = _rules(route)
    on_mirror = [
        i for i, rule in enumerate(rules) if any(_is_mirror_ref(r, params) for r in rule.get("backendRefs") or [])
    ]
    missing = [i for i in on_mirror if str(i) not in saved]
    if missing:
        raise DarklaunchError(
            f"HTTPRoute {params.namespace}/{params.route_name} rule(s) {missing} are on {params.mirror_name} but the "
            f"{SAVED_ANNOTATION} annotation does not hold their original backendRefs; restore them by hand.",
            field="route_name",
        )
    if on_mirror and not params.restore:
        raise DarklaunchError(
            f"HTTPRoute {params.namespace}/{params.route_name} rule(s) {on_mirror} still route through "
            f"{params.mirror_name}: deleting it would leave them without a backend. Set restore_ingress_to_wrr=true "
            "to put their original backendRefs back first.",
            field="restore_ingress_to_wrr",
        )
    after = copy.deepcopy(route)
    if on_mirror or SAVED_ANNOTATION in ((route.get("metadata") or {}).get("annotations") or {}):
        ops: list[dict[str, Any]] = [_version_test(route)]
        for index in on_mirror:
            ops.append({"op": "replace", "path": f"/spec/rules/{index}/backendRefs", "value": saved[str(index)]})
            after["spec"]["rules"][index]["backendRefs"] = copy.deepcopy(saved[str(index)])
        annotations = after["metadata"]["annotations"]
        del annotations[SAVED_ANNOTATION]
        if annotations:
            ops.append({"op": "remove", "path": f"/metadata/annotations/{_escape(SAVED_ANNOTATION)}"})
        else:
            # Attach added the whole map: remove it whole, so the restored object is exactly the original.
            ops.append({"op": "remove", "path": "/metadata/annotations"})
            del after["metadata"]["annotations"]
        what = (
            f"rule(s) {', '.join(map(str, on_mirror)) or 'none'} back on their original backendRefs; annotation removed"
        )
        plan.writes.append(_route_patch(params, route, ops, what))
    for obj in (observed.mirror, observed.split):
        if obj is None:
            continue
        if ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
            continue
        name = obj["metadata"]["name"]
        plan.writes.append(Write("delete", "TraefikService", name, None, f"delete TraefikService {name}", _rv(obj)))
    plan.route_after = after
    plan.status = "absent"
    one_rule = on_mirror[0] if len(on_mirror) == 1 else None
    original = saved.get(str(one_rule), []) if one_rule is not None else []
    plan.resolved = _resolved(params, one_rule, original, observed.mirror, None)
    return plan


def _resolved(
    params: HTTPRouteParams,
    rule_index: int | None,
    original: Sequence[Mapping[str, Any]],
    mirror_before: Mapping[str, Any] | None,
    mirror_after: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """traefik_mirror's ``resolved`` for this run's params (see _httproute_launch.resolved_options)."""
    return resolved_options(
        route_name=params.route_name,
        namespace=params.namespace,
        mirror_name=params.mirror_name,
        split_name=params.split_name,
        mirror_service=params.mirror_service,
        rule_index=rule_index,
        original=original,
        mirror_before=mirror_before,
        mirror_after=mirror_after,
    )
