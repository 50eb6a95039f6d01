# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the launch engine sees of its route between two writes: somebody else's change, another live launch,
and the operator's pause and abort."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control import (
    ABORTED,
    CONTROL_ANNOTATIONS,
    PAUSED,
    control_annotations,
    read_control,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import LaunchRecord, format_time
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_state import (
    Expected,
    Seen,
    deviation,
    live_owner,
)

NOW = datetime(2025, 6, 2, 9, 30, tzinfo=timezone.utc)
STARTED = NOW - timedelta(minutes=5)
NAMES = {"route_name": "shop", "namespace": "web", "mirror_name": "shop-mirror", "mirror_service": "shop-staging"}
OURS = "launch-ours"
EXPECTED = Expected(percent=20, attached=True, launch_id=OURS)


def record(
    launch_id: str = OURS, *, owner: str | None = "alice@laptop", deadline: datetime | None = None
) -> LaunchRecord:
    return LaunchRecord(
        id=launch_id,
        owner=owner,
        route="shop",
        started=STARTED,
        step=20,
        deadline=deadline if deadline is not None else NOW + timedelta(minutes=3),
        renewed=NOW,
    )


def mirror(
    percent: Any = 20,
    *,
    shadow: str = "shop-staging",
    launch: LaunchRecord | None = None,
    annotations: dict[str, Any] | None = None,
    managed: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    notes: dict[str, Any] = dict((launch or record()).annotations())
    notes.update(annotations or {})
    entry: dict[str, Any] = {"name": shadow, "kind": "Service", "port": 80}
    if percent is not None:
        entry["percent"] = percent
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {
            "name": "shop-mirror",
            "namespace": "web",
            "annotations": {key: value for key, value in notes.items() if value is not None},
            "managedFields": managed or [],
        },
        "spec": {"mirroring": {"name": "shop-stable", "kind": "Service", "port": 80, "mirrors": [entry]}},
    }


def route(*services: str, managed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": "shop", "namespace": "web", "managedFields": managed or []},
        "spec": {
            "routes": [
                {"match": "PathPrefix(`/health`)", "kind": "Rule", "services": [{"name": "shop-health", "port": 80}]},
                {
                    "match": "Host(`shop.example`)",
                    "kind": "Rule",
                    "services": [{"name": name, "port": 80} for name in services],
                },
            ]
        },
    }


ATTACHED = route("shop-mirror")


def seen(mirror_obj: dict[str, Any] | None, route_obj: dict[str, Any] | str | None = "attached") -> Seen:
    """``route_obj`` "attached" (the default) is the IngressRoute routed through the mirror."""
    route = ATTACHED if route_obj == "attached" else route_obj
    assert not isinstance(route, str)
    return Seen.of(mirror_obj, route, NAMES)


def managed_entry(manager: str, time: str, operation: str = "Update") -> dict[str, Any]:
    return {"manager": manager, "operation": operation, "time": time, "fieldsType": "FieldsV1"}


# --- Seen ----------------------------------------------------------------------------------------------


def test_seen_reads_the_mirror_and_the_route() -> None:
    view = seen(mirror(20, annotations=control_annotations(PAUSED, "bob", NOW)))
    assert view.mirror_name == "shop-mirror"
    assert view.route_name == "shop"
    assert view.shadow == "shop-staging"
    assert view.mirror_exists
    assert view.percent == 20
    assert view.attached
    assert view.record is not None
    assert view.record.id == OURS
    assert view.control is not None
    assert view.control.state == PAUSED
    assert view.last_writer is None


def test_seen_of_nothing() -> None:
    view = seen(None, None)
    assert not view.mirror_exists
    assert view.percent is None
    assert not view.attached
    assert view.record is None
    assert view.control is None
    assert view.last_writer is None


def test_seen_reads_the_percent_copied_to_the_shadow_only() -> None:
    assert seen(mirror(35)).percent == 35
    assert seen(mirror(12.0)).percent == 12
    assert seen(mirror(20, shadow="someone-else")).percent is None
    assert seen(mirror(None)).percent is None
    assert seen(mirror("20")).percent is None


def test_seen_attached_when_any_route_targets_the_mirror() -> None:
    assert seen(mirror(), route("shop-stable")).attached is False
    assert seen(mirror(), route("shop-stable", "shop-mirror")).attached is True
    assert seen(mirror(), None).attached is False


def test_seen_reads_the_operators_command() -> None:
    pause = seen(mirror(annotations=control_annotations(PAUSED, "bob", NOW))).control
    assert pause is not None
    assert (pause.state, pause.by, pause.at) == (PAUSED, "bob", NOW)
    abort = seen(mirror(annotations=control_annotations(ABORTED, None, NOW))).control
    assert abort is not None
    assert (abort.state, abort.by) == (ABORTED, None)
    assert seen(mirror(annotations=control_annotations(None, "bob", NOW))).control is None


