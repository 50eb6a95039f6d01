from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils import _mirror_plan
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import apply_json_patch
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import (
    Action,
    MirrorParams,
    Observed,
    validate_params,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_plan import plan_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._propagation import propagation_waits

FIXTURES = Path(__file__).parent / "fixtures"
SUITE = yaml.safe_load((FIXTURES / "mirror_plan_cases.yaml").read_text())
CASES = SUITE["cases"]
ANNOTATION = "darklaunch.traefik/pre-mirror-services"


def load_object(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / "objects" / f"{name}.yaml").read_text())


def load_or_none(name: str | None) -> dict[str, Any] | None:
    return None if name is None else load_object(name)


def case_params(case: dict[str, Any]) -> MirrorParams:
    options = {**SUITE["BASE_PARAMS"], **case["params"]}
    return MirrorParams(**options)


def case_observed(case: dict[str, Any]) -> Observed:
    names = {**SUITE["BASE_OBSERVED"], **case["observed"]}
    return Observed(
        mirror=load_or_none(names.get("mirror")),
        ingress_route=load_or_none(names.get("ingress_route")),
        wrr=load_or_none(names.get("wrr")),
        main=load_or_none(names.get("main")),
        mirror_target=load_or_none(names.get("mirror_target")),
        routes_referencing_mirror=[load_object(n) for n in names.get("routes_referencing_mirror", [])],
        traefik_services=[load_object(n) for n in names.get("traefik_services", [])],
    )


def case_now(case: dict[str, Any]) -> datetime | None:
    """The planner's clock for cases with a launch record (RFC 3339 ``now``)."""
    return datetime.fromisoformat(case["now"].replace("Z", "+00:00")) if "now" in case else None


def describe(action: Action) -> str:
    return f"{action.verb} {action.kind} {action.name}"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_plan_mirror(case: dict[str, Any]) -> None:
    params, observed = case_params(case), case_observed(case)
    if "error" in case:
        with pytest.raises(DarklaunchError) as caught:
            plan_mirror(params, observed, now=case_now(case))
        assert caught.value.field == case["error"]["field"]
        for fragment in case["error"].get("contains", []):
            assert fragment in caught.value.msg
        return
    plan = plan_mirror(params, observed, now=case_now(case))
    expect = case["expect"]
    if "status" in expect:
        assert plan.status == expect["status"]
    if "actions" in expect:
        assert [describe(a) for a in plan.actions] == expect["actions"]
        assert plan.changed is bool(expect["actions"])
    for position, body in expect.get("bodies", {}).items():
        assert plan.actions[position].body == body
    if "resource_versions" in expect:
        assert [a.resource_version for a in plan.actions] == expect["resource_versions"]
    if "summaries" in expect:
        assert [a.summary for a in plan.actions] == expect["summaries"]
    for fragment in expect.get("warnings_contain", []):
        assert any(fragment in w for w in plan.warnings), (fragment, plan.warnings)
    for fragment in expect.get("warnings_absent", []):
        assert not any(fragment in w for w in plan.warnings), (fragment, plan.warnings)
    if "warning_count" in expect:
        assert len(plan.warnings) == expect["warning_count"], plan.warnings
    if "distribution_explanation_contains" in expect:
        assert plan.distribution is not None
        assert expect["distribution_explanation_contains"] in plan.distribution["explanation"]


@pytest.mark.parametrize("case", [c for c in CASES if "expect" in c], ids=lambda c: c["id"])
def test_every_patch_starts_with_a_resource_version_test(case: dict[str, Any]) -> None:
    plan = plan_mirror(case_params(case), case_observed(case), now=case_now(case))
    for action in plan.actions:
        if action.verb == "patch":
            assert action.body[0] == {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": action.resource_version,
            }
            assert action.resource_version


# --- a small in-memory API server, to run whole sequences ------------------------------------------------


