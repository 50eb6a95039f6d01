# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mirror TraefikService of an HTTPRoute rule with its launch record, and what the options resolved to.

Pure, like _httproute_plan. The launch record is the IngressRoute path's (_launch_record): the same
annotations on the mirror, renewed in the same write as a percentage change, so the launch engine, resume,
the watchdog and every reader see an HTTPRoute's launch as they see an IngressRoute's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import percent_value
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import apply_json_patch, version_test
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    LaunchRecord,
    LaunchRequest,
    plan_record,
    read_launch_record,
    record_annotation_ops,
)

KIND_TRAEFIK_SERVICE = "TraefikService"


def _annotations(obj: Mapping[str, Any] | None) -> Any:
    return ((obj or {}).get("metadata") or {}).get("annotations")


def _copied_percent(mirror: Mapping[str, Any] | None, shadow: str) -> int | None:
    """The share ``mirror`` copies to the Service ``shadow`` (None: no mirror, or it copies elsewhere)."""
    for entry in (((mirror or {}).get("spec") or {}).get("mirroring") or {}).get("mirrors") or []:
        if isinstance(entry, Mapping) and entry.get("name") == shadow and entry.get("kind", "Service") == "Service":
            percent = entry.get("percent")
            return int(percent) if isinstance(percent, (int, float)) else None
    return None


def launch_after(
    request: LaunchRequest | None, current: Mapping[str, Any] | None, route: str, now: datetime | None
) -> tuple[LaunchRecord | None, str | None, tuple[str, ...]]:
    """The record the mirror carries after this call, the change in words (None: unchanged), warnings."""
    record = read_launch_record(_annotations(current))
    if request is None:
        return record, None, ()
    if now is None:
        raise DarklaunchError("Internal error: an HTTPRoute launch record needs the current time (now).")
    change = plan_record(request, record, route, now)
    return change.record, change.summary, change.warnings


def mirror_write(
    current: Mapping[str, Any] | None,
    desired: dict[str, Any],
    record: LaunchRecord | None,
    record_change: str | None,
    shadow: str,
) -> tuple[str | None, Any, str, bool, dict[str, Any]]:
    """(verb or None, body, summary, record_only, mirror after) of the one write that makes the mirror
    ``desired`` with the launch ``record``; verb None: already so."""
    name = desired["metadata"]["name"]
    percent = desired["spec"]["mirroring"]["mirrors"][0]["percent"]
    if current is None:
        body = copy.deepcopy(desired)
        if record is not None:
            body["metadata"]["annotations"] = record.annotations()
        summary = f"create TraefikService {name} copying {percent}% of requests to {shadow}"
        summary += f"; {record_change}" if record_change else ""
        return "create", body, summary, False, copy.deepcopy(body)
    ops: list[dict[str, Any]] = []
    changes: list[str] = []
    if current.get("spec") != desired["spec"]:
        ops.append({"op": "replace", "path": "/spec", "value": desired["spec"]})
        before = _copied_percent(current, shadow)
        changes.append(
            f"mirror percent {before} -> {percent}" if before not in (None, percent) else "mirror spec updated"
        )
    record_ops = record_annotation_ops(_annotations(current), record) if record_change else []
    if record_ops:
        changes.append(str(record_change))
    if not ops and not record_ops:
        return None, None, "", False, copy.deepcopy(dict(current))
    patch = [version_test(current, KIND_TRAEFIK_SERVICE), *ops, *record_ops]
    summary = f"patch TraefikService {name}: {'; '.join(changes)}"
    return "patch", patch, summary, not ops, apply_json_patch(current, patch)


def _split_words(refs: Sequence[Mapping[str, Any]]) -> str:
    total = sum(int(ref.get("weight", 1)) for ref in refs)
    return ", ".join(
        f"{percent_value(Fraction(int(ref.get('weight', 1)), total) if total else Fraction(0))}% {ref['name']}"
        for ref in refs
    )


def resolved_options(
    *,
    route_name: str,
    namespace: str,
    mirror_name: str,
    split_name: str,
    mirror_service: str,
    rule_index: int | None,
    original: Sequence[Mapping[str, Any]],
    mirror_before: Mapping[str, Any] | None,
    mirror_after: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """traefik_mirror's ``resolved`` on an HTTPRoute, in the IngressRoute path's shape. ``wrr_name`` is the
    ``{route}-split`` TraefikService and ``weighted_split`` the rule's backendRefs: the split stays behind the
    mirror, so an attach never ends it (``ended`` is always false; no sign-off is needed)."""
    mirroring = ((mirror_after or {}).get("spec") or {}).get("mirroring") or {}
    mirrors = mirroring.get("mirrors") or [{}]
    live = [ref for ref in original if int(ref.get("weight", 1)) > 0]
    split = len(original) > 1
    return {
        "route_kind": "HTTPRoute",
        "route_name": route_name,
        "namespace": namespace,
        "rule_index": rule_index,
        "mirror_name": mirror_name,
        "wrr_name": split_name,
        "main_service": split_name if split else (original[0]["name"] if original else None),
        "main_kind": KIND_TRAEFIK_SERVICE if split else "Service",
        "main_port": None if split or not original else original[0].get("port"),
        "mirror_service": mirror_service,
        "mirror_port": mirrors[0].get("port") if mirror_after else None,
        "mirror_percent": mirrors[0].get("percent") if mirror_after else None,
        "previous_percent": _copied_percent(mirror_before, mirror_service),
        "weighted_split": {
            "live": len(live) > 1,
            "split": _split_words(original) if split else None,
            "ended": False,
        },
    }
