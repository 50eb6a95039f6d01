"""The operator's requests 1, 2, 4 and 6 (SEED doc) answered by the shipped playbooks, as an operator runs
them: ``ansible-playbook playbooks/<name>.yml -e ...`` against the real cluster, checking both what the
playbook says in plain words and what the cluster then holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from shadow import run_playbook

pytestmark = pytest.mark.integration

API = "traefik.io/v1alpha1"


@pytest.fixture(scope="module")
def world(seed_world: Callable[..., Any]) -> Any:
    return seed_world(app="ops")


def seed_vars(world: Any, **extra: Any) -> dict[str, Any]:
    return {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        **extra,
    }


def said(completed: Any) -> str:
    output: str = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return output


def route_targets(kube: Any, world: Any) -> list[list[str]]:
    ir = kube.get(API, "IngressRoute", world.route, world.namespace)
    return [[service["name"] for service in route["services"]] for route in ir["spec"]["routes"]]


def mirror_percent(kube: Any, world: Any) -> int | None:
    mirror = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
    return None if mirror is None else int(mirror["spec"]["mirroring"]["mirrors"][0]["percent"])


class TestOperatorRequests:
    def test_request_1_mirror_only_reports_waiting_on_the_ingress(self, world: Any, kube: Any) -> None:
        output = said(run_playbook("mirror_enable", seed_vars(world, mirror_percent=20)))
        assert "INACTIVE" in output and "waiting on an ingress change" in output
        assert "Warning:" in output, "the module's warnings must be shown to the operator"
        assert mirror_percent(kube, world) == 20
        assert route_targets(kube, world) == [[world.wrr]], "request 1 must not repoint the ingress"

    def test_request_2_without_sign_off_is_refused(self, world: Any, kube: Any) -> None:
        completed = run_playbook("mirror_enable", seed_vars(world, mirror_percent=20, attach_to_ingress=True))
        assert completed.returncode != 0
        assert "confirm_end_weighted_split" in completed.stdout + completed.stderr
        assert route_targets(kube, world) == [[world.wrr]]

    def test_request_2_wires_the_ingress_and_explains_what_users_lose(self, world: Any, kube: Any) -> None:
        output = said(
            run_playbook(
                "mirror_enable",
                seed_vars(world, mirror_percent=20, attach_to_ingress=True, confirm_end_weighted_split=True),
            )
        )
        assert "ACTIVE" in output and "INACTIVE" not in output
        assert "50% " + world.service("stable") in output, "the old weighted split must be described"
        assert f"All user responses come from {world.service('stable')}" in output
        assert route_targets(kube, world) == [[f"{world.route}-mirror"]]

    def test_request_4_ramps_to_50_percent(self, world: Any, kube: Any) -> None:
        output = said(run_playbook("mirror_ramp", seed_vars(world, mirror_percent=50)))
        assert f"Mirroring for {world.route} in {world.namespace} went from 20% to 50%." in output
        assert mirror_percent(kube, world) == 50
        assert route_targets(kube, world) == [[f"{world.route}-mirror"]], "ramping keeps the ingress attached"

    def test_request_6_tears_down_and_restores_the_weighted_split(self, world: Any, kube: Any) -> None:
        output = said(
            run_playbook(
                "mirror_disable",
                {"route_name": world.route, "namespace": world.namespace, "restore_ingress_to_wrr": True},
            )
        )
        assert (
            f"The IngressRoute now points at TraefikService {world.wrr}, the weighted TraefikService: "
            "real split routing works again." in output
        )
        assert mirror_percent(kube, world) is None
        assert route_targets(kube, world) == [[world.wrr]]
        again = said(run_playbook("mirror_disable", {"route_name": world.route, "namespace": world.namespace}))
        assert "changed=0" in again, "a second teardown must change nothing"
