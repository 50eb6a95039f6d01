"""Pause, resume and abort a running launch on the real cluster, as an operator does: through
playbooks/shadow_pause.yml, shadow_resume.yml and shadow_abort.yml (and once through the AWX job template),
checking the annotations on the real mirror TraefikService after each command, that a repeated command
writes nothing, that the launch's own renewal keeps the command, and that a route without a running launch
(no mirror, a mirror without a record, an abandoned launch) is refused with no write at all.

The launch itself is simulated by traefik_mirror's ``launch`` option, which writes and renews the record
exactly as the launch does; what the launch engine then does with the command is its own tests' business.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from awx_engine import job_template, run_job, survey_extra_vars
from dlcluster.kube import object_path
from modrun import run_module
from shadow import run_playbook

pytestmark = pytest.mark.integration

API = "traefik.io/v1alpha1"
CONTROL = "darklaunch.traefik/control"
CONTROL_BY = "darklaunch.traefik/control-by"
CONTROL_AT = "darklaunch.traefik/control-at"
USER_ANNOTATION = "team.example.com/pager"
OWNER = "launcher@ci pid 77 via ansible-playbook"
KUBECONFIG_CREDENTIAL = "Kubeconfig file (darklaunch.traefik)"


@pytest.fixture(scope="module")
def world(seed_world: Callable[..., Any]) -> Any:
    return seed_world(app="ctl")


def mirror_args(world: Any, **extra: Any) -> dict[str, Any]:
    return {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "mirror_percent": 20,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        **extra,
    }


def record_launch(world: Any, launch_id: str, lease_seconds: int = 600) -> dict[str, Any]:
    """What the launch does at every check: write or renew its record on the mirror."""
    launch = {"id": launch_id, "owner": OWNER, "step": 20, "lease_seconds": lease_seconds}
    result = run_module("traefik_mirror", mirror_args(world, launch=launch))
    assert not result.get("failed"), result
    return result


def mirror_of(kube: Any, world: Any) -> dict[str, Any]:
    found: dict[str, Any] | None = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
    assert found is not None
    return found


def annotations(kube: Any, world: Any) -> dict[str, str]:
    return dict(mirror_of(kube, world)["metadata"].get("annotations") or {})


def control(kube: Any, world: Any) -> dict[str, str]:
    return {key: value for key, value in annotations(kube, world).items() if key in (CONTROL, CONTROL_BY, CONTROL_AT)}


def versions(kube: Any, namespace: str) -> dict[tuple[str, str], str]:
    """The resourceVersion of every object the collection could write in the namespace."""
    found = {}
    for api, kind in ((API, "TraefikService"), (API, "IngressRoute"), ("v1", "Service")):
        for obj in kube.list(api, kind, namespace):
            found[(kind, obj["metadata"]["name"])] = obj["metadata"]["resourceVersion"]
    return found


def said(completed: Any) -> str:
    output: str = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return output


def refused(completed: Any) -> str:
    output: str = completed.stdout + completed.stderr
    assert completed.returncode != 0, output
    return output


def route_vars(world: Any, **extra: Any) -> dict[str, Any]:
    """The playbooks' extra vars for the world's route."""
    return {"route_name": world.route, "route_namespace": world.namespace, **extra}


def module_args(world: Any, **extra: Any) -> dict[str, Any]:
    """launch_control's arguments for the world's route."""
    return {"route_name": world.route, "namespace": world.namespace, **extra}


class TestPauseResumeAbort:
    saved: ClassVar[dict[str, Any]] = {}

    def test_a_running_launch_with_a_user_annotation(self, world: Any, kube: Any) -> None:
        record_launch(world, "ctl-run-1")
        path = object_path(API, "TraefikService", world.namespace, f"{world.route}-mirror")
        kube.request("PATCH", path, {"metadata": {"annotations": {USER_ANNOTATION: "payments-oncall"}}},
                     content_type="application/merge-patch+json")  # fmt: skip
        mirror = mirror_of(kube, world)
        TestPauseResumeAbort.saved["spec"] = mirror["spec"]
        TestPauseResumeAbort.saved["labels"] = mirror["metadata"].get("labels") or {}
        assert annotations(kube, world)["darklaunch.traefik/launch-id"] == "ctl-run-1"
        assert control(kube, world) == {}

    def test_check_mode_writes_nothing(self, world: Any, kube: Any) -> None:
        before = versions(kube, world.namespace)
        result = run_module("launch_control", module_args(world, command="pause", by="t"), check=True, diff=True)
        assert result["changed"] is True and "would be paused" in result["msg"], result
        assert result["diff"]["after"]["annotations"][CONTROL] == "paused"
        assert versions(kube, world.namespace) == before

    def test_pause_writes_the_command_and_who_gave_it(self, world: Any, kube: Any) -> None:
        output = said(run_playbook("shadow_pause", route_vars(world)))
        assert (
            f"Launch ctl-run-1 (owner {OWNER}) on {world.namespace}/{world.route} is paused: from its next check it "
            "holds step 20% and keeps judging until resumed." in output.replace("\n", " ")
        ), output
        now = control(kube, world)
        assert now[CONTROL] == "paused"
        user = os.environ.get("USER") or "unknown user"  # the playbook's lookup('env', 'USER')
        assert now[CONTROL_BY].startswith(f"{user}@") and now[CONTROL_BY].endswith(" via ansible-playbook")
        assert now[CONTROL_AT].endswith("Z")
        kept = annotations(kube, world)
        assert kept[USER_ANNOTATION] == "payments-oncall" and kept["darklaunch.traefik/launch-id"] == "ctl-run-1"
        mirror = mirror_of(kube, world)
        assert mirror["spec"] == self.saved["spec"] and (mirror["metadata"].get("labels") or {}) == self.saved["labels"]

    def test_pausing_again_writes_nothing(self, world: Any, kube: Any) -> None:
        before = versions(kube, world.namespace)
        output = said(run_playbook("shadow_pause", route_vars(world)))
        assert "was already paused by" in output and "changed=0" in output, output
        assert versions(kube, world.namespace) == before

    def test_the_launch_renewing_its_record_keeps_the_pause(self, world: Any, kube: Any) -> None:
        paused = control(kube, world)
        record_launch(world, "ctl-run-1")
        assert control(kube, world) == paused

    def test_resume_removes_the_command(self, world: Any, kube: Any) -> None:
        output = said(run_playbook("shadow_resume", route_vars(world)))
        assert "is resumed: from its next check it carries on from step 20%" in output.replace("\n", " "), output
        assert control(kube, world) == {}
        assert annotations(kube, world)[USER_ANNOTATION] == "payments-oncall"

    def test_resuming_a_running_launch_writes_nothing(self, world: Any, kube: Any) -> None:
        before = versions(kube, world.namespace)
        output = said(run_playbook("shadow_resume", route_vars(world)))
        assert "nothing to resume" in output and "changed=0" in output, output
        assert versions(kube, world.namespace) == before

    def test_abort_of_a_paused_launch(self, world: Any, kube: Any) -> None:
        said(run_playbook("shadow_pause", route_vars(world)))
        output = said(run_playbook("shadow_abort", route_vars(world)))
        assert "is being aborted: at its next check it rolls the route back and ends" in output.replace("\n", " ")
        assert control(kube, world)[CONTROL] == "aborted"

    def test_pause_and_resume_of_an_aborted_launch_are_refused_without_a_write(self, world: Any, kube: Any) -> None:
        before = versions(kube, world.namespace)
        for playbook in ("shadow_pause", "shadow_resume"):
            output = refused(run_playbook(playbook, route_vars(world)))
            assert "already being aborted" in output, output
        again = said(run_playbook("shadow_abort", route_vars(world)))
        assert "was already being aborted" in again and "changed=0" in again, again
        assert versions(kube, world.namespace) == before
        assert control(kube, world)[CONTROL] == "aborted"


def test_the_awx_template_pauses_as_the_operator_and_names_the_job(
    seed_world: Callable[..., Any],
    bind_operator: Callable[[str], None],
    operator_kubeconfig: Path,
    kube: Any,
    tmp_path: Path,
) -> None:
    world = seed_world(app="ctlawx")
    bind_operator(world.namespace)
    record_launch(world, "ctl-awx-1")
    template = job_template("Shadow - pause launch")
    extra_vars = survey_extra_vars(template.survey, {"route_name": world.route, "route_namespace": world.namespace})

    job = run_job(template, extra_vars, [(KUBECONFIG_CREDENTIAL, {"kubeconfig": operator_kubeconfig.read_text()})],
                  tmp_path)  # fmt: skip

    assert job.status == "successful", job.stdout[-3000:]
    assert "is paused" in job.stdout
    now = control(kube, world)
    assert now[CONTROL] == "paused"
    assert now[CONTROL_BY].startswith("AWX job ") and now[CONTROL_BY].endswith("(Shadow - pause launch)"), now


# --- refusals: nothing is written ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet_world(seed_world: Callable[..., Any]) -> Any:
    return seed_world(app="ctlnone")


@pytest.mark.parametrize("playbook", ["shadow_pause", "shadow_resume", "shadow_abort"])
def test_a_route_without_a_mirror_is_refused_with_no_write(playbook: str, quiet_world: Any, kube: Any) -> None:
    before = versions(kube, quiet_world.namespace)
    output = refused(run_playbook(playbook, route_vars(quiet_world)))
    assert "No launch is running on route " + quiet_world.route in output, output
    assert f"there is no mirror TraefikService {quiet_world.route}-mirror" in output.replace("\n", " "), output
    assert versions(kube, quiet_world.namespace) == before


def test_a_mirror_without_a_launch_record_is_refused_with_no_write(quiet_world: Any, kube: Any) -> None:
    result = run_module("traefik_mirror", mirror_args(quiet_world))
    assert not result.get("failed"), result
    before = versions(kube, quiet_world.namespace)
    for playbook in ("shadow_pause", "shadow_resume", "shadow_abort"):
        output = refused(run_playbook(playbook, route_vars(quiet_world)))
        assert "has no launch record" in output, output
    assert versions(kube, quiet_world.namespace) == before


def test_an_abandoned_launch_is_refused_with_the_rollback_command(quiet_world: Any, kube: Any) -> None:
    record_launch(quiet_world, "ctl-gone-1", lease_seconds=1)
    time.sleep(2.2)  # nobody renews it: the deadline passes
    before = versions(kube, quiet_world.namespace)
    result = run_module("launch_control", module_args(quiet_world, command="abort"))
    assert result.get("failed") and result["field"] == "route_name", result
    assert "abandoned" in result["msg"] and OWNER in result["msg"]
    # The module was given the kubeconfig: the command names it and the context it used.
    kubeconfig = os.environ["K8S_AUTH_KUBECONFIG"]
    result = run_module("launch_control", {**module_args(quiet_world, command="abort"), "kubeconfig": kubeconfig})
    assert result.get("failed") and result["field"] == "route_name", result
    context = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8"))["current-context"]
    assert result["rollback_command"] == (
        f"ansible-playbook darklaunch.traefik.mirror_disable -e route_name={quiet_world.route} "
        f"-e route_namespace={quiet_world.namespace} -e {shlex.quote('kubeconfig=' + kubeconfig)} -e context={context} "
        "-e restore_ingress_to_wrr=true"
    )
    assert result["msg"].endswith("Roll it back with: " + result["rollback_command"])
    output = refused(run_playbook("shadow_pause", route_vars(quiet_world)))
    assert "abandoned" in output and "mirror_disable" in output
    assert versions(kube, quiet_world.namespace) == before


@pytest.mark.parametrize(
    ("extra_vars", "words"),
    [
        ({}, ("route_name",)),
        ({"route_name": ""}, ("route_name",)),
        ({"route_name": "Not_A_Name"}, ("route_name",)),
        ({"route_namespace": "Bad/NS"}, ("namespace",)),
        ({"mirror_name": "UPPER"}, ("mirror_name",)),
    ],
    ids=["no-route", "empty-route", "bad-route", "bad-namespace", "bad-mirror-name"],
)
def test_bad_input_is_refused_naming_the_variable(
    extra_vars: dict[str, Any], words: tuple[str, ...], world: Any, kube: Any
) -> None:
    base = {} if "route_name" in extra_vars or not extra_vars else {"route_name": world.route}
    before = versions(kube, world.namespace)
    output = refused(run_playbook("shadow_pause", {"route_namespace": world.namespace, **base, **extra_vars}))
    assert all(word in output for word in words), output
    assert versions(kube, world.namespace) == before
