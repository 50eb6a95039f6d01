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
        "route_namespace": world.namespace,
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
        assert "[WARNING]:" in output, "the module's warnings must be shown to the operator"
        assert output.count("happens for real") == 1, "the side-effects warning is said once per run"
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
        assert "50% from " + world.service("stable") in output, "the old weighted split must be described"
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
                {"route_name": world.route, "route_namespace": world.namespace, "restore_ingress_to_wrr": True},
            )
        )
        assert (
            f"The IngressRoute now points at TraefikService {world.wrr}, the weighted TraefikService: "
            "real split routing works again." in output
        )
        assert mirror_percent(kube, world) is None
        assert route_targets(kube, world) == [[world.wrr]]
        again = said(run_playbook("mirror_disable", {"route_name": world.route, "route_namespace": world.namespace}))
        assert "changed=0" in again, "a second teardown must change nothing"


# --- survey and extra-var text, read with the module's and the lookup's rules --------------------------


@pytest.fixture(scope="module")
def text_world(seed_world: Callable[..., Any]) -> Any:
    return seed_world(app="opstext")


def launch_vars(world: Any, **extra: Any) -> dict[str, Any]:
    return {
        **seed_vars(world),
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        "anomaly_gate": False,
        "bake_seconds": 0,
        "teardown": True,
        "report": False,
        **extra,
    }


class TestLaunchInputsAsText:
    """The role once refused ``steps: "[20, 50]"`` and windows such as ``1h30m`` that the module and the
    lookup accept; it now reads them with their code."""

    def test_steps_and_window_as_survey_text_run_the_whole_launch(self, text_world: Any, kube: Any) -> None:
        output = said(run_playbook("shadow_launch", launch_vars(text_world, steps="[20, 50]", window="1h30m")))
        assert "Step 20%: gate off." in output and "Step 50%: gate off." in output
        assert mirror_percent(kube, text_world) is None
        assert route_targets(kube, text_world) == [[text_world.wrr]]

    @pytest.mark.parametrize(
        ("extra", "words"),
        [
            ({"steps": "20,150"}, "shadow_launch_steps[1] must be a whole number from 1 to 100; got 150."),
            ({"steps": "[20,"}, "-e steps=20,50"),
            ({"window": "1h30x"}, "shadow_launch_window '1h30x' is not a Prometheus duration"),
            ({"history_windows": 1}, "shadow_launch_history_windows must be an integer between 2 and"),
        ],
    )
    def test_bad_text_is_refused_before_any_change_naming_the_variable(
        self, text_world: Any, kube: Any, extra: dict[str, Any], words: str
    ) -> None:
        before = kube.get(API, "IngressRoute", text_world.route, text_world.namespace)
        completed = run_playbook("shadow_launch", launch_vars(text_world, **extra))
        assert completed.returncode != 0
        assert words in completed.stdout + completed.stderr
        after = kube.get(API, "IngressRoute", text_world.route, text_world.namespace)
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert mirror_percent(kube, text_world) is None

    def test_a_bad_percent_gets_the_modules_own_answer(self, text_world: Any) -> None:
        completed = run_playbook("mirror_enable", seed_vars(text_world, mirror_percent=0))
        assert completed.returncode != 0
        assert "mirror_percent must be a whole number from 1 to 100; got 0." in completed.stdout + completed.stderr