class FakeCluster:
    """Stores objects by (kind, name) in one namespace and applies actions the way the API server does."""

    def __init__(self, *names: str) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions = itertools.count(9000)
        self.writes = 0
        for name in names:
            obj = load_object(name)
            self.objects[(obj["kind"], obj["metadata"]["name"])] = obj

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((kind, name))
        return copy.deepcopy(obj) if obj else None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _name), o in sorted(self.objects.items()) if k == kind]

    def observe(self, params: MirrorParams) -> Observed:
        p = params.with_defaults()
        return Observed(
            mirror=self.get("TraefikService", p.mirror_name),
            ingress_route=self.get("IngressRoute", p.route_name),
            wrr=self.get("TraefikService", p.wrr_name),
            main=self.get(p.main_kind, p.main_service),
            mirror_target=self.get("Service", p.mirror_service),
            routes_referencing_mirror=self.of_kind("IngressRoute"),
            traefik_services=self.of_kind("TraefikService"),
            services=self.of_kind("Service"),
        )

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            self.writes += 1
            key = (action.kind, action.name)
            if action.verb == "create":
                assert key not in self.objects, "create of an existing object"
                body = copy.deepcopy(action.body)
                body["metadata"]["resourceVersion"] = str(next(self.versions))
                self.objects[key] = body
            elif action.verb == "patch":
                # An independent RFC 6902 implementation plays the API server, so the planner's own
                # apply_json_patch (its check-mode preview) is compared with something else than itself.
                try:
                    patched = jsonpatch.apply_patch(self.objects[key], action.body)
                except jsonpatch.JsonPatchTestFailed as failed:
                    raise DarklaunchError(f"JSON Patch test failed: {failed}") from None
                patched["metadata"]["resourceVersion"] = str(next(self.versions))
                self.objects[key] = patched
            elif action.verb == "delete":
                assert self.objects[key]["metadata"]["resourceVersion"] == action.resource_version
                del self.objects[key]

    def run(self, params: MirrorParams, now: datetime | None = None) -> Any:
        plan = plan_mirror(params, self.observe(params), now=now)
        self.apply(plan.actions)
        return plan


def api_service_params(**overrides: Any) -> MirrorParams:
    base = MirrorParams(
        route_name="api-service-route",
        namespace="production",
        main_service="api-service-stable",
        mirror_service="api-service-canary",
    )
    return replace(base, **overrides)


def user_visible(ingress_route: dict[str, Any]) -> dict[str, Any]:
    return {
        "spec": ingress_route["spec"],
        "labels": ingress_route["metadata"].get("labels"),
        "annotations": ingress_route["metadata"].get("annotations"),
    }


def test_the_seed_workflow_end_to_end() -> None:
    cluster = FakeCluster(
        "ir-to-wrr", "ts-wrr-50-50", "svc-api-service-stable", "svc-api-service-canary", "svc-api-service-staging"
    )
    original = cluster.get("IngressRoute", "api-service-route")
    assert original is not None

    # 1. mirror only: created, inactive, users still on the 50/50 split
    plan = cluster.run(api_service_params(mirror_percent=20))
    assert (plan.status, [a.verb for a in plan.actions]) == ("inactive", ["create"])
    assert user_visible(cluster.get("IngressRoute", "api-service-route") or {}) == user_visible(original)

    # 2. attach with sign-off
    attach = api_service_params(mirror_percent=20, attach_to_ingress=True, confirm_end_weighted_split=True)
    plan = cluster.run(attach)
    assert (plan.status, [describe(a) for a in plan.actions]) == ("active", ["patch IngressRoute api-service-route"])
    assert plan.distribution is not None
    assert plan.distribution["traffic_split"]["type"] == "mirror"
    assert plan.distribution["target"]["name"] == "api-service-route-mirror"

    # 3. rerun: nothing to do, no write
    writes = cluster.writes
    plan = cluster.run(attach)
    assert (plan.changed, plan.status, cluster.writes) == (False, "active", writes)

    # 4. ramp 20 -> 50: one percent op after the test op
    plan = cluster.run(replace(attach, mirror_percent=50))
    assert [describe(a) for a in plan.actions] == ["patch TraefikService api-service-route-mirror"]
    assert plan.actions[0].body[1:] == [{"op": "replace", "path": "/spec/mirroring/mirrors/0/percent", "value": 50}]
    mirror = cluster.get("TraefikService", "api-service-route-mirror")
    assert mirror is not None and mirror["spec"]["mirroring"]["mirrors"][0]["percent"] == 50

    # 5. disable with restore: IngressRoute exactly as before, mirror gone
    plan = cluster.run(api_service_params(state="absent"))
    assert [describe(a) for a in plan.actions] == [
        "patch IngressRoute api-service-route",
        "delete TraefikService api-service-route-mirror",
    ]
    assert user_visible(cluster.get("IngressRoute", "api-service-route") or {}) == user_visible(original)
    assert cluster.get("TraefikService", "api-service-route-mirror") is None

    # 6. disable again: no actions, not an error
    writes = cluster.writes
    plan = cluster.run(api_service_params(state="absent"))
    assert (plan.changed, plan.status, plan.warnings, cluster.writes) == (False, "absent", [], writes)


