# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_httproute_plan: which rule, the split and mirror TraefikServices, the route patch, the exact restore, refusals."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import (
    SAVED_ANNOTATION,
    HTTPRouteObserved,
    HTTPRouteParams,
    choose_rule,
    plan_absent,
    plan_present,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._json_patch import apply_json_patch
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import LaunchRequest, read_launch_record

NS = "prod"
GW_KEY = (NS, "gw")


def route(rules: list[dict[str, Any]], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "api", "namespace": NS, "resourceVersion": "7", "labels": {"team": "a"}}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["api.test"], "rules": rules},
    }


def ref(name: str, port: int = 80, weight: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"group": "", "kind": "Service", "name": name, "port": port}
    if weight is not None:
        out["weight"] = weight
    return out


SPLIT_RULES = [
    {"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], "backendRefs": [ref("stable")]},
    {
        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "X", "value": "1"}]}}],
        "backendRefs": [ref("stable", weight=3), ref("canary", weight=1)],
    },
]


def observed(obj: dict[str, Any], controller: str = "traefik.io/gateway-controller", **kw: Any) -> HTTPRouteObserved:
    classes = {"traefik": {"spec": {"controllerName": controller}, "status": kw.pop("class_status", {})}}
    return HTTPRouteObserved(
        route=obj,
        gateways={GW_KEY: {"spec": {"gatewayClassName": "traefik"}}},
        classes=classes,
        mirror_service={"spec": {"ports": [{"port": 8080}]}},
        **kw,
    )


def params(**kw: Any) -> HTTPRouteParams:
    base: dict[str, Any] = {
        "route_name": "api",
        "namespace": NS,
        "state": "present",
        "mirror_service": "shadow",
        "mirror_percent": 20,
        "main_service": "canary",
    }
    base.update(kw)
    return HTTPRouteParams(**base)


def test_the_rule_is_the_one_whose_backendrefs_hold_main_service() -> None:
    assert choose_rule(params(main_service="canary"), route(SPLIT_RULES)) == 1
    assert choose_rule(params(rule_index=0), route(SPLIT_RULES)) == 0
    with pytest.raises(DarklaunchError, match="2 rules have main_service stable") as err:
        choose_rule(params(main_service="stable"), route(SPLIT_RULES))
    assert err.value.field == "rule_index"
    with pytest.raises(DarklaunchError, match="rule_index 5 is out of range"):
        choose_rule(params(rule_index=5), route(SPLIT_RULES))


def test_attach_a_weighted_split_keeps_it_behind_the_mirror() -> None:
    obj = route(SPLIT_RULES)
    plan = plan_present(params(), observed(obj))
    assert [(w.verb, w.kind, w.name) for w in plan.writes] == [
        ("create", "TraefikService", "api-split"),
        ("create", "TraefikService", "api-mirror"),
        ("patch", "HTTPRoute", "api"),
    ]
    split, mirror, patch = (w.body for w in plan.writes)
    assert split["spec"] == {
        "weighted": {
            "services": [{"name": "stable", "port": 80, "weight": 3}, {"name": "canary", "port": 80, "weight": 1}]
        }
    }
    assert mirror["spec"]["mirroring"] == {
        "name": "api-split",
        "kind": "TraefikService",
        "mirrors": [{"name": "shadow", "port": 8080, "percent": 20}],
    }
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    after = apply_json_patch(obj, patch)
    assert after == plan.route_after
    assert after["spec"]["rules"][0] == SPLIT_RULES[0]
    assert after["spec"]["rules"][1]["filters"] == SPLIT_RULES[1]["filters"]
    assert after["spec"]["rules"][1]["backendRefs"] == [
        {"group": "traefik.io", "kind": "TraefikService", "name": "api-mirror", "weight": 1}
    ]
    assert json.loads(after["metadata"]["annotations"][SAVED_ANNOTATION]) == {"1": SPLIT_RULES[1]["backendRefs"]}


