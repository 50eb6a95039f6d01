# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the launch engine sees of its route between two writes, and whether somebody else changed it.

A running launch owns its route, but the operator is in charge: the engine compares what it left (the
step's percentage, the attach, its launch record) with what the cluster holds before every write, and
stops instead of writing over a change it did not make. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control import Control, read_control
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    LaunchRecord,
    format_time,
    read_launch_record,
)


@dataclass(frozen=True)
class Expected:
    """What the launch's last write left."""

    percent: int
    attached: bool
    launch_id: str


@dataclass(frozen=True)
class Seen:
    """The mirror and the route as the cluster holds them now."""

    mirror_name: str
    route_name: str
    shadow: str | None
    mirror_exists: bool
    percent: int | None  # what the mirror copies to the shadow; None when it copies elsewhere or is missing
    attached: bool  # some route of the IngressRoute (rule of the HTTPRoute) targets the mirror
    record: LaunchRecord | None
    control: Control | None
    last_writer: str | None  # the newest managedFields entry of either object: "manager (operation) at time"
    route_kind: str = "IngressRoute"

    @classmethod
    def of(cls, mirror: Mapping[str, Any] | None, route: Mapping[str, Any] | None, names: Mapping[str, Any]) -> Seen:
        mirror_name = str(names.get("mirror_name") or "")
        shadow = names.get("mirror_service")
        annotations = (mirror or {}).get("metadata", {}).get("annotations") or {}
        return cls(
            mirror_name=mirror_name,
            route_name=str(names.get("route_name") or ""),
            shadow=str(shadow) if shadow else None,
            mirror_exists=mirror is not None,
            percent=_percent_to(mirror, shadow),
            attached=_targets(route, mirror_name),
            record=read_launch_record(annotations),
            control=read_control(annotations),
            last_writer=_last_writer(mirror, route),
            route_kind=str((route or {}).get("kind") or names.get("route_kind") or "IngressRoute"),
        )


def deviation(seen: Seen, expected: Expected) -> str | None:
    """What changed since the launch's last write, in words, or None when everything is as it left it.

    Only the launch's own part counts: other routes, middlewares, labels and annotations are the operator's
    to edit at any time, and the operator's pause or abort (control annotations) is a command, not a change.
    """
    by = f" (last change by {seen.last_writer})" if seen.last_writer else ""
    if not seen.mirror_exists:
        routed = (
            f" and the {seen.route_kind} no longer routes through it" if expected.attached and not seen.attached else ""
        )
        return f"The mirror {seen.mirror_name} was deleted while the launch ran{routed}{by}"
    if seen.record is None:
        return f"The launch record on the mirror {seen.mirror_name} was removed while the launch ran{by}"
    if seen.record.id != expected.launch_id:
        owner = seen.record.owner or "owner unknown"
        return f"Launch {seen.record.id} ({owner}) took the route over: the mirror records it instead of this launch"
    if seen.percent != expected.percent:
        now = f"{seen.percent}%" if seen.percent is not None else "nothing"
        return (
            f"The mirror {seen.mirror_name} copies {now} to {seen.shadow}, not the {expected.percent}% this launch set"
            f"{by}"
        )
    if expected.attached and not seen.attached:
        return f"{seen.route_kind} {seen.route_name} no longer routes through the mirror {seen.mirror_name}{by}"
    return None


def live_owner(mirror: Mapping[str, Any] | None, launch_id: str, now: float) -> str | None:
    """The other launch whose record on the mirror is still being renewed, in words; None when there is none.

    An abandoned record (deadline passed) is not an owner: a rerun resumes that launch.
    """
    if mirror is None:
        return None
    record = read_launch_record((mirror.get("metadata") or {}).get("annotations"))
    if record is None or record.id == launch_id or record.deadline is None or record.deadline.timestamp() <= now:
        return None
    started = format_time(record.started) if record.started else "an unknown time"
    return (
        f"launch {record.id} run by {record.owner or 'an unknown owner'}, started {started}, deadline "
        f"{format_time(record.deadline)}"
    )


def _percent_to(mirror: Mapping[str, Any] | None, shadow: Any) -> int | None:
    mirrors = ((mirror or {}).get("spec") or {}).get("mirroring", {}).get("mirrors") or []
    for entry in mirrors:
        if isinstance(entry, Mapping) and entry.get("name") == shadow:
            percent = entry.get("percent")
            return int(percent) if isinstance(percent, (int, float)) else None
    return None


def _targets(route: Mapping[str, Any] | None, mirror_name: str) -> bool:
    """Whether a route of the IngressRoute (``spec.routes[].services``), or a rule of the HTTPRoute
    (``spec.rules[].backendRefs``, a TraefikService backendRef), sends requests to the mirror."""
    spec = (route or {}).get("spec") or {}
    for rule in spec.get("routes") or []:
        for service in (rule or {}).get("services") or []:
            if isinstance(service, Mapping) and service.get("name") == mirror_name:
                return True
    for rule in spec.get("rules") or []:
        for ref in (rule or {}).get("backendRefs") or []:
            if isinstance(ref, Mapping) and ref.get("kind") == "TraefikService" and ref.get("name") == mirror_name:
                return True
    return False


def _last_writer(*objects: Mapping[str, Any] | None) -> str | None:
    entries = [
        entry
        for obj in objects
        if obj is not None
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
        if isinstance(entry, Mapping) and entry.get("time")
    ]
    if not entries:
        return None
    newest = max(entries, key=lambda entry: str(entry.get("time")))
    return f"{newest.get('manager', 'unknown')} ({newest.get('operation', 'write')}) at {newest.get('time')}"
