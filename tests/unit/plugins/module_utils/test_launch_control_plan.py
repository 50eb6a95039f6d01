# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""launch_control's decisions and its run against an in-memory API that behaves like the apiserver where it
matters: resourceVersions, JSON Patch ``test`` ops, ``remove`` of a missing key refused, and a concurrent
writer (the launch renewing its record) between read and write. Each test checks the object the fake holds
afterwards and counts the writes, not only what run_control returned.

Every command meets every starting state of the route: no mirror, a mirror without a launch record, an
abandoned launch, a running one, a paused one and one being aborted."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ConflictError, DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control import (
    CONTROL_ANNOTATION,
    CONTROL_ANNOTATIONS,
    CONTROL_AT_ANNOTATION,
    CONTROL_BY_ANNOTATION,
    _annotation_ops,
    plan_control,
    read_control,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control_runner import (
    MAX_ATTEMPTS,
    run_control,
)
from ansible_collections.darklaunch.traefik.tests.unit.plugins.module_utils.seed_objects import (
    MIRROR,
    NS,
    ROUTE,
    load,
)

# The fixture's launch renews a deadline of 10:05:00.
NOW = datetime(2025, 11, 27, 10, 4, 30, 250000, tzinfo=timezone.utc)
AFTER_DEADLINE = datetime(2025, 11, 27, 10, 7, 0, tzinfo=timezone.utc)
NOW_TEXT = "2025-11-27T10:04:30.250Z"
BY = "carol@ops-box via ansible-playbook"
EARLIER_BY = "bob@laptop via ansible-playbook"
EARLIER_AT = "2025-11-27T10:02:00.000Z"
SECRET = "sentinel-secret-token-7f3a"
# What no command may touch: the user's annotation and labels, and the launch record.
KEPT_ANNOTATIONS = {
    "team.example.com/owner": "payments-oncall",
    "darklaunch.traefik/launch-id": "run-a1",
    "darklaunch.traefik/launch-owner": "alice@laptop pid 4242 via ansible-playbook",
    "darklaunch.traefik/launch-route": ROUTE,
    "darklaunch.traefik/launch-started": "2025-11-27T10:00:00.000Z",
    "darklaunch.traefik/launch-step": "20",
    "darklaunch.traefik/launch-deadline": "2025-11-27T10:05:00.000Z",
    "darklaunch.traefik/launch-renewed": "2025-11-27T10:04:00.000Z",
}
KEPT_LABELS = {"app.kubernetes.io/managed-by": "darklaunch.traefik", "team": "payments"}


def mirror_with_launch() -> dict[str, Any]:
    return load("ts-mirror-20-launch")


def with_control(state: str) -> dict[str, Any]:
    mirror = mirror_with_launch()
    mirror["metadata"]["annotations"].update(
        {CONTROL_ANNOTATION: state, CONTROL_BY_ANNOTATION: EARLIER_BY, CONTROL_AT_ANNOTATION: EARLIER_AT}
    )
    return mirror