def test_without_attach_the_mirror_waits_inactive() -> None:
    plan = plan_present(params(attach=False), observed(route(SPLIT_RULES)))
    assert [w.name for w in plan.writes] == ["api-split", "api-mirror"] and plan.status == "inactive"


def test_teardown_without_restore_refuses_a_rule_still_on_the_mirror() -> None:
    after, split, mirror = _attached(route(SPLIT_RULES))
    with pytest.raises(DarklaunchError, match="still route through api-mirror") as err:
        plan_absent(params(state="absent", restore=False), observed(after, mirror=mirror, split=split))
    assert err.value.field == "restore_ingress_to_wrr"


def test_one_backend_is_the_mirror_main_itself() -> None:
    rules = [{"backendRefs": [ref("stable", port=81)]}]
    plan = plan_present(params(main_service="stable"), observed(route(rules)))
    assert [w.name for w in plan.writes] == ["api-mirror", "api"]
    assert plan.writes[0].body["spec"]["mirroring"]["name"] == "stable"
    assert plan.writes[0].body["spec"]["mirroring"]["port"] == 81


def _attached(obj: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The route, split and mirror as they are after an attach (with their labels and resourceVersions)."""
    plan = plan_present(params(**kw), observed(obj), NOW)
    after = copy.deepcopy(plan.route_after)
    assert after is not None
    after["metadata"]["resourceVersion"] = "8"
    split, mirror = (dict(w.body, metadata={**w.body["metadata"], "resourceVersion": "3"}) for w in plan.writes[:2])
    return after, split, mirror


def test_rerun_is_idempotent_and_a_ramp_only_changes_the_mirror() -> None:
    after, split, mirror = _attached(route(SPLIT_RULES))
    again = plan_present(params(), observed(after, mirror=mirror, split=split))
    assert again.writes == [] and again.status == "active" and again.rule_index == 1
    ramp = plan_present(params(mirror_percent=50), observed(after, mirror=mirror, split=split))
    assert [(w.verb, w.name) for w in ramp.writes] == [("patch", "api-mirror")]
    assert ramp.writes[0].body[1]["value"]["mirroring"]["mirrors"][0]["percent"] == 50


@pytest.mark.parametrize("annotations", [None, {"keep": "me"}])
def test_teardown_restores_the_route_exactly(annotations: dict[str, str] | None) -> None:
    original = route(SPLIT_RULES, annotations)
    after, split, mirror = _attached(copy.deepcopy(original))
    plan = plan_absent(params(state="absent"), observed(after, mirror=mirror, split=split))
    assert [(w.verb, w.name) for w in plan.writes] == [
        ("patch", "api"),
        ("delete", "api-mirror"),
        ("delete", "api-split"),
    ]
    restored = apply_json_patch(after, plan.writes[0].body)
    restored["metadata"]["resourceVersion"] = "7"
    assert restored == original
    assert plan_absent(params(state="absent"), observed(original)).writes == []


def test_refuses_a_gateway_of_another_controller_and_foreign_objects() -> None:
    with pytest.raises(DarklaunchError, match="not Traefik") as err:
        plan_present(params(), observed(route(SPLIT_RULES), controller="example.com/gw"))
    assert "nothing was changed" in err.value.msg
    foreign = {"metadata": {"name": "api-mirror", "labels": {}}, "spec": {}}
    with pytest.raises(DarklaunchError, match=r"not managed by darklaunch\.traefik"):
        plan_present(params(), observed(route(SPLIT_RULES), mirror=foreign))
    with pytest.raises(DarklaunchError, match="only rules whose backendRefs are Services"):
        rules = [{"backendRefs": [{"group": "traefik.io", "kind": "TraefikService", "name": "x", "port": 1}]}]
        plan_present(params(rule_index=0), observed(route(rules)))


@pytest.mark.parametrize("mirror_port", [None, 8080])
def test_a_missing_shadow_service_is_refused_even_with_its_port(mirror_port: int | None) -> None:
    obs = observed(route(SPLIT_RULES))
    obs.mirror_service = None
    with pytest.raises(DarklaunchError, match="mirror_service shadow does not exist") as err:
        plan_present(params(mirror_port=mirror_port), obs)
    assert err.value.field == "mirror_service"


def test_native_mirror_support_is_reported() -> None:
    status = {"supportedFeatures": [{"name": "HTTPRouteRequestMirror"}]}
    plan = plan_present(params(), observed(route(SPLIT_RULES), class_status=status))
    assert any("reports native mirroring (HTTPRouteRequestMirror)" in w for w in plan.warnings)


def test_options_not_supported_on_an_httproute_are_refused() -> None:
    from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_runner import params_from

    base = {"route_name": "api", "namespace": NS, "state": "present", "mirror_percent": 20}
    assert params_from(base, "traefik.io").mirror_service == "api-staging"
    with pytest.raises(DarklaunchError, match="main_port is not supported on an HTTPRoute yet") as err:
        params_from({**base, "main_port": 80}, "traefik.io")
    assert err.value.field == "main_port" and "nothing was changed" in err.value.msg
    with pytest.raises(DarklaunchError, match=r"launch\.lease_seconds is required") as err:
        params_from({**base, "launch": {"id": "x"}}, "traefik.io")
    assert err.value.field == "launch"
    with pytest.raises(DarklaunchError, match="launch only applies with state=present") as err:
        params_from({**base, "state": "absent", "launch": {"id": "x", "lease_seconds": 60}}, "traefik.io")
    assert params_from({**base, "launch": {"id": "x", "lease_seconds": 60}}, "traefik.io").launch is not None
    with pytest.raises(DarklaunchError, match="mirror_percent must be a whole number from 1 to 100"):
        params_from({**base, "mirror_percent": 120}, "traefik.io")


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_the_launch_record_is_written_renewed_and_closed_on_the_mirror() -> None:
    launch = LaunchRequest(id="L1", lease_seconds=60, owner="me", step=20)
    plan = plan_present(params(launch=launch), observed(route(SPLIT_RULES)), NOW)
    mirror = plan.writes[1].body
    record = read_launch_record(mirror["metadata"]["annotations"])
    assert record is not None and record.id == "L1" and record.step == 20 and record.route == "api"
    assert plan.launch == record and "launch L1 recorded" in plan.writes[1].summary
    assert plan.resolved["weighted_split"] == {"live": True, "split": "75% stable, 25% canary", "ended": False}
    assert plan.resolved["previous_percent"] is None and plan.resolved["mirror_name"] == "api-mirror"
    after, split, mirror = _attached(route(SPLIT_RULES), launch=launch)
    # A renewal with nothing else to change is one record-only write on the mirror.
    later = NOW + timedelta(seconds=5)
    renew = plan_present(params(launch=launch), observed(after, mirror=mirror, split=split), later)
    assert [(w.verb, w.name, w.record_only) for w in renew.writes] == [("patch", "api-mirror", True)]
    assert renew.resolved["previous_percent"] == 20
    # A ramp renews it in the same write, which is not record-only.
    ramp = plan_present(params(mirror_percent=50, launch=launch), observed(after, mirror=mirror, split=split), later)
    assert [(w.name, w.record_only) for w in ramp.writes] == [("api-mirror", False)]
    assert "mirror percent 20 -> 50" in ramp.writes[0].summary
    finished = LaunchRequest(id="L1", lease_seconds=60, state="finished")
    done = plan_present(params(launch=finished), observed(after, mirror=mirror, split=split), later)
    closed = apply_json_patch(mirror, done.writes[0].body)
    assert done.writes[0].record_only and "annotations" not in closed["metadata"] and done.launch is None
    # Without launch, the record is left alone and a rerun writes nothing.
    assert plan_present(params(), observed(after, mirror=mirror, split=split)).writes == []


def test_body_copying_is_set_on_the_mirror_as_on_an_ingressroute() -> None:
    plan = plan_present(params(mirror_body=False, max_body_size=1024), observed(route(SPLIT_RULES)))
    mirroring = plan.writes[1].body["spec"]["mirroring"]
    assert mirroring["mirrorBody"] is False and mirroring["maxBodySize"] == 1024