def _without_version(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object minus the resourceVersion, which only the server assigns."""
    if obj is None:
        return None
    copied = copy.deepcopy(obj)
    copied["metadata"].pop("resourceVersion", None)
    return copied


def test_check_mode_plan_equals_the_real_result() -> None:
    """What a check-mode run reports as the would-be objects (the planner applying its own patches) is what
    an independent JSON Patch implementation makes of the same writes, at every step of a launch."""
    cluster = FakeCluster("ir-to-wrr", "ts-wrr-50-50", "svc-api-service-stable", "svc-api-service-canary")
    attach = api_service_params(mirror_percent=20, attach_to_ingress=True, confirm_end_weighted_split=True)
    launch = {"id": "run-1", "owner": "alice", "step": 20, "lease_seconds": 60}
    now = datetime.fromisoformat("2025-11-27T14:02:11+00:00")
    steps = [
        attach,  # create the mirror and repoint the IngressRoute (annotation added, '/' escaped as '~1')
        replace(attach, mirror_percent=50, launch=launch),  # percent replaced and launch annotations added
        replace(attach, mirror_percent=50, launch={**launch, "state": "finished"}),  # annotations removed
        api_service_params(state="absent"),  # restore: services replaced, annotation map removed, delete
    ]
    for params in steps:
        plan = plan_mirror(params, cluster.observe(params), now=now)
        assert plan.actions, params
        cluster.apply(plan.actions)
        assert _without_version(plan.ingress_route_after) == _without_version(
            cluster.get("IngressRoute", "api-service-route")
        )
        assert _without_version(plan.mirror_after) == _without_version(
            cluster.get("TraefikService", "api-service-route-mirror")
        )


@pytest.mark.parametrize("case", [c for c in CASES if "expect" in c], ids=lambda c: c["id"])
def test_every_planned_patch_previews_what_the_api_server_makes_of_it(case: dict[str, Any]) -> None:
    """apply_json_patch (the check-mode preview) agrees with an independent RFC 6902 implementation."""
    observed = case_observed(case)
    plan = plan_mirror(case_params(case), observed, now=case_now(case))
    current = {"TraefikService": observed.mirror, "IngressRoute": observed.ingress_route}
    for action in plan.actions:
        if action.verb == "patch":
            source = current[action.kind]
            assert source is not None
            assert apply_json_patch(source, action.body) == jsonpatch.apply_patch(source, action.body)


def test_attach_keeps_everything_else_of_the_ingress_route() -> None:
    before = load_object("ir-to-wrr")
    params = api_service_params(mirror_percent=20, attach_to_ingress=True, confirm_end_weighted_split=True)
    plan = plan_mirror(params, case_observed({"observed": {}}))
    after = apply_json_patch(before, plan.actions[1].body)
    assert after["spec"]["routes"][1] == before["spec"]["routes"][1]
    for key in ("match", "kind", "priority", "middlewares"):
        assert after["spec"]["routes"][0][key] == before["spec"]["routes"][0][key]
    assert after["spec"]["tls"] == before["spec"]["tls"]
    assert after["spec"]["entryPoints"] == before["spec"]["entryPoints"]
    assert after["metadata"]["labels"] == before["metadata"]["labels"]
    annotations = dict(after["metadata"]["annotations"])
    assert annotations.pop(ANNOTATION)
    assert annotations == before["metadata"]["annotations"]


def test_a_concurrent_change_fails_the_patch_instead_of_overwriting() -> None:
    cluster = FakeCluster("ir-to-wrr", "ts-wrr-50-50", "svc-api-service-stable", "svc-api-service-canary")
    attach = api_service_params(mirror_percent=20, attach_to_ingress=True, confirm_end_weighted_split=True)
    plan = plan_mirror(attach, cluster.observe(attach))
    cluster.objects[("IngressRoute", "api-service-route")]["metadata"]["resourceVersion"] = "5013"  # someone else
    with pytest.raises(DarklaunchError, match="test failed"):
        cluster.apply(plan.actions)


def test_disable_restores_a_route_with_several_entries_exactly() -> None:
    cluster = FakeCluster("ir-two-services", "ts-wrr-50-50", "svc-api-service-stable", "svc-api-service-canary")
    original = cluster.get("IngressRoute", "api-service-route")
    cluster.run(api_service_params(mirror_percent=20, attach_to_ingress=True))
    attached = cluster.get("IngressRoute", "api-service-route")
    assert attached is not None
    assert attached["spec"]["routes"][0]["services"][0] == {
        "name": "api-service-route-mirror",
        "kind": "TraefikService",
        "weight": 9,
    }
    cluster.run(api_service_params(state="absent"))
    assert user_visible(cluster.get("IngressRoute", "api-service-route") or {}) == user_visible(original or {})


def test_saved_targets_of_a_changed_route_are_not_forced_back() -> None:
    ingress_route = load_object("ir-to-mirror")
    ingress_route["spec"]["routes"][0]["services"] = [{"name": "api-service-stable", "port": 80}]  # edited by hand
    observed = replace(case_observed({"observed": {"mirror": "ts-mirror-20"}}), ingress_route=ingress_route)
    plan = plan_mirror(api_service_params(state="absent"), observed)
    patch = plan.actions[0].body
    assert patch[1:] == [{"op": "remove", "path": "/metadata/annotations/darklaunch.traefik~1pre-mirror-services"}]
    assert any("changed since attach" in w for w in plan.warnings)


def test_plan_to_dict_shape() -> None:
    plan = plan_mirror(api_service_params(mirror_percent=20), case_observed({"observed": {}}))
    result = plan.to_dict()
    assert set(result) == {
        "changed",
        "status",
        "actions",
        "warnings",
        "mirror",
        "ingress_route",
        "distribution",
        "launch",
        "resolved",
        "diff",
    }
    assert result["changed"] is True
    assert set(result["actions"][0]) == {
        "verb",
        "kind",
        "name",
        "namespace",
        "summary",
        "body",
        "resource_version",
        "record_only",
    }
    assert result["ingress_route"]["before"] == result["ingress_route"]["after"]
    assert result["ingress_route"]["before"][0] == {
        "index": 0,
        "match": "Host(`api.example.com`) && PathPrefix(`/v1`)",
        "services": [{"name": "api-service-route-wrr", "kind": "TraefikService"}],
    }
    assert result["diff"]["before"]["mirror"] is None
    assert result["diff"]["after"]["mirror"]["spec"]["mirroring"]["mirrors"][0]["percent"] == 20
    # server-owned fields stay out of the diff
    assert "managedFields" not in result["diff"]["before"]["ingress_route"]["metadata"]
    assert "resourceVersion" not in result["diff"]["before"]["ingress_route"]["metadata"]


def test_from_options_ignores_auth_options_and_fills_defaults() -> None:
    params = MirrorParams.from_options(
        {"route_name": "shop", "mirror_percent": 5, "kubeconfig": "/tmp/kc", "main_port": "8080", "api_key": None}
    )
    assert (params.main_service, params.mirror_service, params.mirror_name, params.wrr_name) == (
        "shop-stable",
        "shop-staging",
        "shop-mirror",
        "shop-wrr",
    )
    assert params.namespace == "default"
    assert params.main_port == 8080  # extra vars and surveys send strings; Traefik needs a number


def test_from_options_requires_route_name() -> None:
    with pytest.raises(DarklaunchError) as caught:
        MirrorParams.from_options({"mirror_percent": 5})
    assert caught.value.field == "route_name"


def test_validate_params_ignores_percent_when_absent() -> None:
    absent = MirrorParams(route_name="shop", state="absent", mirror_percent=None)
    assert validate_params(absent) == absent.with_defaults()
    # The same missing percent is refused when the mirror should exist.
    with pytest.raises(DarklaunchError) as caught:
        validate_params(MirrorParams(route_name="shop", state="present", mirror_percent=None))
    assert caught.value.field == "mirror_percent"


def test_main_port_with_a_traefik_service_main_is_ignored_with_a_warning() -> None:
    params = api_service_params(
        mirror_percent=10, main_kind="TraefikService", main_service="api-service-route-wrr", main_port=80
    )
    observed = replace(case_observed({"observed": {}}), main=load_object("ts-wrr-50-50"))
    plan = plan_mirror(params, observed)
    assert "port" not in plan.actions[0].body["spec"]["mirroring"]
    assert any("main_port is ignored" in w for w in plan.warnings)


def test_patch_without_resource_version_is_refused() -> None:
    mirror = load_object("ts-mirror-20")
    del mirror["metadata"]["resourceVersion"]
    observed = replace(case_observed({"observed": {}}), mirror=mirror)
    with pytest.raises(DarklaunchError, match=r"without metadata\.resourceVersion"):
        plan_mirror(api_service_params(mirror_percent=50), observed)


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([{"op": "add", "path": "/a/b~1c", "value": 1}], {"a": {"b/c": 1, "x": [1, 2]}}),
        ([{"op": "remove", "path": "/a/x/0"}], {"a": {"x": [2]}}),
        ([{"op": "replace", "path": "/a/x/1", "value": 9}], {"a": {"x": [1, 9]}}),
        ([{"op": "add", "path": "/a/x/-", "value": 3}], {"a": {"x": [1, 2, 3]}}),
        ([{"op": "test", "path": "/a/x/0", "value": 1}, {"op": "remove", "path": "/a/x"}], {"a": {}}),
    ],
)
def test_apply_json_patch(ops: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    document = {"a": {"x": [1, 2]}}
    assert apply_json_patch(document, ops) == expected == jsonpatch.apply_patch(document, ops)
    assert document == {"a": {"x": [1, 2]}}  # the input is not modified


def test_a_port_name_the_service_no_longer_has_is_replaced_by_its_only_port() -> None:
    main = load_object("svc-api-service-stable")
    main["spec"]["ports"][0]["name"] = "web"
    observed = replace(case_observed({"observed": {"mirror": "ts-mirror-named-ports"}}), main=main)
    plan = plan_mirror(api_service_params(mirror_percent=20), observed)
    assert [a.body[1:] for a in plan.actions] == [[{"op": "replace", "path": "/spec/mirroring/port", "value": 80}]]
    assert plan.actions[0].summary == (
        "patch TraefikService api-service-route-mirror: main service api-service-stable:http -> api-service-stable:80"
    )


# --- resuming an interrupted launch ---------------------------------------------------------------------


def seed_cluster(ingress_route: str = "ir-to-wrr") -> FakeCluster:
    return FakeCluster(
        ingress_route, "ts-wrr-50-50", "svc-api-service-stable", "svc-api-service-canary", "svc-api-service-staging"
    )


def saved_record(cluster: FakeCluster) -> str:
    ingress_route = cluster.get("IngressRoute", "api-service-route") or {}
    return str(ingress_route["metadata"].get("annotations", {}).get(ANNOTATION))


def launch_step(launch_id: str, percent: int) -> MirrorParams:
    return api_service_params(
        mirror_percent=percent,
        attach_to_ingress=True,
        confirm_end_weighted_split=True,
        launch={"id": launch_id, "owner": "test", "step": percent, "lease_seconds": 60},
    )


NOW = datetime.fromisoformat("2025-11-27T10:00:00+00:00")


def test_a_launch_resumed_after_an_interruption_restores_the_pre_launch_route() -> None:
    cluster = seed_cluster()
    original = cluster.get("IngressRoute", "api-service-route") or {}
    # Interrupted between the two writes of its first step: the mirror exists, the route is not attached.
    cluster.run(api_service_params(mirror_percent=20, launch={"id": "run-1", "lease_seconds": 60}), now=NOW)
    assert user_visible(cluster.get("IngressRoute", "api-service-route") or {}) == user_visible(original)
    # A new run (new id) attaches; then it is interrupted too, and a third run resumes on the attached route.
    cluster.run(launch_step("run-2", 20), now=NOW)
    record = saved_record(cluster)
    assert '"api-service-route-wrr"' in record and "api-service-route-mirror" not in record
    plan = cluster.run(launch_step("run-3", 50), now=NOW)
    assert [describe(a) for a in plan.actions] == ["patch TraefikService api-service-route-mirror"]
    assert saved_record(cluster) == record, "resuming must not touch the saved original"
    cluster.run(api_service_params(state="absent"))
    assert user_visible(cluster.get("IngressRoute", "api-service-route") or {}) == user_visible(original)
    assert cluster.get("TraefikService", "api-service-route-mirror") is None


def test_resuming_on_a_route_that_has_the_mirror_and_the_wrr_keeps_the_true_original() -> None:
    cluster = seed_cluster()
    original = cluster.get("IngressRoute", "api-service-route") or {}
    cluster.run(launch_step("run-1", 20), now=NOW)
    record = saved_record(cluster)
    # Someone put the weighted service back beside the mirror before the launch was run again.
    routes = cluster.objects[("IngressRoute", "api-service-route")]["spec"]["routes"]
    routes[0]["services"].append({"name": "api-service-route-wrr", "kind": "TraefikService"})
    cluster.run(launch_step("run-2", 20), now=NOW)
    assert saved_record(cluster) == record
    cluster.run(api_service_params(state="absent"))
    assert user_visible(cluster.get("IngressRoute", "api-service-route") or {}) == user_visible(original)


def test_without_a_record_the_mirror_is_never_saved_as_the_original() -> None:
    cluster = seed_cluster("ir-mirror-and-wrr")
    del cluster.objects[("IngressRoute", "api-service-route")]["metadata"]["annotations"][ANNOTATION]
    cluster.objects[("TraefikService", "api-service-route-mirror")] = load_object("ts-mirror-20")
    cluster.run(launch_step("run-1", 20), now=NOW)
    assert "api-service-route-mirror" not in saved_record(cluster)
    plan = cluster.run(api_service_params(state="absent"))
    restored = cluster.get("IngressRoute", "api-service-route") or {}
    names = [s["name"] for route in restored["spec"]["routes"] for s in route["services"]]
    assert names == ["api-service-route-wrr", "api-service-route-wrr"], plan.warnings
    assert cluster.get("TraefikService", "api-service-route-mirror") is None


def test_a_saved_record_that_names_the_mirror_is_restored_to_the_wrr() -> None:
    ingress_route = load_object("ir-to-mirror")
    ingress_route["metadata"]["annotations"][ANNOTATION] = (
        '{"0":[{"kind":"TraefikService","name":"api-service-route-mirror"}]}'
    )
    observed = replace(case_observed({"observed": {"mirror": "ts-mirror-20"}}), ingress_route=ingress_route)
    plan = plan_mirror(api_service_params(state="absent"), observed)
    assert plan.ingress_route_after is not None
    assert plan.ingress_route_after["spec"]["routes"][0]["services"] == [
        {"name": "api-service-route-wrr", "kind": "TraefikService"}
    ]
    assert any("name the mirror api-service-route-mirror itself" in w for w in plan.warnings)


def test_finishing_a_launch_leaves_the_mirror_as_if_no_launch_had_recorded_itself() -> None:
    cluster = seed_cluster()
    cluster.run(api_service_params(mirror_percent=20, launch={"id": "run-1", "lease_seconds": 60}), now=NOW)
    mirror = cluster.get("TraefikService", "api-service-route-mirror") or {}
    assert sorted(mirror["metadata"]["annotations"]) == [
        f"darklaunch.traefik/launch-{name}" for name in ("deadline", "id", "renewed", "route", "started")
    ]
    finish = {"id": "run-1", "lease_seconds": 60, "state": "finished"}
    plan = cluster.run(api_service_params(mirror_percent=20, launch=finish), now=NOW)
    assert plan.launch is None and plan.to_dict()["launch"] is None
    mirror = cluster.get("TraefikService", "api-service-route-mirror") or {}
    assert "annotations" not in mirror["metadata"]
    writes = cluster.writes
    plan = cluster.run(api_service_params(mirror_percent=20, launch=finish), now=NOW)
    assert (plan.changed, cluster.writes) == (False, writes)


def test_only_writes_that_touch_nothing_but_the_launch_record_are_record_only() -> None:
    cluster = seed_cluster()
    created = cluster.run(launch_step("run-1", 20), now=NOW)
    assert [a.record_only for a in created.actions] == [False, False], "the create and the attach route traffic"
    later = NOW.replace(second=30)
    renewed = cluster.run(launch_step("run-1", 20), now=later)
    assert [(a.kind, a.record_only) for a in renewed.actions] == [("TraefikService", True)]
    ramped = cluster.run(launch_step("run-1", 50), now=later.replace(second=45))
    assert [(a.kind, a.record_only) for a in ramped.actions] == [("TraefikService", False)]
    finished = cluster.run(
        api_service_params(
            mirror_percent=50,
            attach_to_ingress=True,
            launch={"id": "run-1", "lease_seconds": 60, "state": "finished"},
        ),
        now=later.replace(second=50),
    )
    assert [(a.kind, a.record_only) for a in finished.actions] == [("TraefikService", True)]


# --- what the options resolved to (the role and the playbooks read it instead of deriving it) -------------


def test_resolved_names_ports_previous_percent_and_the_weighted_split() -> None:
    cluster = FakeCluster("ir-to-wrr", "ts-wrr-50-50", "svc-api-service-stable", "svc-api-service-canary")
    attach = api_service_params(mirror_percent=20, attach_to_ingress=True, confirm_end_weighted_split=True)
    plan = cluster.run(attach)
    assert plan.resolved == {
        "route_name": "api-service-route",
        "namespace": "production",
        "mirror_name": "api-service-route-mirror",
        "wrr_name": "api-service-route-wrr",
        "main_service": "api-service-stable",
        "main_kind": "Service",
        "main_port": 80,
        "mirror_service": "api-service-canary",
        "mirror_port": 80,
        "mirror_percent": 20,
        "previous_percent": None,
        "weighted_split": {"live": True, "split": "50% api-service-stable, 50% api-service-canary", "ended": True},
    }
    ramp = cluster.run(replace(attach, mirror_percent=50)).resolved
    assert (ramp["previous_percent"], ramp["mirror_percent"], ramp["weighted_split"]["ended"]) == (20, 50, False)
    absent = cluster.run(api_service_params(state="absent")).resolved
    assert (absent["mirror_percent"], absent["previous_percent"], absent["main_port"]) == (None, 50, None)


def test_without_sign_off_the_refusal_names_the_option_that_would_let_it_proceed() -> None:
    cluster = FakeCluster("ir-to-wrr", "ts-wrr-50-50", "svc-api-service-stable", "svc-api-service-canary")
    attach = api_service_params(mirror_percent=20, attach_to_ingress=True)
    with pytest.raises(DarklaunchError) as caught:
        plan_mirror(attach, cluster.observe(attach))
    assert caught.value.field == "confirm_end_weighted_split"


def test_validated_params_are_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module validates once (run_mirror's from_options); the planner, run per attempt, trusts that."""
    params = MirrorParams.from_options({"route_name": "api-service-route", "mirror_percent": 20})
    assert params.validated

    def checked_again(_params: MirrorParams) -> MirrorParams:
        raise AssertionError("validated params were validated again")

    monkeypatch.setattr(_mirror_plan, "validate_params", checked_again)
    plan_mirror(params, case_observed({"observed": {}}))
    with pytest.raises(AssertionError, match="validated again"):
        plan_mirror(MirrorParams(route_name="api-service-route", mirror_percent=20), case_observed({"observed": {}}))


@pytest.mark.parametrize(
    ("writes", "waits"),
    [
        ([("create", "TraefikService"), ("patch", "IngressRoute")], [False, True]),
        ([("patch", "IngressRoute"), ("delete", "TraefikService")], [False, True]),
        # A write in between does not reset what must reach Traefik first.
        ([("create", "TraefikService"), ("patch", "TraefikService"), ("patch", "IngressRoute")], [False, False, True]),
        # Only a TraefikService that was created, or one deleted after a route write, needs the wait.
        ([("patch", "TraefikService"), ("patch", "IngressRoute")], [False, False]),
        ([("delete", "TraefikService")], [False]),
        ([("patch", "IngressRoute"), ("patch", "TraefikService")], [False, False]),
        # One wait covers every earlier write.
        (
            [("create", "TraefikService"), ("patch", "IngressRoute"), ("delete", "TraefikService")],
            [False, True, True],
        ),
    ],
)
def test_propagation_waits(writes: list[tuple[str, str]], waits: list[bool]) -> None:
    assert propagation_waits(writes) == waits