def test_last_writer_is_the_newest_managed_fields_entry_of_either_object() -> None:
    view = seen(
        mirror(managed=[managed_entry("darklaunch", "2025-06-02T09:29:00Z", "Apply")]),
        route("shop-mirror", managed=[managed_entry("kubectl-edit", "2025-06-02T09:29:30Z")]),
    )
    assert view.last_writer == "kubectl-edit (Update) at 2025-06-02T09:29:30Z"
    older_route = seen(
        mirror(managed=[managed_entry("darklaunch", "2025-06-02T09:29:00Z", "Apply")]),
        route("shop-mirror", managed=[managed_entry("kubectl-edit", "2025-06-02T09:00:00Z")]),
    )
    assert older_route.last_writer == "darklaunch (Apply) at 2025-06-02T09:29:00Z"
    # Entries without a time do not count.
    assert seen(mirror(managed=[{"manager": "x", "operation": "Update"}])).last_writer is None


# --- deviation -----------------------------------------------------------------------------------------


def test_nothing_changed() -> None:
    assert deviation(seen(mirror()), EXPECTED) is None


def test_the_operators_pause_or_abort_is_a_command_not_a_change() -> None:
    for state in (PAUSED, ABORTED):
        assert deviation(seen(mirror(annotations=control_annotations(state, "bob", NOW))), EXPECTED) is None


def test_other_annotations_labels_and_routes_are_the_operators() -> None:
    edited = mirror(annotations={"team": "checkout"})
    edited["metadata"]["labels"] = {"tier": "web"}
    other_routes = route("shop-mirror")
    other_routes["spec"]["routes"][0]["services"] = [{"name": "shop-health-v2", "port": 8080}]
    other_routes["spec"]["routes"][1]["middlewares"] = [{"name": "ratelimit"}]
    assert deviation(seen(edited, other_routes), EXPECTED) is None


def test_a_deleted_mirror_is_a_change() -> None:
    # The route still names the deleted mirror (kubectl delete).
    assert deviation(seen(None, ATTACHED), EXPECTED) == "The mirror shop-mirror was deleted while the launch ran"


def test_a_deleted_and_detached_mirror_says_the_route_no_longer_routes_through_it() -> None:
    changed = deviation(seen(None, route("shop-stable")), EXPECTED)
    assert changed == (
        "The mirror shop-mirror was deleted while the launch ran and the IngressRoute no longer routes through it"
    )
    # A launch that never attached does not expect the route to go through the mirror.
    unattached = Expected(percent=20, attached=False, launch_id=OURS)
    assert deviation(seen(None, route("shop-stable")), unattached) == (
        "The mirror shop-mirror was deleted while the launch ran"
    )


def test_a_removed_launch_record_is_a_change() -> None:
    bare = mirror()
    bare["metadata"]["annotations"] = {}
    assert deviation(seen(bare), EXPECTED) == (
        "The launch record on the mirror shop-mirror was removed while the launch ran"
    )


def test_another_launch_in_the_record_took_the_route_over() -> None:
    changed = deviation(seen(mirror(launch=record("launch-other", owner="bob@ci"))), EXPECTED)
    assert changed == ("Launch launch-other (bob@ci) took the route over: the mirror records it instead of this launch")
    unknown = deviation(seen(mirror(launch=record("launch-other", owner=None))), EXPECTED)
    assert unknown is not None
    assert "(owner unknown)" in unknown


def test_another_percent_is_a_change_naming_both_percentages() -> None:
    assert deviation(seen(mirror(35)), EXPECTED) == (
        "The mirror shop-mirror copies 35% to shop-staging, not the 20% this launch set"
    )
    assert deviation(seen(mirror(20, shadow="other-shadow")), EXPECTED) == (
        "The mirror shop-mirror copies nothing to shop-staging, not the 20% this launch set"
    )


def test_a_detached_route_is_a_change_only_when_the_launch_attached_it() -> None:
    assert deviation(seen(mirror(), route("shop-stable")), EXPECTED) == (
        "IngressRoute shop no longer routes through the mirror shop-mirror"
    )
    assert deviation(seen(mirror(), route("shop-stable")), Expected(20, False, OURS)) is None
    assert deviation(seen(mirror(), None), EXPECTED) is not None


def test_a_change_names_the_last_writer() -> None:
    changed = deviation(
        seen(mirror(50, managed=[managed_entry("kubectl-edit", "2025-06-02T09:29:30Z")])),
        EXPECTED,
    )
    assert changed == (
        "The mirror shop-mirror copies 50% to shop-staging, not the 20% this launch set "
        "(last change by kubectl-edit (Update) at 2025-06-02T09:29:30Z)"
    )
    deleted = deviation(
        seen(None, route("shop-mirror", managed=[managed_entry("argocd", "2025-06-02T09:29:31Z")])), EXPECTED
    )
    assert deleted is not None
    assert deleted.endswith("(last change by argocd (Update) at 2025-06-02T09:29:31Z)")


