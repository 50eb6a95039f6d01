# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runner against an in-memory API that behaves like the apiserver where it matters: resourceVersions,
JSON Patch ``test`` ops, delete preconditions, and injected conflicts or refusals on the Nth write. Each test
checks the objects the fake holds afterwards, not only what run_mirror returned, and counts the requests."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ConflictError, DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import Action
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import (
    _revert_write,
    run_mirror,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._propagation import propagation_waits
from ansible_collections.darklaunch.traefik.tests.unit.plugins.module_utils import seed_objects
from ansible_collections.darklaunch.traefik.tests.unit.plugins.module_utils.seed_objects import (
    MIRROR,
    NS,
    ROUTE,
    WORLD,
    load,
)

# With the group named, as the role passes it.
ATTACH = {**seed_objects.ATTACH, "api_group": "traefik.io"}
TEARDOWN = {**seed_objects.TEARDOWN, "api_group": "traefik.io"}


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _apply_patch(obj: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 as the apiserver applies it (test, add, replace, remove); a failed test is a conflict."""
    doc = copy.deepcopy(obj)
    for op in ops:
        *parents, last = _pointer(op["path"])
        target: Any = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
        if op["op"] == "test":
            current = target[int(last)] if isinstance(target, list) else target.get(last)
            if current != op["value"]:
                raise ConflictError(f"the object changed since it was read ({op['path']})")
        elif op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
        elif op["op"] == "add" and isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), copy.deepcopy(op["value"]))
        elif op["op"] in ("add", "replace"):
            target[int(last) if isinstance(target, list) else last] = copy.deepcopy(op["value"])
        else:  # pragma: no cover - the planner emits no other op
            raise AssertionError(op)
    return doc


class FakeKube:
    """An in-memory namespace. ``conflict_at`` / ``refuse_at``: 1-based write numbers that fail with a
    ConflictError (someone else wrote first) or a DarklaunchError (an admission webhook said no)."""

    def __init__(self, names: list[str], *, conflict_at: set[int] = frozenset(), refuse_at: set[int] = frozenset()):
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions = itertools.count(100)
        for obj in map(load, names):
            self._store(obj)
        self.conflict_at = set(conflict_at)
        self.refuse_at = set(refuse_at)
        self.writes: list[str] = []
        self.reads: list[str] = []
        self.group: str | None = None  # settled by the first Traefik read, as KubeClient does

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[(obj["kind"], obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    def snapshot(self) -> dict[tuple[str, str], Any]:
        return {
            key: {k: v for k, v in obj.items() if k != "metadata"} | {"meta": _user_meta(obj)}
            for key, obj in self.objects.items()
        }

    # -- reads
    def traefik_group(self, requested: str | None = None) -> str:
        if requested:
            self.group = requested
        if self.group is None:
            self.reads.append("probe")
            self.group = "traefik.io"
        return self.group

    def _settle(self, kind: str) -> None:
        if kind != "Service" and self.group is None:
            self.group = "traefik.io"

    def namespace_exists(self, name: str) -> bool:
        self.reads.append(f"get Namespace {name}")
        return True

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.reads.append(f"get {kind} {name}")
        self._settle(kind)
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found else None

    def list(self, kind: str, namespace: str | None, page_size: int = 500) -> list[dict[str, Any]]:
        self.reads.append(f"list {kind}")
        self._settle(kind)
        return [copy.deepcopy(obj) for (k, _name), obj in self.objects.items() if k == kind]

    # -- writes
    def _write(self, what: str) -> None:
        self.writes.append(what)
        if len(self.writes) in self.conflict_at:
            raise ConflictError(
                f"{what}: the object has been modified; please apply your changes to the latest version"
            )
        if len(self.writes) in self.refuse_at:
            raise DarklaunchError(f"{what}: admission webhook denied the request")

    def create(self, kind: str, namespace: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
        self._write(f"create {kind} {body['metadata']['name']}")
        if (kind, body["metadata"]["name"]) in self.objects:
            raise ConflictError(f"{kind} {body['metadata']['name']} already exists")
        return self._store(dict(body))

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]:
        self._write(f"patch {kind} {name}")
        return self._store(_apply_patch(self.objects[(kind, name)], ops))

    def delete(self, kind: str, namespace: str | None, name: str, resource_version: str | None = None) -> None:
        self._write(f"delete {kind} {name}")
        current = self.objects[(kind, name)]
        if resource_version is not None and current["metadata"]["resourceVersion"] != resource_version:
            raise ConflictError(f"{kind} {name} changed since it was read")
        del self.objects[(kind, name)]


def _user_meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    return {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}}


def _routes_through_mirror(kube: FakeKube) -> bool:
    route = kube.objects[("IngressRoute", ROUTE)]
    return any(s.get("name") == MIRROR for r in route["spec"]["routes"] for s in r.get("services", []))


# --- conflicts and refusals -----------------------------------------------------------------------


def test_a_conflict_is_retried_on_fresh_objects_and_converges() -> None:
    kube = FakeKube(WORLD, conflict_at={2})  # someone wrote the IngressRoute between our read and our patch

    run = run_mirror(kube, ATTACH, check_mode=False)

    assert run.attempts == 2
    assert ("TraefikService", MIRROR) in kube.objects
    assert _routes_through_mirror(kube)
    # The retry made only the write still missing: the mirror was created once.
    assert kube.writes.count(f"create TraefikService {MIRROR}") == 1


def test_persistent_conflicts_undo_the_partial_work() -> None:
    before = FakeKube(WORLD).snapshot()
    kube = FakeKube(WORLD, conflict_at={2, 3, 4})  # every IngressRoute patch of the three attempts

    with pytest.raises(DarklaunchError) as caught:
        run_mirror(kube, ATTACH, check_mode=False)

    assert "kept changing during 3 attempts" in caught.value.msg
    assert "were undone" in caught.value.msg
    assert kube.writes[-1] == f"delete TraefikService {MIRROR}"
    assert kube.snapshot() == before, "the mirror created in the first attempt must be gone"


def test_a_refused_write_undoes_the_partial_work() -> None:
    before = FakeKube(WORLD).snapshot()
    kube = FakeKube(WORLD, refuse_at={2})

    with pytest.raises(DarklaunchError) as caught:
        run_mirror(kube, ATTACH, check_mode=False)

    assert "admission webhook denied" in caught.value.msg
    assert "undone" in caught.value.msg
    assert kube.snapshot() == before


def test_a_refused_ramp_leaves_the_mirror_as_it_was() -> None:
    kube = FakeKube(WORLD)
    run_mirror(kube, ATTACH, check_mode=False)
    attached = kube.snapshot()
    kube.refuse_at = {len(kube.writes) + 1}

    with pytest.raises(DarklaunchError):
        run_mirror(kube, {**ATTACH, "mirror_percent": 50}, check_mode=False)

    assert kube.snapshot() == attached


def test_teardown_refused_at_the_delete_keeps_the_restored_route() -> None:
    kube = FakeKube(WORLD)
    run_mirror(kube, ATTACH, check_mode=False)
    kube.refuse_at = {len(kube.writes) + 2}  # the restore passes, the delete is refused

    with pytest.raises(DarklaunchError) as caught:
        run_mirror(kube, TEARDOWN, check_mode=False)

    # Disabling is not undone: the restored route is the safe state, and a rerun deletes the mirror.
    assert "undone" not in caught.value.msg
    assert not _routes_through_mirror(kube)
    assert ("TraefikService", MIRROR) in kube.objects
    run_mirror(kube, TEARDOWN, check_mode=False)
    assert ("TraefikService", MIRROR) not in kube.objects


def test_check_mode_writes_nothing() -> None:
    kube = FakeKube(WORLD)
    before = kube.snapshot()

    run = run_mirror(kube, ATTACH, check_mode=True)

    assert [action.verb for action in run.plan.actions] == ["create", "patch"]
    assert kube.writes == []
    assert kube.snapshot() == before


# --- what is read ---------------------------------------------------------------------------------


def _ingress_route_reads(kube: FakeKube) -> int:
    return sum(1 for read in kube.reads if read in (f"get IngressRoute {ROUTE}", "list IngressRoute"))


@pytest.mark.parametrize("options", [ATTACH, {**ATTACH, "attach_to_ingress": False}, TEARDOWN], ids=str)
def test_a_run_reads_the_ingress_route_once(options: dict[str, Any]) -> None:
    kube = FakeKube(WORLD)
    run_mirror(kube, ATTACH, check_mode=False)  # the mirror exists, so teardown must look for references
    kube.reads.clear()

    run_mirror(kube, options, check_mode=True)

    assert _ingress_route_reads(kube) == 1, kube.reads


@pytest.mark.parametrize("api_group", ["traefik.io", None])
def test_an_idempotent_rerun_reads_by_name_and_writes_nothing(api_group: str | None) -> None:
    kube = FakeKube(WORLD)
    run_mirror(kube, ATTACH, check_mode=False)
    kube.reads.clear()
    kube.group = None  # a new run is a new process: the group is known only if given
    writes = len(kube.writes)

    run = run_mirror(kube, {**ATTACH, "api_group": api_group}, check_mode=False)

    assert run.plan.actions == []
    assert run.api_group == "traefik.io"
    assert len(kube.writes) == writes
    # The mirror, the IngressRoute and the two Services, each once: no group probe (the first read settles
    # the group), no list, and not the WRR, which the route already on the mirror does not reach.
    assert sorted(kube.reads) == sorted(
        [
            f"get TraefikService {MIRROR}",
            f"get IngressRoute {ROUTE}",
            "get Service api-service-stable",
            "get Service api-service-canary",
        ]
    )


def test_attaching_reads_the_wrr_the_route_targets() -> None:
    kube = FakeKube(WORLD)

    run = run_mirror(kube, ATTACH, check_mode=True)

    assert "get TraefikService api-service-route-wrr" in kube.reads  # the sign-off reads its live split
    assert "probe" not in kube.reads
    assert any("would end the weighted split" in warning for warning in run.plan.warnings), run.plan.warnings


def test_teardown_lists_references_and_refuses_while_another_route_uses_the_mirror() -> None:
    kube = FakeKube(WORLD)
    run_mirror(kube, ATTACH, check_mode=False)
    other = copy.deepcopy(kube.objects[("IngressRoute", ROUTE)])
    other["metadata"] = {"name": "other-route", "namespace": NS}
    kube._store(other)
    writes = len(kube.writes)

    with pytest.raises(DarklaunchError) as caught:
        run_mirror(kube, TEARDOWN, check_mode=False)

    assert "other-route" in caught.value.msg
    assert len(kube.writes) == writes
    assert ("TraefikService", MIRROR) in kube.objects


def test_teardown_of_an_absent_mirror_lists_nothing() -> None:
    kube = FakeKube(WORLD)

    run = run_mirror(kube, TEARDOWN, check_mode=False)

    assert run.plan.actions == []
    assert not [read for read in kube.reads if read.startswith("list ")], kube.reads


def test_a_mirror_live_through_another_route_is_active_without_attaching() -> None:
    kube = FakeKube(WORLD)
    run_mirror(kube, ATTACH, check_mode=False)
    run_mirror(kube, {**TEARDOWN, "state": "absent"}, check_mode=False)
    other = copy.deepcopy(kube.objects[("IngressRoute", ROUTE)])
    other["metadata"] = {"name": "other-route", "namespace": NS}
    for route in other["spec"]["routes"]:
        route["services"] = [{"name": MIRROR, "kind": "TraefikService"}]
    kube._store(other)

    run = run_mirror(kube, {**ATTACH, "attach_to_ingress": False}, check_mode=True)

    assert run.plan.status == "active"


def test_the_reported_split_reads_what_the_route_reaches() -> None:
    kube = FakeKube(WORLD)

    run = run_mirror(kube, {**ATTACH, "attach_to_ingress": False}, check_mode=True)

    # The route still goes to the WRR, whose two Services are read by name to describe the split.
    assert run.plan.distribution is not None
    assert not run.plan.distribution.get("broken"), run.plan.distribution
    assert "get Service api-service-stable" in kube.reads


def test_the_reported_split_does_not_read_traefiks_own_services() -> None:
    # The /healthz route answers from Traefik's internal ping service: outside the cluster's objects, so it is
    # reported as such and never asked of the API (the same rule as traefik_traffic_info's).
    kube = FakeKube(WORLD)
    route = load("ir-to-wrr")
    route["spec"]["routes"][1]["services"] = [{"name": "ping@internal", "kind": "TraefikService"}]
    kube._store(route)

    run = run_mirror(kube, ATTACH, check_mode=True)

    assert not [read for read in kube.reads if "@" in read], kube.reads
    assert run.plan.distribution is not None and not run.plan.distribution.get("broken"), run.plan.distribution


def test_teardown_reads_no_service_it_does_not_need() -> None:
    kube = FakeKube([*WORLD, "svc-api-service-staging"])
    run_mirror(kube, ATTACH, check_mode=False)
    kube.reads.clear()

    # Teardown with route_name only: main_service / mirror_service default to <route>-stable / -staging, which
    # this launch never used. Restoring puts the route back on the WRR; nothing is created, so no Service is
    # a precondition and only those the restored route reaches are read (for the reported split).
    run = run_mirror(kube, TEARDOWN, check_mode=False)

    assert [action.verb for action in run.plan.actions] == ["patch", "delete"]
    assert ("TraefikService", MIRROR) not in kube.objects
    assert kube.objects[("IngressRoute", ROUTE)]["spec"] == load("ir-to-wrr")["spec"]
    services_read = sorted(read for read in kube.reads if read.startswith("get Service"))
    assert services_read == ["get Service api-service-canary", "get Service api-service-stable"], kube.reads
    assert run.plan.distribution is not None and not run.plan.distribution.get("broken"), run.plan.distribution


def test_teardown_checks_the_main_service_a_route_goes_back_to() -> None:
    # The IngressRoute's /v1 route targeted the main Service directly before attach: restoring puts it back
    # there, so a teardown must still see that the Service exists, and refuse when it is gone.
    kube = FakeKube(WORLD)
    direct = load("ir-to-wrr")
    direct["spec"]["routes"][0]["services"] = [{"name": "api-service-stable", "port": 80}]
    kube._store(direct)
    run_mirror(kube, ATTACH, check_mode=False)
    assert kube.objects[("IngressRoute", ROUTE)]["spec"]["routes"][0]["services"][0]["name"] == MIRROR
    teardown = {**TEARDOWN, "main_service": "api-service-stable"}

    planned = run_mirror(kube, teardown, check_mode=True)  # the Service exists: the route goes back to it
    assert planned.plan.ingress_route_after is not None
    assert planned.plan.ingress_route_after["spec"]["routes"][0]["services"] == [
        {"name": "api-service-stable", "port": 80}
    ]

    del kube.objects[("Service", "api-service-stable")]
    kube.reads.clear()
    writes = len(kube.writes)

    with pytest.raises(DarklaunchError) as caught:
        run_mirror(kube, teardown, check_mode=False)

    assert caught.value.field == "main_service", caught.value.msg
    assert "get Service api-service-stable" in kube.reads
    assert "get Service api-service-canary" not in kube.reads  # the shadow is never a teardown's concern
    assert len(kube.writes) == writes
    assert ("TraefikService", MIRROR) in kube.objects


# --- giving Traefik time to see a write before the one that depends on it -----------------------------


def _record_waits_among_writes(kube: FakeKube, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner.sleep",
        lambda seconds: kube.writes.append(f"wait {seconds:g}"),
    )


def _attached_recording_waits(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    """The seed route attached to its mirror; from then on the writes and the waits between them are recorded."""
    kube = FakeKube(WORLD)
    run_mirror(kube, ATTACH, check_mode=False)
    kube.writes.clear()
    _record_waits_among_writes(kube, monkeypatch)
    return kube


def test_attach_waits_between_creating_the_mirror_and_pointing_the_route_at_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = FakeKube(WORLD)
    _record_waits_among_writes(kube, monkeypatch)

    run_mirror(kube, ATTACH, check_mode=False)

    assert kube.writes == [f"create TraefikService {MIRROR}", "wait 1", f"patch IngressRoute {ROUTE}"]


def test_teardown_waits_between_restoring_the_route_and_deleting_the_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = _attached_recording_waits(monkeypatch)

    run_mirror(kube, {**TEARDOWN, "propagation_seconds": 0.5}, check_mode=False)

    assert kube.writes == [f"patch IngressRoute {ROUTE}", "wait 0.5", f"delete TraefikService {MIRROR}"]


def test_undoing_an_attach_deletes_the_mirror_it_created_and_waits_only_after_a_route_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube = FakeKube(WORLD, conflict_at={3, 4, 5})  # the IngressRoute patch fails in every attempt (waits count)
    _record_waits_among_writes(kube, monkeypatch)

    with pytest.raises(DarklaunchError):
        run_mirror(kube, ATTACH, check_mode=False)

    # The route never went through the mirror, so the undo deletes it at once.
    assert kube.writes == [
        f"create TraefikService {MIRROR}",
        "wait 1",
        *[f"patch IngressRoute {ROUTE}"] * 3,
        f"delete TraefikService {MIRROR}",
    ]
    # Had the route been written, undoing it (route back, then the mirror deleted) waits before the delete.
    attach = [
        Action("create", "TraefikService", MIRROR, NS, {}, ""),
        Action("patch", "IngressRoute", ROUTE, NS, [], ""),
    ]
    assert propagation_waits([_revert_write(action) for action in reversed(attach)]) == [False, True]


def test_a_ramp_and_a_rerun_never_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = _attached_recording_waits(monkeypatch)

    run_mirror(kube, {**ATTACH, "mirror_percent": 50}, check_mode=False)
    run_mirror(kube, {**ATTACH, "mirror_percent": 50}, check_mode=False)

    assert kube.writes == [f"patch TraefikService {MIRROR}"]


@pytest.mark.parametrize("seconds", [-1, 61])
def test_propagation_seconds_out_of_range_is_refused_before_any_request(seconds: float) -> None:
    kube = FakeKube(WORLD)

    with pytest.raises(DarklaunchError) as caught:
        run_mirror(kube, {**ATTACH, "propagation_seconds": seconds}, check_mode=False)

    assert caught.value.field == "propagation_seconds"
    assert kube.writes == [] and kube.reads == []


def test_a_dry_run_says_the_weighted_split_would_end() -> None:
    from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import dry_run_warning

    done = (
        "Attaching ended the weighted split of w (50% a, 50% b): all user responses now come from a; b no longer "
        "serves real users and only receives copies of 20% of requests, whose responses are discarded."
    )
    assert dry_run_warning(done) == (
        "Attaching would end the weighted split of w (50% a, 50% b): all user responses would then come from a; b "
        "would no longer serve real users and would only receive copies of 20% of requests, whose responses are "
        "discarded."
    )
    assert dry_run_warning("Shadow traffic really reaches b.") == "Shadow traffic really reaches b."
