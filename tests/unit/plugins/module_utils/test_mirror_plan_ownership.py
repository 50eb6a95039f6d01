"""The planner refuses objects that are not unambiguously its own: a TraefikService with two spec kinds,
and a mirror someone else made for other services. Each refusal names the option and plans nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import MirrorParams, Observed
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_plan import plan_mirror

OBJECTS = Path(__file__).parent / "fixtures" / "objects"
MANAGED_BY = "app.kubernetes.io/managed-by"


def obj(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OBJECTS / f"{name}.yaml").read_text())
    return loaded


def params(**options: Any) -> MirrorParams:
    base = {
        "route_name": "api-service-route",
        "namespace": "production",
        "main_service": "api-service-stable",
        "mirror_service": "api-service-canary",
        "mirror_percent": 20,
    }
    return MirrorParams.from_options({**base, **options})


def observed(**objects: Any) -> Observed:
    base: dict[str, Any] = {
        "ingress_route": obj("ir-to-wrr"),
        "wrr": obj("ts-wrr-50-50"),
        "main": obj("svc-api-service-stable"),
        "mirror_target": obj("svc-api-service-canary"),
    }
    return Observed(**{**base, **objects})


def with_both_specs(ts: dict[str, Any]) -> dict[str, Any]:
    both = copy.deepcopy(ts)
    both["spec"]["mirroring"] = {"name": "api-service-stable", "port": 80, "mirrors": []}
    both["spec"]["weighted"] = {"services": [{"name": "api-service-stable", "port": 80, "weight": 1}]}
    return both


def unmanaged(ts: dict[str, Any]) -> dict[str, Any]:
    hand_made = copy.deepcopy(ts)
    hand_made["metadata"]["labels"] = {"team": "other"}
    return hand_made


def refused(mirror_params: MirrorParams, seen: Observed) -> DarklaunchError:
    with pytest.raises(DarklaunchError) as raised:
        plan_mirror(mirror_params, seen)
    return raised.value


def test_weighted_split_with_two_spec_kinds_is_refused_on_attach() -> None:
    error = refused(
        params(attach_to_ingress=True, confirm_end_weighted_split=True),
        observed(wrr=with_both_specs(obj("ts-wrr-50-50"))),
    )
    assert error.field == "wrr_name"
    assert "api-service-route-wrr" in error.msg and "weighted and mirroring" in error.msg


def test_weighted_split_with_two_spec_kinds_is_ignored_without_attach() -> None:
    plan = plan_mirror(params(), observed(wrr=with_both_specs(obj("ts-wrr-50-50"))))
    assert [action.verb for action in plan.actions] == ["create"]


def test_mirror_with_two_spec_kinds_is_refused() -> None:
    error = refused(params(), observed(mirror=with_both_specs(obj("ts-mirror-20"))))
    assert error.field == "mirror_name"


def test_main_traefik_service_with_two_spec_kinds_is_refused() -> None:
    error = refused(
        params(main_kind="TraefikService", main_service="api-service-route-wrr"),
        observed(main=with_both_specs(obj("ts-wrr-50-50"))),
    )
    assert error.field == "main_service"


def test_someone_elses_mirror_of_other_services_is_refused() -> None:
    error = refused(params(mirror_service="api-service-staging"), observed(mirror=unmanaged(obj("ts-mirror-20"))))
    assert error.field == "mirror_name"
    assert "not created by darklaunch.traefik" in error.msg
    assert "api-service-canary" in error.msg and "api-service-staging" in error.msg
    assert f"{MANAGED_BY}=darklaunch.traefik" in error.msg


def test_hand_made_mirror_of_the_requested_services_is_adopted() -> None:
    plan = plan_mirror(params(mirror_percent=50), observed(mirror=unmanaged(obj("ts-mirror-20"))))
    assert [action.verb for action in plan.actions] == ["patch"]
    assert "label app.kubernetes.io/managed-by added" in plan.actions[0].summary


def test_deleting_someone_elses_mirror_the_route_does_not_use_is_refused() -> None:
    error = refused(
        MirrorParams.from_options({"route_name": "api-service-route", "namespace": "production", "state": "absent"}),
        observed(mirror=unmanaged(obj("ts-mirror-20"))),
    )
    assert error.field == "mirror_name" and "refusing to delete" in error.msg


def test_deleting_a_hand_made_mirror_the_route_goes_through_is_allowed() -> None:
    plan = plan_mirror(
        MirrorParams.from_options({"route_name": "api-service-route", "namespace": "production", "state": "absent"}),
        observed(mirror=unmanaged(obj("ts-mirror-20")), ingress_route=obj("ir-to-mirror")),
    )
    assert [action.verb for action in plan.actions][-1] == "delete"