def test_deviations_are_named_in_order_deleted_record_owner_percent_attach() -> None:
    # Taken over and ramped and detached: the takeover is what the operator needs to hear.
    taken = deviation(seen(mirror(50, launch=record("launch-other")), route("shop-stable")), EXPECTED)
    assert taken is not None
    assert taken.startswith("Launch launch-other")
    ramped = deviation(seen(mirror(50), route("shop-stable")), EXPECTED)
    assert ramped is not None
    assert "copies 50%" in ramped


# --- live_owner ----------------------------------------------------------------------------------------


def test_no_mirror_or_no_record_has_no_owner() -> None:
    stamp = NOW.timestamp()
    assert live_owner(None, OURS, stamp) is None
    bare = mirror()
    bare["metadata"]["annotations"] = {}
    assert live_owner(bare, OURS, stamp) is None
    bare["metadata"] = {}
    assert live_owner(bare, OURS, stamp) is None


def test_our_own_record_is_no_other_owner() -> None:
    assert live_owner(mirror(launch=record(OURS)), OURS, NOW.timestamp()) is None


def test_another_live_launch_owns_the_route_named_with_its_start_and_deadline() -> None:
    deadline = NOW + timedelta(seconds=90)
    owner = live_owner(mirror(launch=record("launch-other", owner="bob@ci", deadline=deadline)), OURS, NOW.timestamp())
    assert owner == (
        f"launch launch-other run by bob@ci, started {format_time(STARTED)}, deadline {format_time(deadline)}"
    )


def test_an_owner_without_owner_or_start_is_still_an_owner() -> None:
    other = LaunchRecord(
        id="launch-other",
        owner=None,
        route=None,
        started=None,
        step=None,
        deadline=NOW + timedelta(seconds=1),
        renewed=None,
    )
    owner = live_owner(mirror(launch=other), OURS, NOW.timestamp())
    assert owner is not None
    assert "run by an unknown owner, started an unknown time" in owner


@pytest.mark.parametrize("past", [timedelta(0), timedelta(seconds=1), timedelta(hours=3)])
def test_an_abandoned_record_is_no_owner(past: timedelta) -> None:
    abandoned = mirror(launch=record("launch-other", deadline=NOW - past))
    assert live_owner(abandoned, OURS, NOW.timestamp()) is None


def test_a_record_without_a_readable_deadline_is_no_owner() -> None:
    unreadable = mirror(launch=record("launch-other"))
    unreadable["metadata"]["annotations"]["darklaunch.traefik/launch-deadline"] = "soon"
    assert live_owner(unreadable, OURS, NOW.timestamp()) is None


# --- the operator's command ----------------------------------------------------------------------------


def test_control_annotations_round_trip() -> None:
    written = control_annotations(PAUSED, "bob", NOW)
    control = read_control(written)
    assert control is not None
    assert control.to_dict() == {"state": PAUSED, "by": "bob", "at": format_time(NOW)}
    assert control.describe() == f"paused by bob at {format_time(NOW)}"


def test_resume_clears_every_control_annotation() -> None:
    assert control_annotations(None, "bob", NOW) == dict.fromkeys(CONTROL_ANNOTATIONS)


def test_unknown_or_missing_control_reads_as_none() -> None:
    assert read_control(None) is None
    assert read_control({}) is None
    assert read_control({"darklaunch.traefik/control": "resumed"}) is None
    bare = read_control({"darklaunch.traefik/control": ABORTED})
    assert bare is not None
    assert bare.describe() == "aborted"


def http_route(*refs: dict[str, Any]) -> dict[str, Any]:
    """An HTTPRoute whose second rule has ``refs`` as its backendRefs."""
    return {
        "kind": "HTTPRoute",
        "metadata": {"name": "shop"},
        "spec": {"rules": [{"backendRefs": [{"name": "shop-static", "port": 80}]}, {"backendRefs": list(refs)}]},
    }


def test_an_httproute_rule_on_the_mirror_is_attached() -> None:
    on_mirror = http_route({"group": "traefik.io", "kind": "TraefikService", "name": "shop-mirror", "weight": 1})
    assert seen(mirror(), on_mirror).attached is True
    # A Service that happens to carry the mirror's name is not the mirror.
    assert seen(mirror(), http_route({"name": "shop-mirror", "port": 80})).attached is False
    restored = http_route({"name": "shop-stable", "port": 80, "weight": 50})
    assert deviation(seen(mirror(), restored), EXPECTED) == (
        "HTTPRoute shop no longer routes through the mirror shop-mirror"
    )
