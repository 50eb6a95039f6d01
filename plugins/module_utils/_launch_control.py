# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An operator's command to a running launch, kept as annotations on the mirror TraefikService.

``playbooks/shadow_pause.yml``, ``shadow_resume.yml`` and ``shadow_abort.yml`` write it (module
``launch_control``); the launch engine reads it at every check. It lives beside the launch record but
outside its ``launch-`` prefix, because every renewal of the record rewrites that prefix: a renewal must
never erase an operator's pause.

Pure: no I/O and no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import escape_pointer
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    NO_CONNECTION,
    LaunchRecord,
    format_time,
    parse_time,
    read_launch_record,
    rollback_command,
)

CONTROL_ANNOTATION = "darklaunch.traefik/control"
CONTROL_BY_ANNOTATION = "darklaunch.traefik/control-by"
CONTROL_AT_ANNOTATION = "darklaunch.traefik/control-at"
CONTROL_ANNOTATIONS = (CONTROL_ANNOTATION, CONTROL_BY_ANNOTATION, CONTROL_AT_ANNOTATION)

PAUSED = "paused"
ABORTED = "aborted"
COMMANDS = {"pause": PAUSED, "abort": ABORTED, "resume": None}


@dataclass(frozen=True)
class Control:
    """The operator's standing command: ``paused`` or ``aborted``, who gave it and when."""

    state: str
    by: str | None
    at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "by": self.by, "at": format_time(self.at) if self.at else None}

    def describe(self) -> str:
        who = f" by {self.by}" if self.by else ""
        when = f" at {format_time(self.at)}" if self.at else ""
        return f"{self.state}{who}{when}"


def read_control(annotations: Mapping[str, Any] | None) -> Control | None:
    """The command on an object, or None (the launch runs on). An unknown value reads as None."""
    if not isinstance(annotations, Mapping):
        return None
    state = annotations.get(CONTROL_ANNOTATION)
    if state not in (PAUSED, ABORTED):
        return None
    by = annotations.get(CONTROL_BY_ANNOTATION)
    return Control(
        state=str(state),
        by=by if isinstance(by, str) and by else None,
        at=parse_time(annotations.get(CONTROL_AT_ANNOTATION)),
    )


def control_annotations(state: str | None, by: str | None, at: datetime) -> dict[str, str | None]:
    """The annotation values that set ``state`` (None clears the command: the launch runs on).

    A None value deletes the annotation (JSON merge-patch semantics, and the planner's ops below).
    """
    if state is None:
        return {key: None for key in CONTROL_ANNOTATIONS}
    return {CONTROL_ANNOTATION: state, CONTROL_BY_ANNOTATION: by or None, CONTROL_AT_ANNOTATION: format_time(at)}


# --- planning a command (module launch_control) --------------------------------------------------------

# What each command is called in messages: "cannot be paused", "would be aborted".
_DONE = {"pause": "paused", "resume": "resumed", "abort": "aborted"}
_MAX_BY = 256


@dataclass(frozen=True)
class ControlPlan:
    """What one command does to the mirror: the JSON Patch to send (empty: nothing to write), the command in
    force before and after, and one sentence for the operator."""

    record: LaunchRecord
    previous: Control | None
    control: Control | None
    ops: list[dict[str, Any]]
    annotations_before: dict[str, Any]
    annotations_after: dict[str, Any]
    msg: str

    @property
    def changed(self) -> bool:
        return bool(self.ops)


def check_command(command: object) -> str:
    """``command`` if it is pause, resume or abort."""
    if command not in COMMANDS:
        raise DarklaunchError(f"command must be pause, resume or abort; got {command!r}.", field="command")
    return str(command)


def check_by(by: object) -> str | None:
    """``by`` as stored: one line of text of at most 256 characters, or None when empty."""
    if by is None:
        return None
    if not isinstance(by, str) or len(by) > _MAX_BY or any(ord(char) < 32 for char in by):
        raise DarklaunchError(
            f"by must be one line of text of at most {_MAX_BY} characters (who gives the command, for example "
            f'"alice@laptop via ansible-playbook" or "AWX job 42"); got {by!r}.',
            field="by",
        )
    return by.strip() or None


