"""The launch record: how it is read back and reported, and that check mode plans it without writing."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    LaunchRecord,
    describe_launch,
    format_time,
    parse_launch_request,
    parse_time,
    plan_record,
    read_launch_record,
    rollback_command,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import run_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import read_traffic

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
PREFIX = "darklaunch.traefik/launch-"
DEADLINE = datetime(2025, 11, 27, 10, 5, tzinfo=timezone.utc)


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OBJECTS / f"{name}.yaml").read_text())
    return loaded


def stored_record() -> LaunchRecord:
    record = read_launch_record(load("ts-mirror-20-launch")["metadata"]["annotations"])
    assert record is not None
    return record


# --- timestamps and the stored record -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-27T10:05:00Z", DEADLINE),
        ("2025-11-27T10:05:00.000Z", DEADLINE),
        ("2025-11-27T11:05:00+01:00", DEADLINE),
        ("2025-11-27T10:05:00.5Z", DEADLINE + timedelta(milliseconds=500)),
        ("2025-11-27T10:05:00.123456789Z", DEADLINE + timedelta(microseconds=123456)),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_time_reads_rfc3339(text: Any, expected: datetime | None) -> None:
    assert parse_time(text) == expected


def test_format_time_is_rfc3339_utc_with_milliseconds() -> None:
    moment = datetime(2025, 11, 27, 11, 5, 0, 250999, tzinfo=timezone(timedelta(hours=1)))
    assert format_time(moment) == "2025-11-27T10:05:00.250Z"
    assert parse_time(format_time(moment)) == DEADLINE + timedelta(milliseconds=250)


def test_the_stored_record_is_read_back() -> None:
    assert stored_record().to_dict() == {
        "id": "run-a1",
        "owner": "alice@laptop pid 4242 via ansible-playbook",
        "route": "api-service-route",
        "started": "2025-11-27T10:00:00.000Z",
        "step": 20,
        "deadline": "2025-11-27T10:05:00.000Z",
        "renewed": "2025-11-27T10:04:00.000Z",
        "progress": None,
        "comparator": None,
    }


def test_no_launch_id_means_no_record() -> None:
    assert read_launch_record({"darklaunch.traefik/launch-step": "20"}) is None
    assert read_launch_record(None) is None


def test_strings_from_surveys_are_accepted_for_numbers() -> None:
    request = parse_launch_request({"id": "r1", "lease_seconds": "30", "step": "50", "owner": "  "})
    assert request is not None
    assert (request.lease_seconds, request.step, request.owner) == (30, 50, None)


@pytest.mark.parametrize(
    ("launch", "fragment"),
    [
        ("run-a1", "launch must be a dict"),
        ({"id": "has space", "lease_seconds": 30}, "launch.id is required"),
        ({"id": "r1", "lease_seconds": True}, "launch.lease_seconds must be a whole number"),
        ({"id": "r1", "lease_seconds": 30, "owner": "two\nlines"}, "launch.owner must be one line"),
        ({"id": "r1", "lease_seconds": 30, "progress": "two\nlines"}, "launch.progress must be one line"),
        ({"id": "r1", "lease_seconds": 30, "progress": "x" * 513}, "launch.progress must be one line"),
        ({"id": "r1", "lease_seconds": 30, "checks": 3}, "launch has unknown key checks"),
        ({"id": "r1", "lease_seconds": 30, "comparator": "Shop_Compare"}, "launch.comparator must be the name"),
    ],
)
def test_bad_launch_options_name_the_key(launch: Any, fragment: str) -> None:
    with pytest.raises(DarklaunchError) as caught:
        parse_launch_request(launch)
    assert caught.value.field == "launch"
    assert fragment in caught.value.msg


# --- reporting ------------------------------------------------------------------------------------------


ROLLBACK = (
    "ansible-playbook darklaunch.traefik.mirror_disable -e route_name=api-service-route -e route_namespace=production "
    "-e restore_ingress_to_wrr=true"
)
ROUTED = [{"ingress_route": "api-service-route", "namespace": "production", "route_index": 0}]


def test_a_record_past_its_deadline_is_abandoned_with_the_rollback_command() -> None:
    described = describe_launch(
        stored_record(),
        DEADLINE + timedelta(seconds=95, milliseconds=400),
        mirror_name="api-service-route-mirror",
        namespace="production",
        referenced_by=ROUTED,
    )
    assert described["abandoned"] is True
    assert described["seconds_past_deadline"] == 95
    assert described["rollback_command"] == ROLLBACK
    assert described["message"] == (
        "Launch run-a1 started by alice@laptop pid 4242 via ansible-playbook at 2025-11-27T10:00:00.000Z stopped "
        "renewing its deadline 95 s ago at step 20%: it was abandoned (interrupted or killed). The route still "
        f"sends copies to the shadow. Roll it back with: {ROLLBACK}"
    )


def test_a_record_before_its_deadline_is_running() -> None:
    described = describe_launch(
        stored_record(),
        DEADLINE - timedelta(seconds=30),
        mirror_name="api-service-route-mirror",
        namespace="production",
        referenced_by=ROUTED,
    )
    assert (described["abandoned"], described["seconds_past_deadline"]) == (False, 0)
    assert "is running at step 20%" in described["message"]
    assert "(in 30 s)" in described["message"]


def test_progress_is_stored_kept_across_renewals_of_the_same_launch_and_dropped_for_a_new_one() -> None:
    first = parse_launch_request({"id": "run-a1", "lease_seconds": 60, "progress": "check 1 of the 20% step"})
    assert first is not None
    written = plan_record(first, None, "api-service-route", DEADLINE).record
    assert written is not None and written.progress == "check 1 of the 20% step"
    assert read_launch_record(written.annotations()) == written
    renewal = parse_launch_request({"id": "run-a1", "lease_seconds": 60})
    assert renewal is not None
    kept = plan_record(renewal, written, "api-service-route", DEADLINE + timedelta(seconds=5)).record
    assert kept is not None and kept.progress == "check 1 of the 20% step"
    other = parse_launch_request({"id": "run-b2", "lease_seconds": 60})
    assert other is not None
    replaced = plan_record(other, written, "api-service-route", DEADLINE + timedelta(seconds=5)).record
    assert replaced is not None and replaced.progress is None


def test_a_running_launch_says_its_progress() -> None:
    record = dataclasses.replace(stored_record(), progress="check 3 of the 20% step (3 ok)")
    described = describe_launch(
        record, DEADLINE - timedelta(seconds=30), mirror_name="api-service-route-mirror", namespace="production"
    )
    assert "is running at step 20% (check 3 of the 20% step (3 ok)); it renews" in described["message"]
    assert described["progress"] == "check 3 of the 20% step (3 ok)"


def test_an_unreadable_deadline_is_reported_as_abandoned() -> None:
    annotations = dict(load("ts-mirror-20-launch")["metadata"]["annotations"])
    annotations[PREFIX + "deadline"] = "tomorrow"
    record = read_launch_record(annotations)
    assert record is not None
    described = describe_launch(record, DEADLINE, mirror_name="api-service-route-mirror", namespace="production")
    assert described["abandoned"] is True
    assert "has no readable deadline" in described["message"]
    assert "No route sends copies through the mirror now" in described["message"]


def test_the_rollback_command_names_a_mirror_that_is_not_the_default() -> None:
    assert rollback_command("shop", "prod", "shop-shadow") == (
        "ansible-playbook darklaunch.traefik.mirror_disable -e route_name=shop -e route_namespace=prod "
        "-e mirror_name=shop-shadow -e restore_ingress_to_wrr=true"
    )


def test_the_rollback_command_names_the_cluster_the_reader_used() -> None:
    connection = CommandConnection(kubeconfig="/home/ops/kube config", context="prod")
    assert rollback_command("shop", "prod", "shop-mirror", connection) == (
        "ansible-playbook darklaunch.traefik.mirror_disable -e route_name=shop -e route_namespace=prod "
        "-e 'kubeconfig=/home/ops/kube config' -e context=prod -e restore_ingress_to_wrr=true"
    )
    record = read_launch_record(load("ts-mirror-20-launch")["metadata"]["annotations"])
    assert record is not None
    described = describe_launch(
        record, DEADLINE + timedelta(seconds=10), mirror_name="x-mirror", namespace="prod", connection=connection
    )
    assert " -e context=prod " in described["rollback_command"]
    assert described["message"].endswith("Roll it back with: " + described["rollback_command"])


def test_without_a_recorded_route_the_routing_ingress_route_is_named() -> None:
    annotations = dict(load("ts-mirror-20-launch")["metadata"]["annotations"])
    del annotations[PREFIX + "route"]
    record = read_launch_record(annotations)
    assert record is not None
    referenced = [{"ingress_route": "shop", "namespace": "prod", "route_index": 0}]
    described = describe_launch(record, DEADLINE, mirror_name="x-mirror", namespace="prod", referenced_by=referenced)
    assert described["route"] == "shop"
    assert "-e route_name=shop " in described["rollback_command"]


# --- read_traffic and the runner, with an in-memory client ---------------------------------------------


class MemoryKube:
    """Enough of KubeClient for read_traffic and run_mirror; counts writes."""

    connection = CommandConnection()  # the rollback command names no cluster

    def __init__(self, *names: str) -> None:
        self.objects = {(obj["kind"], obj["metadata"]["name"]): obj for obj in map(load, names)}
        self.writes: list[str] = []

    def traefik_group(self, requested: str | None = None) -> str:
        return requested or "traefik.io"

    def namespace_exists(self, name: str) -> bool:
        return name == "production"

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        return [copy.deepcopy(obj) for (k, _name), obj in self.objects.items() if k == kind]

    def create(self, kind: str, namespace: str | None, body: Any) -> dict[str, Any]:
        self.writes.append(f"create {kind}")
        return dict(body)

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]:
        self.writes.append(f"patch {kind}")
        return {}

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None:
        self.writes.append(f"delete {kind}")


def test_traffic_view_lists_the_launch_and_the_abandoned_ones() -> None:
    kube = MemoryKube("ts-mirror-20-launch", "ts-wrr-50-50", "ir-to-mirror")
    live = read_traffic(kube, namespace="production", now=DEADLINE - timedelta(seconds=1))
    assert live["mirrors"][0]["launch"]["abandoned"] is False
    assert live["abandoned_launches"] == []
    late = read_traffic(kube, namespace="production", now=DEADLINE + timedelta(seconds=10))
    launch = late["mirrors"][0]["launch"]
    assert (launch["abandoned"], launch["seconds_past_deadline"], launch["rollback_command"]) == (True, 10, ROLLBACK)
    assert late["abandoned_launches"] == [{"mirror": "api-service-route-mirror", "namespace": "production", **launch}]
    assert "The route still sends copies to the shadow." in launch["message"]


@pytest.mark.parametrize(
    ("state", "words"), [("paused", "It is PAUSED (paused by bob"), ("aborted", "It is being ABORTED")]
)
def test_traffic_view_says_whether_a_running_launch_is_paused_or_aborted(state: str, words: str) -> None:
    kube = MemoryKube("ts-mirror-20-launch", "ts-wrr-50-50", "ir-to-mirror")
    kube.objects[("TraefikService", "api-service-route-mirror")]["metadata"]["annotations"].update(
        {
            "darklaunch.traefik/control": state,
            "darklaunch.traefik/control-by": "bob@host via ansible-playbook",
            "darklaunch.traefik/control-at": "2025-11-27T10:04:30.000Z",
        }
    )
    launch = read_traffic(kube, namespace="production", now=DEADLINE - timedelta(seconds=1))["mirrors"][0]["launch"]
    assert launch["control"] == {
        "state": state,
        "by": "bob@host via ansible-playbook",
        "at": "2025-11-27T10:04:30.000Z",
    }
    assert words in launch["message"]
    untouched = read_traffic(MemoryKube("ts-mirror-20-launch", "ir-to-mirror"), namespace="production")
    assert untouched["mirrors"][0]["launch"]["control"] is None


def test_a_mirror_without_a_record_has_launch_null() -> None:
    view = read_traffic(MemoryKube("ts-mirror-20", "ir-to-mirror"), namespace="production")
    assert view["mirrors"][0]["launch"] is None
    assert view["abandoned_launches"] == []


def test_check_mode_plans_the_record_without_writing() -> None:
    kube = MemoryKube("ts-mirror-20-launch", "svc-api-service-stable", "svc-api-service-canary", "ir-to-mirror")
    options = {
        "route_name": "api-service-route",
        "namespace": "production",
        "main_service": "api-service-stable",
        "mirror_service": "api-service-canary",
        "mirror_percent": 20,
        "launch": {"id": "run-a1", "owner": None, "step": 50, "lease_seconds": 120, "state": "running"},
    }
    before = datetime.now(timezone.utc)
    run = run_mirror(kube, options, check_mode=True)
    assert kube.writes == []
    assert [a.verb for a in run.plan.actions] == ["patch"]
    launch = run.plan.to_dict()["launch"]
    assert (launch["id"], launch["step"], launch["started"]) == ("run-a1", 50, "2025-11-27T10:00:00.000Z")
    assert launch["owner"] == "alice@laptop pid 4242 via ansible-playbook", "kept from the same launch"
    deadline = parse_time(launch["deadline"])
    assert deadline is not None and before + timedelta(seconds=119) <= deadline
    run_mirror(kube, options, check_mode=False)
    assert kube.writes == ["patch TraefikService"]


def test_the_deployed_comparator_is_recorded_and_kept_across_renewals_of_the_same_launch() -> None:
    # The watchdog reads it to remove the comparator the role deployed when it rolls the launch back.
    first = parse_launch_request({"id": "run-a1", "lease_seconds": 60, "comparator": "api-service-route-compare"})
    assert first is not None
    written = plan_record(first, None, "api-service-route", DEADLINE).record
    assert written is not None and written.comparator == "api-service-route-compare"
    assert written.annotations()["darklaunch.traefik/launch-comparator"] == "api-service-route-compare"
    assert read_launch_record(written.annotations()) == written
    renewal = parse_launch_request({"id": "run-a1", "lease_seconds": 60})
    assert renewal is not None
    kept = plan_record(renewal, written, "api-service-route", DEADLINE + timedelta(seconds=5)).record
    assert kept is not None and kept.comparator == "api-service-route-compare"
    other = parse_launch_request({"id": "run-b2", "lease_seconds": 60})
    assert other is not None
    replaced = plan_record(other, written, "api-service-route", DEADLINE + timedelta(seconds=5)).record
    assert replaced is not None and replaced.comparator is None