def without_record() -> dict[str, Any]:
    mirror = mirror_with_launch()
    annotations = mirror["metadata"]["annotations"]
    for key in [key for key in annotations if key.startswith("darklaunch.traefik/launch-")]:
        del annotations[key]
    return mirror


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def apply_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 as the apiserver applies it to maps: a failed ``test`` is a conflict, removing or adding
    under a missing parent is refused."""
    doc = copy.deepcopy(obj)
    for op in ops:
        *parents, last = _pointer(op["path"])
        target: Any = doc
        for part in parents:
            if part not in target:
                raise DarklaunchError(
                    f"JSON Patch {op['op']} {op['path']}: parent is missing", details={"api_status": 422}
                )
            target = target[part]
        if op["op"] == "test":
            if target.get(last) != op["value"]:
                raise ConflictError(f"TraefikService {MIRROR} changed since it was read", details={"api_status": 409})
        elif op["op"] == "remove":
            if last not in target:
                raise DarklaunchError(f"JSON Patch remove {op['path']}: no such key", details={"api_status": 422})
            del target[last]
        elif op["op"] in ("add", "replace"):
            target[last] = copy.deepcopy(op["value"])
        else:  # pragma: no cover - the planner emits no other op
            raise AssertionError(op)
    return doc


class FakeKube:
    """One namespace holding at most the mirror. ``before_patch`` runs before each patch is applied (a
    concurrent writer); ``patches`` records every patch sent."""

    connection = CommandConnection()  # the rollback command names no cluster

    def __init__(
        self,
        mirror: dict[str, Any] | None,
        before_patch: Callable[[FakeKube], None] | None = None,
        name: str = MIRROR,
    ):
        self.name = name
        self.versions = itertools.count(4000)
        self.mirror: dict[str, Any] | None = None
        if mirror is not None:
            self.store(mirror)
        self.before_patch = before_patch
        self.patches: list[list[dict[str, Any]]] = []
        self.reads = 0
        self.group: str | None = None

    def store(self, mirror: dict[str, Any]) -> None:
        self.mirror = copy.deepcopy(mirror)
        self.mirror["metadata"]["resourceVersion"] = str(next(self.versions))

    def traefik_group(self, requested: str | None = None) -> str:
        if requested:
            self.group = requested
        return self.group or "traefik.io"

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert (kind, namespace, name) == ("TraefikService", NS, self.name)
        self.reads += 1
        self.group = self.group or "traefik.io"
        return copy.deepcopy(self.mirror)

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]:
        assert (kind, namespace, name) == ("TraefikService", NS, self.name)
        self.patches.append(copy.deepcopy(list(ops)))
        if self.before_patch is not None:
            self.before_patch(self)
        if self.mirror is None:
            raise DarklaunchError(f"TraefikService {MIRROR} not found", details={"api_status": 404})
        self.store(apply_patch(self.mirror, list(ops)))
        return copy.deepcopy(self.mirror)

    def annotations(self) -> dict[str, str]:
        assert self.mirror is not None
        return dict(self.mirror["metadata"].get("annotations") or {})


def options(command: str, **extra: Any) -> dict[str, Any]:
    return {"route_name": ROUTE, "namespace": NS, "command": command, "by": BY, **extra}


def control_of(kube: FakeKube) -> dict[str, str]:
    return {key: value for key, value in kube.annotations().items() if key in CONTROL_ANNOTATIONS}


# --- every command x every starting state -----------------------------------------------------------------

STATES: dict[str, Callable[[], dict[str, Any] | None]] = {
    "no-mirror": lambda: None,
    "no-record": without_record,
    "abandoned": mirror_with_launch,  # run at AFTER_DEADLINE
    "running": mirror_with_launch,
    "paused": lambda: with_control("paused"),
    "aborted": lambda: with_control("aborted"),
}
WRITTEN = "written"
UNCHANGED = "unchanged"
REFUSED = "refused"
# (state, command) -> outcome, then for a refusal the field and words of the message, for the others the
# control annotation after the run (None: absent).
MATRIX: list[tuple[str, str, str, Any]] = [
    ("no-mirror", "pause", REFUSED, ("route_name", "No launch is running", ROUTE, NS, MIRROR, "no mirror")),
    ("no-mirror", "resume", REFUSED, ("route_name", "No launch is running", ROUTE, NS, MIRROR, "no mirror")),
    ("no-mirror", "abort", REFUSED, ("route_name", "No launch is running", ROUTE, NS, MIRROR, "no mirror")),
    ("no-record", "pause", REFUSED, ("route_name", "No launch is running", ROUTE, NS, MIRROR, "no launch record")),
    ("no-record", "resume", REFUSED, ("route_name", "No launch is running", ROUTE, NS, MIRROR, "no launch record")),
    ("no-record", "abort", REFUSED, ("route_name", "No launch is running", ROUTE, NS, MIRROR, "no launch record")),
    ("abandoned", "pause", REFUSED, ("route_name", "abandoned", "alice@laptop", "10:05:00.000Z", "mirror_disable")),
    ("abandoned", "resume", REFUSED, ("route_name", "abandoned", "alice@laptop", "10:05:00.000Z", "mirror_disable")),
    ("abandoned", "abort", REFUSED, ("route_name", "abandoned", "alice@laptop", "10:05:00.000Z", "mirror_disable")),
    ("running", "pause", WRITTEN, "paused"),
    ("running", "resume", UNCHANGED, None),
    ("running", "abort", WRITTEN, "aborted"),
    ("paused", "pause", UNCHANGED, "paused"),
    ("paused", "resume", WRITTEN, None),
    ("paused", "abort", WRITTEN, "aborted"),
    ("aborted", "pause", REFUSED, ("command", "already being aborted", EARLIER_BY)),
    ("aborted", "resume", REFUSED, ("command", "already being aborted", EARLIER_BY)),
    ("aborted", "abort", UNCHANGED, "aborted"),
]


@pytest.mark.parametrize(
    ("state", "command", "outcome", "expected"), MATRIX, ids=[f"{row[0]}-{row[1]}" for row in MATRIX]
)
def test_every_command_in_every_state(state: str, command: str, outcome: str, expected: Any) -> None:
    kube = FakeKube(STATES[state]())
    before = copy.deepcopy(kube.mirror)
    now = AFTER_DEADLINE if state == "abandoned" else NOW

    if outcome == REFUSED:
        field, *words = expected
        with pytest.raises(DarklaunchError) as caught:
            run_control(kube, options(command), check_mode=False, clock=lambda: now)
        assert caught.value.field == field
        for word in words:
            assert word in caught.value.msg, caught.value.msg
        assert kube.patches == []
        assert kube.mirror == before
        return

    run = run_control(kube, options(command), check_mode=False, clock=lambda: now)

    assert run.plan.changed is (outcome == WRITTEN)
    assert len(kube.patches) == (1 if outcome == WRITTEN else 0)
    annotations = kube.annotations()
    assert annotations.get(CONTROL_ANNOTATION) == expected
    assert run.plan.control is None if expected is None else run.plan.control.state == expected  # type: ignore[union-attr]
    # Only the control annotations may change; the record, the user's annotation, labels and spec stay.
    assert {k: v for k, v in annotations.items() if k not in CONTROL_ANNOTATIONS} == KEPT_ANNOTATIONS
    assert kube.mirror is not None and before is not None
    assert kube.mirror["metadata"]["labels"] == KEPT_LABELS
    assert kube.mirror["spec"] == before["spec"]
    if outcome == WRITTEN and expected is not None:
        assert annotations[CONTROL_BY_ANNOTATION] == BY
        assert annotations[CONTROL_AT_ANNOTATION] == NOW_TEXT
    if outcome == WRITTEN and expected is None:
        assert not set(CONTROL_ANNOTATIONS) & set(annotations)
    if outcome == UNCHANGED:
        assert kube.mirror == before, "no change, no write"


def test_a_repeated_command_is_no_change_and_keeps_who_gave_it_first() -> None:
    kube = FakeKube(mirror_with_launch())
    first = run_control(kube, options("pause"), check_mode=False, clock=lambda: NOW)
    version = kube.mirror["metadata"]["resourceVersion"]  # type: ignore[index]

    second = run_control(kube, options("pause", by="dave@elsewhere"), check_mode=False, clock=lambda: AFTER_NOW)

    assert first.plan.changed and not second.plan.changed
    assert len(kube.patches) == 1
    assert kube.mirror["metadata"]["resourceVersion"] == version  # type: ignore[index]
    assert control_of(kube)[CONTROL_BY_ANNOTATION] == BY
    assert second.plan.previous == second.plan.control and second.plan.control is not None
    assert second.plan.control.by == BY
    assert "was already paused by " + BY in second.plan.msg


AFTER_NOW = datetime(2025, 11, 27, 10, 4, 50, tzinfo=timezone.utc)


def test_pause_resume_pause_abort_sequence_leaves_only_what_the_last_command_says() -> None:
    kube = FakeKube(mirror_with_launch())
    for command, wanted in (("pause", "paused"), ("resume", None), ("pause", "paused"), ("abort", "aborted")):
        run_control(kube, options(command), check_mode=False, clock=lambda: NOW)
        assert read_control(kube.annotations()) == (
            None if wanted is None else read_control({CONTROL_ANNOTATION: wanted, CONTROL_BY_ANNOTATION: BY,
                                                      CONTROL_AT_ANNOTATION: NOW_TEXT})
        )  # fmt: skip
    assert len(kube.patches) == 4


# --- messages -------------------------------------------------------------------------------------------


def test_the_pause_message_names_launch_owner_route_and_step() -> None:
    run = run_control(FakeKube(mirror_with_launch()), options("pause"), check_mode=False, clock=lambda: NOW)
    assert run.plan.msg == (
        "Launch run-a1 (owner alice@laptop pid 4242 via ansible-playbook) on production/api-service-route is "
        "paused: from its next check it holds step 20% and keeps judging until resumed."
    )


def test_the_abort_and_resume_messages_say_what_happens_at_the_next_check() -> None:
    aborted = run_control(FakeKube(mirror_with_launch()), options("abort"), check_mode=False, clock=lambda: NOW)
    resumed = run_control(FakeKube(with_control("paused")), options("resume"), check_mode=False, clock=lambda: NOW)
    assert aborted.plan.msg.endswith("is being aborted: at its next check it rolls the route back and ends.")
    assert resumed.plan.msg.endswith("is resumed: from its next check it carries on from step 20%.")


def test_the_abandoned_refusal_gives_the_exact_rollback_command() -> None:
    with pytest.raises(DarklaunchError) as caught:
        run_control(FakeKube(mirror_with_launch()), options("abort"), check_mode=False, clock=lambda: AFTER_DEADLINE)
    command = (
        "ansible-playbook darklaunch.traefik.mirror_disable -e route_name=api-service-route "
        "-e route_namespace=production -e restore_ingress_to_wrr=true"
    )
    assert caught.value.msg.endswith("Roll it back with: " + command)
    assert "passed 120 s ago" in caught.value.msg
    assert caught.value.details["rollback_command"] == command

    # Read through a given kubeconfig context: the command names it, so it reaches the same cluster.
    kube = FakeKube(mirror_with_launch())
    kube.connection = CommandConnection(context="prod")
    with pytest.raises(DarklaunchError) as caught:
        run_control(kube, options("abort"), check_mode=False, clock=lambda: AFTER_DEADLINE)
    assert caught.value.details["rollback_command"] == command.replace(
        " -e restore_ingress_to_wrr", " -e context=prod -e restore_ingress_to_wrr"
    )


def test_a_record_without_a_readable_deadline_counts_as_abandoned() -> None:
    mirror = mirror_with_launch()
    mirror["metadata"]["annotations"]["darklaunch.traefik/launch-deadline"] = "soon"
    kube = FakeKube(mirror)
    with pytest.raises(DarklaunchError, match="no readable deadline"):
        run_control(kube, options("pause"), check_mode=False, clock=lambda: NOW)
    assert kube.patches == []


def test_secrets_in_other_options_never_reach_a_message() -> None:
    # The runner never quotes connection options; a kubeconfig dict or token given beside the command stays out.
    auth = {"api_key": SECRET, "kubeconfig": {"users": [{"user": {"token": SECRET}}]}, "password": SECRET}
    messages = []
    for state, command, _outcome, _expected in MATRIX:
        kube = FakeKube(STATES[state]())
        clock = (lambda: AFTER_DEADLINE) if state == "abandoned" else (lambda: NOW)
        try:
            messages.append(run_control(kube, options(command, **auth), check_mode=False, clock=clock).plan.msg)
        except DarklaunchError as error:
            messages.append(error.msg + repr(error.details))
    assert len(messages) == len(MATRIX)
    assert not [message for message in messages if SECRET in message]


# --- check mode and diff ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "command"), [("running", "pause"), ("running", "abort"), ("paused", "resume")])
def test_check_mode_plans_the_change_and_writes_nothing(state: str, command: str) -> None:
    kube = FakeKube(STATES[state]())
    before = copy.deepcopy(kube.mirror)

    run = run_control(kube, options(command), check_mode=True, clock=lambda: NOW)

    assert run.plan.changed
    assert kube.patches == [] and kube.mirror == before
    assert "would be" in run.plan.msg and "check mode" in run.plan.msg
    real = run_control(FakeKube(STATES[state]()), options(command), check_mode=False, clock=lambda: NOW)
    assert run.plan.control == real.plan.control
    assert run.plan.annotations_after == real.plan.annotations_after


def test_check_mode_still_refuses() -> None:
    with pytest.raises(DarklaunchError, match="already being aborted"):
        run_control(FakeKube(with_control("aborted")), options("pause"), check_mode=True, clock=lambda: NOW)


def test_the_diff_shows_the_annotations_before_and_after() -> None:
    kube = FakeKube(mirror_with_launch())
    run = run_control(kube, options("pause"), check_mode=False, clock=lambda: NOW)
    assert run.plan.annotations_before == KEPT_ANNOTATIONS
    assert run.plan.annotations_after == kube.annotations()
    assert run.plan.annotations_after[CONTROL_ANNOTATION] == "paused"


# --- the write: resourceVersion test, escaping, concurrent writers --------------------------------------


def test_the_patch_tests_the_resource_version_that_was_read_and_escapes_the_keys() -> None:
    kube = FakeKube(mirror_with_launch())
    read_version = kube.mirror["metadata"]["resourceVersion"]  # type: ignore[index]

    run_control(kube, options("pause"), check_mode=False, clock=lambda: NOW)

    [patch] = kube.patches
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": read_version}
    assert patch[1:] == [
        {"op": "add", "path": "/metadata/annotations/darklaunch.traefik~1control", "value": "paused"},
        {"op": "add", "path": "/metadata/annotations/darklaunch.traefik~1control-by", "value": BY},
        {"op": "add", "path": "/metadata/annotations/darklaunch.traefik~1control-at", "value": NOW_TEXT},
    ]


def test_resume_removes_only_the_control_annotations_that_are_there() -> None:
    mirror = with_control("paused")
    del mirror["metadata"]["annotations"][CONTROL_BY_ANNOTATION]  # paused without a name
    kube = FakeKube(mirror)

    run_control(kube, options("resume"), check_mode=False, clock=lambda: NOW)

    [patch] = kube.patches
    assert [op["op"] for op in patch] == ["test", "remove", "remove"]
    assert {op["path"] for op in patch[1:]} == {
        "/metadata/annotations/darklaunch.traefik~1control",
        "/metadata/annotations/darklaunch.traefik~1control-at",
    }
    assert kube.annotations() == KEPT_ANNOTATIONS


def test_pause_without_by_clears_a_stale_name() -> None:
    mirror = mirror_with_launch()
    mirror["metadata"]["annotations"][CONTROL_BY_ANNOTATION] = EARLIER_BY  # left by hand, no command
    kube = FakeKube(mirror)

    run = run_control(kube, options("pause", by=None), check_mode=False, clock=lambda: NOW)

    assert CONTROL_BY_ANNOTATION not in kube.annotations()
    assert run.plan.control is not None and run.plan.control.by is None


def test_an_object_without_annotations_gets_the_map_added() -> None:
    values = {CONTROL_ANNOTATION: "paused", CONTROL_BY_ANNOTATION: None, CONTROL_AT_ANNOTATION: NOW_TEXT}
    ops = _annotation_ops(None, values)
    expected = {CONTROL_ANNOTATION: "paused", CONTROL_AT_ANNOTATION: NOW_TEXT}
    assert ops == [{"op": "add", "path": "/metadata/annotations", "value": expected}]
    assert apply_patch({"metadata": {"name": MIRROR}}, ops)["metadata"]["annotations"] == ops[0]["value"]
    assert _annotation_ops(None, dict.fromkeys(CONTROL_ANNOTATIONS)) == []


def renew_record(kube: FakeKube) -> None:
    """The launch renews its record between our read and our write (a new resourceVersion)."""
    assert kube.mirror is not None
    renewed = copy.deepcopy(kube.mirror)
    renewed["metadata"]["annotations"]["darklaunch.traefik/launch-renewed"] = "2025-11-27T10:04:30.000Z"
    renewed["metadata"]["annotations"]["darklaunch.traefik/launch-deadline"] = "2025-11-27T10:05:30.000Z"
    kube.store(renewed)


def test_a_concurrent_renewal_is_kept_and_the_command_is_planned_again() -> None:
    calls = itertools.count(1)
    kube = FakeKube(mirror_with_launch(), before_patch=lambda k: renew_record(k) if next(calls) == 1 else None)

    run = run_control(kube, options("pause"), check_mode=False, clock=lambda: NOW)

    assert run.attempts == 2 and kube.reads == 2 and len(kube.patches) == 2
    assert kube.patches[0][0]["value"] != kube.patches[1][0]["value"], "the retry tests the version read again"
    annotations = kube.annotations()
    assert annotations[CONTROL_ANNOTATION] == "paused"
    assert annotations["darklaunch.traefik/launch-renewed"] == "2025-11-27T10:04:30.000Z", "renewal overwritten"
    assert annotations["darklaunch.traefik/launch-deadline"] == "2025-11-27T10:05:30.000Z"


def test_a_concurrent_pause_by_someone_else_makes_the_retry_no_change() -> None:
    def someone_pauses(kube: FakeKube) -> None:
        if len(kube.patches) == 1:
            kube.store(with_control("paused"))

    kube = FakeKube(mirror_with_launch(), before_patch=someone_pauses)

    run = run_control(kube, options("pause"), check_mode=False, clock=lambda: NOW)

    assert not run.plan.changed and run.attempts == 2
    assert control_of(kube)[CONTROL_BY_ANNOTATION] == EARLIER_BY, "the other operator's pause is kept"


def test_a_mirror_that_keeps_changing_fails_after_three_attempts_and_writes_nothing() -> None:
    kube = FakeKube(mirror_with_launch(), before_patch=renew_record)

    with pytest.raises(DarklaunchError) as caught:
        run_control(kube, options("abort"), check_mode=False, clock=lambda: NOW)

    assert len(kube.patches) == MAX_ATTEMPTS == 3
    assert caught.value.field == "mirror_name"
    assert "kept changing during 3 attempts" in caught.value.msg and "abort command was not written" in caught.value.msg
    assert CONTROL_ANNOTATION not in kube.annotations()


def test_a_mirror_deleted_between_read_and_write_is_read_again_and_refused() -> None:
    def rolled_back(kube: FakeKube) -> None:
        kube.mirror = None

    kube = FakeKube(mirror_with_launch(), before_patch=rolled_back)

    with pytest.raises(DarklaunchError, match="No launch is running") as caught:
        run_control(kube, options("abort"), check_mode=False, clock=lambda: NOW)

    assert caught.value.field == "route_name" and kube.reads == 2


# --- options ---------------------------------------------------------------------------------------------


def test_mirror_name_defaults_to_the_route_s_mirror_and_can_be_given() -> None:
    run = run_control(FakeKube(mirror_with_launch()), options("pause"), check_mode=False, clock=lambda: NOW)
    assert run.target.mirror_name == MIRROR
    kube = FakeKube(mirror_with_launch(), name="other-mirror")  # the fake answers for this name only
    other = run_control(kube, options("pause", mirror_name="other-mirror"), check_mode=False, clock=lambda: NOW)
    assert other.target.mirror_name == "other-mirror" and kube.annotations()[CONTROL_ANNOTATION] == "paused"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"route_name": "Bad_Route"}, "route_name"),
        ({"namespace": "no/such"}, "namespace"),
        ({"mirror_name": "UPPER"}, "mirror_name"),
        ({"by": "two\nlines"}, "by"),
        ({"by": "x" * 257}, "by"),
        ({"command": "stop"}, "command"),
    ],
)
def test_bad_options_are_refused_before_any_request(extra: dict[str, Any], field: str) -> None:
    kube = FakeKube(mirror_with_launch())
    with pytest.raises(DarklaunchError) as caught:
        run_control(kube, {**options("pause"), **extra}, check_mode=False, clock=lambda: NOW)
    assert caught.value.field == field
    assert kube.patches == [] and kube.reads == 0


def test_the_plan_refuses_an_unread_object() -> None:
    mirror = mirror_with_launch()
    del mirror["metadata"]["resourceVersion"]
    with pytest.raises(DarklaunchError, match="resourceVersion"):
        plan_control(mirror, "pause", BY, NOW, route_name=ROUTE, namespace=NS, mirror_name=MIRROR)