def plan_control(
    mirror: Mapping[str, Any] | None,
    command: str,
    by: str | None,
    now: datetime,
    *,
    route_name: str,
    namespace: str,
    mirror_name: str,
    check_mode: bool = False,
    connection: CommandConnection = NO_CONNECTION,
) -> ControlPlan:
    """The patch that gives ``command`` (pause | resume | abort) to the launch recorded on ``mirror`` (the
    mirror TraefikService as read, or None). Raises DarklaunchError, with nothing to write, when no launch
    is running there, when the launch is abandoned (nothing would act on the command) or when a pause or
    resume meets an abort in progress. Repeating a command is no change."""
    command = check_command(command)
    by = check_by(by)
    where = f"route {route_name} in namespace {namespace}"
    if mirror is None:
        raise DarklaunchError(
            f"No launch is running on {where}: there is no mirror TraefikService {mirror_name}, so there is "
            f"nothing to {command}. Check route_name, namespace and mirror_name.",
            field="route_name",
        )
    metadata = mirror.get("metadata") or {}
    annotations = metadata.get("annotations")
    record = read_launch_record(annotations)
    if record is None:
        raise DarklaunchError(
            f"No launch is running on {where}: the mirror TraefikService {mirror_name} has no launch record "
            f"(darklaunch.traefik/launch-* annotations), so there is nothing to {command}. Only a launch started "
            "by the shadow_launch role or playbook can be paused, resumed or aborted.",
            field="route_name",
        )
    who = f"Launch {record.id} (owner {record.owner or 'unknown'}) on {namespace}/{route_name}"
    if record.deadline is None or record.deadline < now:
        # Nothing renews the record, so nothing would read the command: say how to end the launch instead.
        if record.deadline is None:
            stopped = "its record has no readable deadline"
        else:
            past = int((now - record.deadline).total_seconds())
            stopped = f"its deadline {format_time(record.deadline)} passed {past} s ago"
        command_line = rollback_command(record.route or route_name, namespace, mirror_name, connection)
        raise DarklaunchError(
            f"{who} cannot be {_DONE[command]}: the launch is abandoned ({stopped}; the process that ran it was "
            f"interrupted or killed), so nothing would act on the command. Roll it back with: {command_line}",
            field="route_name",
            details={"rollback_command": command_line},
        )
    previous = read_control(annotations)
    given = _given(previous)
    step = f"step {record.step}%" if record.step is not None else "its current step"
    if previous is not None and previous.state == ABORTED and command != "abort":
        raise DarklaunchError(
            f"{who} cannot be {_DONE[command]}: the launch is already being aborted{given}; at its next check it "
            "rolls the route back and ends.",
            field="command",
        )
    wanted_state = COMMANDS[command]
    present = isinstance(annotations, Mapping) and any(key in annotations for key in CONTROL_ANNOTATIONS)
    if command == "resume":
        # Resume clears whatever control annotations there are (a stray one included); none is no change.
        write = present
        control = None
    else:
        write = previous is None or previous.state != wanted_state
        control = Control(state=str(wanted_state), by=by, at=now) if write else previous
    ops: list[dict[str, Any]] = []
    if write:
        values = control_annotations(wanted_state, by, now)
        ops = [_resource_version_test(mirror, mirror_name), *_annotation_ops(annotations, values)]
    after = _annotations_after(annotations, control_annotations(wanted_state, by, now) if write else {})
    msg = _message(who, command, write, check_mode, step, given)
    return ControlPlan(
        record=record,
        previous=previous,
        control=control,
        ops=ops,
        annotations_before=dict(annotations) if isinstance(annotations, Mapping) else {},
        annotations_after=after,
        msg=msg,
    )


def _given(control: Control | None) -> str:
    if control is None:
        return ""
    who = f" by {control.by}" if control.by else ""
    when = f" at {format_time(control.at)}" if control.at else ""
    return who + when


def _message(who: str, command: str, write: bool, check_mode: bool, step: str, given: str) -> str:
    if write and check_mode:
        return f"{who} would be {_DONE[command]} (check mode: nothing was written)."
    if command == "pause":
        effect = f"it holds {step} and keeps judging until resumed"
        if write:
            return f"{who} is paused: from its next check {effect}."
        return f"{who} was already paused{given}: {effect}."
    if command == "resume":
        if write:
            return f"{who} is resumed: from its next check it carries on from {step}."
        return f"{who} is running and not paused: there was nothing to resume."
    effect = "at its next check it rolls the route back and ends"
    if write:
        return f"{who} is being aborted: {effect}."
    return f"{who} was already being aborted{given}: {effect}."


def _resource_version_test(mirror: Mapping[str, Any], mirror_name: str) -> dict[str, Any]:
    version = (mirror.get("metadata") or {}).get("resourceVersion")
    if not version:
        raise DarklaunchError(
            f"TraefikService {mirror_name} was read without metadata.resourceVersion; read it from the API first."
        )
    return {"op": "test", "path": "/metadata/resourceVersion", "value": version}


def _annotation_ops(annotations: object, values: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """JSON Patch ops that set the non-None ``values`` and remove the None ones, keeping every other annotation."""
    if not isinstance(annotations, Mapping):
        wanted = {key: value for key, value in values.items() if value is not None}
        return [{"op": "add", "path": "/metadata/annotations", "value": wanted}] if wanted else []
    ops: list[dict[str, Any]] = []
    for key, value in values.items():
        path = f"/metadata/annotations/{escape_pointer(key)}"
        if value is None:
            if key in annotations:
                ops.append({"op": "remove", "path": path})
        elif annotations.get(key) != value:
            ops.append({"op": "add", "path": path, "value": value})
    return ops


def _annotations_after(annotations: object, values: Mapping[str, str | None]) -> dict[str, Any]:
    after = dict(annotations) if isinstance(annotations, Mapping) else {}
    for key, value in values.items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    return after
