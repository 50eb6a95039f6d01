# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch passes mirror_methods / mirror_match to traefik_mirror only on the plan and the writes that attach."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.darklaunch.traefik.plugins.action import shadow_launch as launch_action
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError


def _params(**given: Any) -> dict[str, Any]:
    checked = ArgumentSpecValidator(launch_action.argument_spec()).validate(
        {"route_name": "web", "namespace": "shop", "steps": [20], "launch_id": "abc", "owner": "me", **given}
    )
    assert not checked.error_messages, checked.error_messages
    params: dict[str, Any] = checked.validated_parameters
    return params


class _Client:
    """No route of either kind exists: an unset route_kind stays IngressRoute."""

    @classmethod
    def from_params(cls, _params: dict[str, Any]) -> _Client:
        return cls()

    def get(self, _kind: str, _namespace: str | None, _name: str) -> dict[str, Any] | None:
        return None


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The validated traefik_mirror parameters of every run the launch's cluster port makes."""
    seen: list[dict[str, Any]] = []

    def run_mirror(_client: Any, params: dict[str, Any], check_mode: bool = False) -> Any:
        seen.append({**params, "_check_mode": check_mode})
        return SimpleNamespace(plan=SimpleNamespace(to_dict=lambda: {"resolved": {}, "actions": []}))

    def run_httproute_mirror(_client: Any, params: dict[str, Any], check_mode: bool = False) -> Any:
        seen.append({**params, "_check_mode": check_mode, "_http_route": True})
        return {"resolved": {}, "actions": []}

    monkeypatch.setattr(launch_action, "run_mirror", run_mirror)
    monkeypatch.setattr(launch_action, "run_httproute_mirror", run_httproute_mirror)
    monkeypatch.setattr(launch_action, "KubeClient", _Client)
    monkeypatch.setattr(launch_action._Cluster, "read_route", lambda _self: None)
    return seen


def _cluster(**given: Any) -> Any:
    return launch_action._Cluster(_params(**given), {}, 60)


def test_methods_go_only_with_the_plan_and_the_writes_that_attach(writes: list[dict[str, Any]]) -> None:
    cluster = _cluster(attach_to_ingress=True, mirror_methods=["get", "HEAD"], mirror_match="PathPrefix(`/api`)")
    cluster.plan(20)
    cluster.apply(20, False, "running", None)
    cluster.apply(20, True, "running", None)
    cluster.restore()
    plan, first, attach, restore = writes
    assert plan["_check_mode"] and plan["attach_to_ingress"]
    assert plan["mirror_methods"] == ["get", "HEAD"] and plan["mirror_match"] == "PathPrefix(`/api`)"
    assert first["mirror_methods"] is None and first["mirror_match"] is None and not first["attach_to_ingress"]
    assert attach["mirror_methods"] == ["get", "HEAD"] and attach["mirror_match"] == "PathPrefix(`/api`)"
    assert restore["state"] == "absent" and restore["mirror_methods"] is None


@pytest.mark.parametrize("methods", ["GET,HEAD,OPTIONS", "GET, HEAD ,OPTIONS,", ["GET", "HEAD", "OPTIONS"]])
def test_methods_given_as_text_are_the_list(writes: list[dict[str, Any]], methods: Any) -> None:
    _cluster(attach_to_ingress=True, mirror_methods=methods).apply(20, True, "running", None)
    assert writes[0]["mirror_methods"] == ["GET", "HEAD", "OPTIONS"]


@pytest.mark.parametrize("methods", [[], "", None, [""]])
def test_no_methods_copy_every_request(writes: list[dict[str, Any]], methods: Any) -> None:
    cluster = _cluster(attach_to_ingress=True, mirror_methods=methods, mirror_match="")
    cluster.plan(20)
    cluster.apply(20, True, "running", None)
    assert all(write["mirror_methods"] is None and write["mirror_match"] is None for write in writes)


def test_methods_without_the_attach_are_refused_before_anything() -> None:
    action = SimpleNamespace(_task=SimpleNamespace(check_mode=False))
    with pytest.raises(DarklaunchError) as refused:
        launch_action.ActionModule._engine(
            action, _params(attach_to_ingress=False, gate=False, mirror_methods=["GET"]), {}, print
        )
    assert refused.value.field == "shadow_launch_mirror_methods"
    assert "shadow_launch_attach_to_ingress=true" in refused.value.msg


def test_the_plan_refuses_an_unknown_method_through_traefik_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan is traefik_mirror's own check: a bad method is refused there before any write."""
    monkeypatch.setattr(launch_action, "KubeClient", _Client)

    def run_mirror(_client: Any, params: dict[str, Any], check_mode: bool = False) -> Any:
        from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_match import check_methods

        check_methods(params["mirror_methods"])
        raise AssertionError("not refused")

    monkeypatch.setattr(launch_action, "run_mirror", run_mirror)
    with pytest.raises(DarklaunchError, match="FETCH"):
        _cluster(attach_to_ingress=True, mirror_methods=["GET", "FETCH"]).plan(20)


def test_an_httproute_launch_goes_to_the_httproute_path_without_ingressroute_options(
    writes: list[dict[str, Any]],
) -> None:
    cluster = _cluster(
        attach_to_ingress=True, route_kind="HTTPRoute", rule_index=1, mirror_methods=[], max_body_size=1048576
    )
    cluster.plan(20)
    cluster.apply(20, True, "running", None)
    cluster.restore()
    assert [write.get("_http_route") for write in writes] == [True, True, True]
    for write in writes:
        assert write["route_kind"] == "HTTPRoute" and write["rule_index"] == 1
        assert all(write.get(name) is None for name in ("main_port", "mirror_methods", "mirror_name", "wrr_name"))
    # The mirror's body copying is the TraefikService's, as on an IngressRoute.
    assert writes[1]["max_body_size"] == 1048576
    assert writes[1]["launch"]["id"] == "abc" and writes[2]["state"] == "absent"


@pytest.mark.parametrize(
    "option", ["main_port", "mirror_methods", "mirror_match", "mirror_name", "wrr_name", "main_kind"]
)
def test_an_ingressroute_option_on_an_httproute_launch_is_refused(writes: list[dict[str, Any]], option: str) -> None:
    value = {"main_port": 80, "mirror_methods": ["GET"], "main_kind": "TraefikService"}.get(option, "X")
    with pytest.raises(DarklaunchError) as refused:
        _cluster(route_kind="HTTPRoute", **{option: value})
    assert refused.value.field == f"shadow_launch_{option}"
    assert "IngressRoutes only" in refused.value.msg and "Nothing was changed" in refused.value.msg
    assert writes == []
