# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirroring TraefikService: created, updated or refused (someone else's, ambiguous), with its launch record."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_wording import join_words
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import (
    JsonPatch,
    apply_json_patch,
    escape_pointer,
    set_op,
    version_test,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    LaunchRecord,
    LaunchRequest,
    plan_record,
    read_launch_record,
    record_annotation_ops,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_context import (
    PlanContext,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    Action,
    MirrorParams,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import (
    CRD_VERSION,
    KIND_SERVICE,
    KIND_TRAEFIK_SERVICE,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SPEC_MIRRORING,
    PortValue,
    TraefikServiceObj,
    parse_service_ref,
)


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


def refuse_foreign_mirror(ctx: PlanContext) -> None:
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


def refuse_ambiguous_services(ctx: PlanContext, *, uses_wrr: bool) -> None:
    _refuse_ambiguous(ctx.mirror, "mirror_name")
    _refuse_ambiguous(ctx.main_traefik_service, "main_service")
    if uses_wrr:
        _refuse_ambiguous(ctx.wrr, "wrr_name")


def _hand_over_hint(ctx: PlanContext) -> str:
    return (
        f"Set mirror_name to another name, or, if it is yours to replace, label it "
        f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE} (kubectl -n {ctx.params.namespace} label traefikservice "
        f"{ctx.params.mirror_name} {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}) and run again."
    )


def refuse_someone_elses_mirror(ctx: PlanContext) -> None:
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


def refuse_deleting_someone_elses_mirror(ctx: PlanContext, routes_on_mirror: Sequence[int]) -> None:
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
    ctx: PlanContext, current: Mapping[str, Any], desired: Mapping[str, Any], ops: JsonPatch, changes: list[str]
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
    if set_op(ops, entry, f"{base}/{index}", "port", wanted["port"]):
        changes.append(f"shadow port {entry.get('port')} -> {wanted['port']}")
    if set_op(ops, entry, f"{base}/{index}", "percent", wanted["percent"]):
        changes.append(f"mirror percent {old_percent} -> {wanted['percent']}")
    others = [_endpoint(e.get("name"), e.get("port")) for i, e in enumerate(entries) if i != index]
    if others:
        ctx.warnings.append(
            f"The mirror also copies requests to {', '.join(others)}; those entries were left as they are."
        )


def _main_ref_ops(
    ctx: PlanContext, current: Mapping[str, Any], desired: Mapping[str, Any], ops: JsonPatch, changes: list[str]
) -> None:
    base = "/spec/mirroring"
    old = _endpoint(current.get("name"), current.get("port"))
    touched = set_op(ops, current, base, "name", desired["name"])
    current_kind = current.get("kind") or KIND_SERVICE
    if current_kind != desired["kind"]:
        set_op(ops, current, base, "kind", desired["kind"])
        touched = True
    if "port" in desired:
        touched = set_op(ops, current, base, "port", desired["port"]) or touched
    elif "port" in current:
        ops.append({"op": "remove", "path": f"{base}/port"})
        touched = True
    if current.get("namespace") not in (None, "", ctx.params.namespace):
        ops.append({"op": "remove", "path": f"{base}/namespace"})
        touched = True
    if touched:
        changes.append(f"main service {old} -> {_endpoint(desired['name'], desired.get('port'))}")
    for key in ("mirrorBody", "maxBodySize"):
        if key in desired and set_op(ops, current, base, key, desired[key]):
            changes.append(f"{key} {current.get(key)} -> {desired[key]}")


def _label_ops(ctx: PlanContext, current: Mapping[str, Any], ops: JsonPatch, changes: list[str]) -> None:
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


def _launch_after(ctx: PlanContext) -> tuple[LaunchRecord | None, str | None]:
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
    return record_annotation_ops(current_raw.get("metadata", {}).get("annotations"), record)


def plan_mirror_object(
    ctx: PlanContext, main_port: PortValue | None, mirror_port: PortValue, actions: list[Action]
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
    patch = [version_test(current_raw, KIND_TRAEFIK_SERVICE), *ops]
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
