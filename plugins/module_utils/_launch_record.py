# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch-in-progress record kept as annotations on the mirror TraefikService.

A launch renews a deadline on the mirror at every step and check. If the process that runs it is
interrupted or killed, nobody renews it: once the deadline has passed, every reader (traefik_traffic_info,
the ``traffic`` lookup, shadow_status.yml) reports the launch as abandoned, with who started it and the
command that rolls it back. Keeping it on the mirror means it lives exactly as long as the mirror does:
disabling deletes the mirror and the record with it.

Pure: no I/O and no clock; callers pass ``now`` (an aware UTC datetime).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Union

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import escape_pointer
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection

LAUNCH_ANNOTATION_PREFIX = "darklaunch.traefik/launch-"
LAUNCH_RUNNING = "running"
LAUNCH_FINISHED = "finished"
# Record fields, each stored as annotation LAUNCH_ANNOTATION_PREFIX + field.
RECORD_FIELDS = ("id", "owner", "route", "started", "step", "deadline", "renewed", "progress", "comparator")

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_MAX_OWNER = 256
_PLAYBOOK = "darklaunch.traefik.mirror_disable"
_REQUEST_KEYS = ("id", "owner", "step", "lease_seconds", "state", "progress", "comparator")
# A Service / Deployment / ConfigMap name (RFC 1123 label).
_NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_MAX_PROGRESS = 512
NO_CONNECTION = CommandConnection()  # the command names no cluster: it acts on the current context


def annotation_key(record_field: str) -> str:
    return LAUNCH_ANNOTATION_PREFIX + record_field


# --- timestamps ----------------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, so two renewals within one second still differ (each is a write)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when it is missing or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    value = text.strip()
    if value[-1:] in ("Z", "z"):
        value = value[:-1] + "+00:00"
    # fromisoformat on older Pythons only reads 3 or 6 fraction digits: pad or cut to 6.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?([+-]\d\d:\d\d)$", value)
    if match is None:
        return None
    head, fraction, offset = match.groups()
    fraction = ((fraction or "") + "000000")[:6]
    try:
        parsed = datetime.fromisoformat(f"{head}.{fraction}{offset}")
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc)


# --- the request (traefik_mirror's ``launch`` option) ---------------------------------------------------


@dataclass(frozen=True)
class LaunchRequest:
    """What one traefik_mirror call says about the launch that is running it."""

    id: str
    lease_seconds: int
    owner: str | None = None
    step: int | None = None
    state: str = LAUNCH_RUNNING
    # The checks so far, in words, for shadow_status.yml (for example "3 checks: 2 ok, 1 inconclusive").
    progress: str | None = None
    # The comparator the shadow_launch role deployed for the launch ({route}-compare), so that whoever rolls the
    # launch back (the watchdog) removes it too; None when there is none (or it is the user's own).
    comparator: str | None = None


LaunchOption = Union[LaunchRequest, Mapping[str, Any]]


def _whole_number(value: object, name: str, minimum: int, maximum: int | None, hint: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise DarklaunchError(f"{name} must be a whole number {bound} ({hint}); got {value!r}.", field="launch")
    return value


def _one_line(value: object, name: str, maximum: int, hint: str) -> str | None:
    """An optional one-line text option, stripped (blank is None)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > maximum or any(ord(char) < 32 for char in value):
        raise DarklaunchError(
            f"{name} must be one line of text of at most {maximum} characters ({hint}); got {value!r}.",
            field="launch",
        )
    return value.strip() or None


def parse_launch_request(value: LaunchOption | None) -> LaunchRequest | None:
    """Validate traefik_mirror's ``launch`` option; errors name ``launch.<key>`` and what to set."""
    if value is None or isinstance(value, LaunchRequest):
        return value
    if not isinstance(value, Mapping):
        raise DarklaunchError(
            f"launch must be a dict with id and lease_seconds (and owner, step, state); got {value!r}.",
            field="launch",
        )
    unknown = sorted(str(key) for key in value if key not in _REQUEST_KEYS)
    if unknown:
        raise DarklaunchError(
            f"launch has unknown key {', '.join(unknown)}; it takes id, owner, step, lease_seconds, state, "
            "progress and comparator.",
            field="launch",
        )
    launch_id = value.get("id")
    if not isinstance(launch_id, str) or not _ID_PATTERN.match(launch_id):
        raise DarklaunchError(
            "launch.id is required: one id per launch run, 1 to 128 letters, digits, '.', '_', ':' or '-' "
            f"(for example a random hex string); got {launch_id!r}.",
            field="launch",
        )
    if value.get("lease_seconds") is None:
        raise DarklaunchError(
            "launch.lease_seconds is required: how long the launch may go without renewing its record before "
            "it is reported as abandoned (for example twice the check interval).",
            field="launch",
        )
    lease = _whole_number(value["lease_seconds"], "launch.lease_seconds", 1, None, "seconds until the deadline")
    owner = _one_line(
        value.get("owner"),
        "launch.owner",
        _MAX_OWNER,
        'who or what started the launch, for example "alice@host pid 1234" or "AWX job 42"',
    )
    step = value.get("step")
    if step is not None:
        step = _whole_number(step, "launch.step", 1, 100, "the percent of the current step")
    progress = _one_line(value.get("progress"), "launch.progress", _MAX_PROGRESS, "the checks so far")
    state = value.get("state") or LAUNCH_RUNNING
    if state not in (LAUNCH_RUNNING, LAUNCH_FINISHED):
        raise DarklaunchError(
            f"launch.state must be {LAUNCH_RUNNING} or {LAUNCH_FINISHED}; got {state!r}.", field="launch"
        )
    comparator = _one_line(value.get("comparator"), "launch.comparator", 63, "the comparator's name")
    if comparator is not None and not _NAME_PATTERN.match(comparator):
        raise DarklaunchError(
            f"launch.comparator must be the name of the comparator's Service (lower-case letters, digits and '-', "
            f"for example shop-compare); got {comparator!r}.",
            field="launch",
        )
    return LaunchRequest(
        id=launch_id,
        lease_seconds=lease,
        owner=owner,
        step=step,
        state=state,
        progress=progress,
        comparator=comparator,
    )


# --- the record ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchRecord:
    """The record as stored. Timestamps are None when the annotation is missing or unreadable."""

    id: str
    owner: str | None
    route: str | None
    started: datetime | None
    step: int | None
    deadline: datetime | None
    renewed: datetime | None
    progress: str | None = None
    comparator: str | None = None  # the comparator deployed for the launch (LaunchRequest.comparator)

    def annotations(self) -> dict[str, str]:
        """The annotations that store this record (unset fields are left out)."""
        values: dict[str, str | None] = {
            "id": self.id,
            "owner": self.owner,
            "route": self.route,
            "started": format_time(self.started) if self.started else None,
            "step": str(self.step) if self.step is not None else None,
            "deadline": format_time(self.deadline) if self.deadline else None,
            "renewed": format_time(self.renewed) if self.renewed else None,
            "progress": self.progress,
            "comparator": self.comparator,
        }
        return {annotation_key(name): value for name, value in values.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "route": self.route,
            "started": format_time(self.started) if self.started else None,
            "step": self.step,
            "deadline": format_time(self.deadline) if self.deadline else None,
            "renewed": format_time(self.renewed) if self.renewed else None,
            "progress": self.progress,
            "comparator": self.comparator,
        }


def read_launch_record(annotations: Mapping[str, Any] | None) -> LaunchRecord | None:
    """The record on an object, or None when it has none (no ``launch-id`` annotation)."""
    if not isinstance(annotations, Mapping):
        return None
    launch_id = annotations.get(annotation_key("id"))
    if not isinstance(launch_id, str) or not launch_id:
        return None

    def text(name: str) -> str | None:
        value = annotations.get(annotation_key(name))
        return value if isinstance(value, str) and value else None

    step_text = text("step")
    step = int(step_text) if step_text is not None and step_text.isdigit() else None
    return LaunchRecord(
        id=launch_id,
        owner=text("owner"),
        route=text("route"),
        started=parse_time(text("started")),
        step=step,
        deadline=parse_time(text("deadline")),
        renewed=parse_time(text("renewed")),
        progress=text("progress"),
        comparator=text("comparator"),
    )


def launch_annotation_keys(annotations: Mapping[str, Any] | None) -> list[str]:
    """Every annotation of the launch record on an object (including fields a newer version may add)."""
    if not isinstance(annotations, Mapping):
        return []
    return [key for key in annotations if isinstance(key, str) and key.startswith(LAUNCH_ANNOTATION_PREFIX)]


def record_annotation_ops(annotations: object, record: LaunchRecord | None) -> list[dict[str, Any]]:
    """JSON Patch ops that make an object's launch annotations (``annotations``: its metadata.annotations) equal
    ``record``'s, keeping every other annotation."""
    wanted = record.annotations() if record else {}
    if not isinstance(annotations, Mapping):
        return [{"op": "add", "path": "/metadata/annotations", "value": wanted}] if wanted else []
    stale = [key for key in launch_annotation_keys(annotations) if key not in wanted]
    if stale and not wanted and len(stale) == len(annotations):
        # Only the record was there: drop the map, as the object was before the launch wrote it.
        return [{"op": "remove", "path": "/metadata/annotations"}]
    ops: list[dict[str, Any]] = [
        {"op": "remove", "path": f"/metadata/annotations/{escape_pointer(key)}"} for key in sorted(stale)
    ]
    for key, value in wanted.items():
        if annotations.get(key) != value:
            ops.append({"op": "add", "path": f"/metadata/annotations/{escape_pointer(key)}", "value": value})
    return ops


@dataclass(frozen=True)
class RecordChange:
    """The record after a traefik_mirror call, and what to tell the operator about it."""

    record: LaunchRecord | None
    summary: str | None  # for the action's summary; None when the record is unchanged
    warnings: tuple[str, ...] = ()


def _who(record: LaunchRecord) -> str:
    return f"launch {record.id} ({record.owner or 'owner unknown'})"


def plan_record(request: LaunchRequest, current: LaunchRecord | None, route: str, now: datetime) -> RecordChange:
    """The record a call leaves behind: a running call (re)writes it with a fresh deadline, keeping
    ``started`` while the id stays the same; ``finished`` removes it."""
    if request.state == LAUNCH_FINISHED:
        if current is None:
            return RecordChange(None, None)
        if current.id != request.id:
            # A later launch took the mirror over; its record is not ours to clear.
            return RecordChange(
                current,
                None,
                (
                    f"Launch {request.id} finished, but the mirror records {_who(current)}; that record was left "
                    "as it is.",
                ),
            )
        return RecordChange(None, f"launch {current.id} finished: record removed")
    same_launch = current is not None and current.id == request.id
    warnings: list[str] = []
    if current is not None and not same_launch:
        if current.deadline is not None and current.deadline > now:
            warnings.append(
                f"The mirror recorded {_who(current)} as still running (deadline {format_time(current.deadline)}"
                f"); launch {request.id} replaces that record. Make sure the other launch is really stopped: two "
                "launches on one route undo each other's steps."
            )
        else:
            warnings.append(
                f"The mirror recorded {_who(current)}, which stopped renewing its deadline (abandoned); launch "
                f"{request.id} takes it over. The IngressRoute's targets from before the first attach are kept, "
                "so a rollback still restores them."
            )
    started = current.started if same_launch and current is not None and current.started else now
    owner = request.owner or (current.owner if same_launch and current is not None else None)
    step = request.step if request.step is not None else (current.step if same_launch and current else None)
    progress = request.progress or (current.progress if same_launch and current is not None else None)
    comparator = request.comparator or (current.comparator if same_launch and current is not None else None)
    deadline = now + timedelta(seconds=request.lease_seconds)
    record = LaunchRecord(
        id=request.id,
        owner=owner,
        route=route,
        started=started,
        step=step,
        deadline=deadline,
        renewed=now,
        progress=progress,
        comparator=comparator,
    )
    verb = "renewed" if same_launch else "recorded"
    step_text = f"step {step}%, " if step is not None else ""
    summary = f"launch {request.id} {verb} ({step_text}deadline {format_time(deadline)})"
    return RecordChange(record, summary, tuple(warnings))


# --- reporting -----------------------------------------------------------------------------------------


def rollback_command(
    route: str, namespace: str, mirror_name: str, connection: CommandConnection = NO_CONNECTION
) -> str:
    """The command that ends an abandoned launch: restore the IngressRoute exactly, delete the mirror; on the
    cluster ``connection`` names (the kubeconfig context the reader used), whatever the current context is
    when the command is run."""
    command = f"ansible-playbook {_PLAYBOOK} -e route_name={route} -e route_namespace={namespace}"
    if mirror_name != default_names.mirror_name(route):
        command += f" -e mirror_name={mirror_name}"
    return command + connection.extra_vars() + " -e restore_ingress_to_wrr=true"


def status_command(route: str, namespace: str, connection: CommandConnection = NO_CONNECTION) -> str:
    """The command that shows a route's launch, mirror and users, on the cluster ``connection`` names."""
    return (
        f"ansible-playbook darklaunch.traefik.shadow_status -e route_name={route} -e route_namespace={namespace}"
        + connection.extra_vars()
    )


def _route_of(record: LaunchRecord, mirror_name: str, referenced_by: Sequence[Mapping[str, Any]]) -> str:
    """The route the launch ran on: as recorded, else the IngressRoute that routes through the mirror,
    else the stem of the default mirror name."""
    if record.route:
        return record.route
    for reference in referenced_by:
        name = reference.get("ingress_route")
        if isinstance(name, str) and name:
            return name
    return default_names.route_of_mirror(mirror_name)


def describe_launch(
    record: LaunchRecord,
    now: datetime,
    *,
    mirror_name: str,
    namespace: str,
    referenced_by: Sequence[Mapping[str, Any]] = (),
    connection: CommandConnection = NO_CONNECTION,
) -> dict[str, Any]:
    """The record for listings, with ``abandoned`` (deadline passed, or unreadable), the seconds past the
    deadline, the rollback command (on the cluster ``connection`` names) and a plain-words ``message``."""
    route = _route_of(record, mirror_name, referenced_by)
    command = rollback_command(route, namespace, mirror_name, connection)
    # An unreadable deadline cannot prove the launch alive: report it, rather than stay silent.
    abandoned = record.deadline is None or record.deadline < now
    past = int((now - record.deadline).total_seconds()) if record.deadline is not None and abandoned else 0
    owner = record.owner or "an unknown owner"
    started = format_time(record.started) if record.started else "an unknown time"
    step = f" at step {record.step}%" if record.step is not None else ""
    if abandoned:
        if record.deadline is None:
            stopped = "has no readable deadline"
        else:
            stopped = f"stopped renewing its deadline {past} s ago"
        effect = (
            "The route still sends copies to the shadow."
            if referenced_by
            else "No route sends copies through the mirror now, but the mirror is still there."
        )
        message = (
            f"Launch {record.id} started by {owner} at {started} {stopped}{step}: it was abandoned (interrupted "
            f"or killed). {effect} Roll it back with: {command}"
        )
    else:
        left = int((record.deadline - now).total_seconds()) if record.deadline else 0
        progress = f" ({record.progress})" if record.progress else ""
        message = (
            f"Launch {record.id} started by {owner} at {started} is running{step}{progress}; it renews its deadline "
            f"{format_time(record.deadline) if record.deadline else ''} (in {left} s)."
        )
    described = record.to_dict()
    described.update(
        {
            "route": route,
            "abandoned": abandoned,
            "seconds_past_deadline": past,
            "rollback_command": command,
            "message": message,
        }
    )
    return described
