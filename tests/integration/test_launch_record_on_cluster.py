"""The launch-in-progress record on the real cluster: traefik_mirror's ``launch`` option writes it on the
mirror TraefikService, every call renews its deadline, and once nobody renews it traefik_traffic_info,
the ``traffic`` lookup and shadow_status.yml report the launch as abandoned with the command that rolls
it back - which is then run, as printed, and restores the IngressRoute exactly.

Also: a launch resumed after an interruption never records the mirror-routed IngressRoute as "the
original", so disabling restores the IngressRoute of before the first launch.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from modrun import run_module
from routes import user_part
from shadow import COLLECTIONS_ROOT, run_playbook, wait_mirror_live

pytestmark = pytest.mark.integration

API = "traefik.io/v1alpha1"
PREFIX = "darklaunch.traefik/launch-"
PRE_MIRROR = "darklaunch.traefik/pre-mirror-services"
OWNER = "tester@ci pid 4242 via ansible-playbook"


@pytest.fixture(scope="module")
def world(seed_world: Any) -> Any:
    return seed_world(app="launchrec")


def mirror_args(world: Any, percent: int, **extra: Any) -> dict[str, Any]:
    return {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "mirror_percent": percent,
        **extra,
    }


def launch(launch_id: str, step: int, lease_seconds: int = 300, **extra: Any) -> dict[str, Any]:
    return {"id": launch_id, "owner": OWNER, "step": step, "lease_seconds": lease_seconds, **extra}


def mirror_object(kube: Any, world: Any) -> dict[str, Any] | None:
    found: dict[str, Any] | None = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
    return found


def record_on_cluster(kube: Any, world: Any) -> dict[str, str]:
    mirror = mirror_object(kube, world)
    assert mirror is not None
    annotations = mirror["metadata"].get("annotations") or {}
    return {key[len(PREFIX) :]: value for key, value in annotations.items() if key.startswith(PREFIX)}


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def ingress_route(kube: Any, world: Any) -> dict[str, Any]:
    found: dict[str, Any] = kube.get(API, "IngressRoute", world.route, world.namespace)
    return found


def ansible_env() -> dict[str, str]:
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), "ANSIBLE_NOCOLOR": "1"}


def current_context() -> str:
    """The context the modules use here: the current one of the session's kubeconfig."""
    config = yaml.safe_load(Path(os.environ["K8S_AUTH_KUBECONFIG"]).read_text(encoding="utf-8"))
    return str(config["current-context"])


def kubeconfig_now_elsewhere(directory: Path) -> Path:
    """The session's kubeconfig whose current context has moved to another (unreachable) cluster since."""
    config = yaml.safe_load(Path(os.environ["K8S_AUTH_KUBECONFIG"]).read_text(encoding="utf-8"))
    user = config["contexts"][0]["context"]["user"]
    config["clusters"].append({"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:9"}})
    config["contexts"].append({"name": "elsewhere", "context": {"cluster": "elsewhere", "user": user}})
    config["current-context"] = "elsewhere"
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def ok(completed: subprocess.CompletedProcess[str]) -> str:
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return output


class TestLaunchRecord:
    saved: ClassVar[dict[str, Any]] = {}

    def test_the_record_is_written_with_the_mirror(self, world: Any, kube: Any, traefik_api_get: Any) -> None:
        TestLaunchRecord.saved["ir_before"] = user_part(ingress_route(kube, world))
        before = datetime.now(timezone.utc)
        args = mirror_args(
            world, 20, attach_to_ingress=True, confirm_end_weighted_split=True, launch=launch("run-1", 20)
        )
        result = run_module("traefik_mirror", args)
        after = datetime.now(timezone.utc)
        assert not result.get("failed"), result
        # One write for the mirror (spec + record), one for the IngressRoute.
        assert [(a["verb"], a["kind"]) for a in result["actions"]] == [
            ("create", "TraefikService"),
            ("patch", "IngressRoute"),
        ]
        record = record_on_cluster(kube, world)
        assert set(record) == {"id", "owner", "route", "started", "step", "deadline", "renewed"}
        assert (record["id"], record["owner"], record["route"], record["step"]) == ("run-1", OWNER, world.route, "20")
        assert record["started"] == record["renewed"]
        assert before - timedelta(seconds=1) <= parse(record["started"]) <= after + timedelta(seconds=1)
        assert parse(record["deadline"]) == parse(record["renewed"]) + timedelta(seconds=300)
        assert result["launch"] == {**record, "step": 20, "progress": None, "comparator": None}
        wait_mirror_live(traefik_api_get, world, percent=20)

    def test_check_mode_plans_the_renewal_without_writing(self, world: Any, kube: Any, audit: Any) -> None:
        record = record_on_cluster(kube, world)
        mark = audit.mark()
        args = mirror_args(world, 20, attach_to_ingress=True, launch=launch("run-1", 20))
        planned = run_module("traefik_mirror", args, check=True)
        assert planned["changed"] is True and planned["launch"]["id"] == "run-1"
        assert parse(planned["launch"]["deadline"]) > parse(record["deadline"])
        assert audit.writes_since(mark, namespace=world.namespace) == []
        assert record_on_cluster(kube, world) == record

    def test_renewal_moves_the_deadline_and_keeps_the_rest(self, world: Any, kube: Any, traefik_api_get: Any) -> None:
        # Someone else's annotation and label on the mirror must survive every renewal.
        mirror = mirror_object(kube, world)
        assert mirror is not None
        kube.request(
            "PATCH",
            f"/apis/traefik.io/v1alpha1/namespaces/{world.namespace}/traefikservices/{world.route}-mirror",
            {"metadata": {"annotations": {"team.example.com/pager": "payments"}, "labels": {"team": "payments"}}},
            content_type="application/merge-patch+json",
        )
        first = record_on_cluster(kube, world)
        time.sleep(1.1)
        args = mirror_args(world, 50, attach_to_ingress=True, launch=launch("run-1", 50))
        result = run_module("traefik_mirror", args)
        assert result["changed"] is True
        assert [(a["verb"], a["kind"]) for a in result["actions"]] == [("patch", "TraefikService")]
        renewed = record_on_cluster(kube, world)
        assert renewed["started"] == first["started"], "the same launch keeps its start"
        assert parse(renewed["deadline"]) >= parse(first["deadline"]) + timedelta(seconds=1)
        assert renewed["step"] == "50"
        mirror = mirror_object(kube, world)
        assert mirror is not None
        assert mirror["metadata"]["annotations"]["team.example.com/pager"] == "payments"
        assert mirror["metadata"]["labels"]["team"] == "payments"
        assert mirror["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "darklaunch.traefik"
        wait_mirror_live(traefik_api_get, world, percent=50)

    def test_a_live_launch_is_running_in_status(self, world: Any) -> None:
        info = run_module("traefik_traffic_info", {"namespace": world.namespace})
        (mirror,) = [m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror"]
        assert mirror["launch"]["abandoned"] is False
        assert info["abandoned_launches"] == []
        output = ok(run_playbook("shadow_status", {"route_namespace": world.namespace}))
        assert f"RUNNING: launch run-1 on route {world.route} in {world.namespace}, started by {OWNER}" in output
        assert "at step 50%" in output
        assert "ABANDONED" not in output

    def test_an_expired_record_is_reported_abandoned_everywhere(self, world: Any, kube: Any) -> None:
        # The last renewal of a launch that is then killed: nobody renews the 1 s lease.
        args = mirror_args(world, 50, attach_to_ingress=True, launch=launch("run-1", 50, lease_seconds=1))
        assert run_module("traefik_mirror", args)["changed"] is True
        record = record_on_cluster(kube, world)
        time.sleep(2.2)
        # The context the launch was read through is named: the command reaches this cluster whatever the
        # kubeconfig's current context is when it is run.
        command = (
            f"ansible-playbook darklaunch.traefik.mirror_disable -e route_name={world.route} "
            f"-e route_namespace={world.namespace} -e context={current_context()} -e restore_ingress_to_wrr=true"
        )
        message_start = f"Launch run-1 started by {OWNER} at {record['started']} stopped renewing its deadline "
        message_end = (
            "at step 50%: it was abandoned (interrupted or killed). The route still sends copies to the shadow. "
            f"Roll it back with: {command}"
        )

        info = run_module("traefik_traffic_info", {"namespace": world.namespace})
        (abandoned,) = info["abandoned_launches"]
        assert (abandoned["mirror"], abandoned["namespace"], abandoned["id"]) == (
            f"{world.route}-mirror",
            world.namespace,
            "run-1",
        )
        assert abandoned["abandoned"] is True and abandoned["seconds_past_deadline"] >= 1
        assert abandoned["rollback_command"] == command
        assert abandoned["message"].startswith(message_start) and abandoned["message"].endswith(message_end)
        (mirror,) = [m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror"]
        assert mirror["launch"] == {k: v for k, v in abandoned.items() if k not in ("mirror", "namespace")}

        # The lookup, from a playbook as users call it.
        with tempfile.TemporaryDirectory() as tmp:
            playbook = Path(tmp) / "lookup.yml"
            playbook.write_text(
                "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                "    - ansible.builtin.debug:\n"
                "        msg: \"LOOKUP={{ lookup('darklaunch.traefik.traffic', 'routes', namespace=ns)"
                '.abandoned_launches | to_json }}"\n'
            )
            output = ok(
                subprocess.run(
                    ["ansible-playbook", str(playbook), "-e", json.dumps({"ns": world.namespace})],
                    capture_output=True,
                    text=True,
                    env=ansible_env(),
                    cwd=tmp,
                    timeout=120,
                    check=False,
                )
            )
        found = json.loads(json.loads(output.split('"msg": ', 1)[1].split("\n", 1)[0])[len("LOOKUP=") :])
        assert [(a["id"], a["abandoned"], a["rollback_command"]) for a in found] == [("run-1", True, command)]
        assert found[0]["message"].startswith(message_start)

        output = ok(run_playbook("shadow_status", {"route_namespace": world.namespace}))
        assert f"ABANDONED: {message_start}" in output
        assert command in output
        assert "RUNNING:" not in output
        TestLaunchRecord.saved["command"] = command

    def test_the_printed_command_rolls_the_launch_back_exactly(
        self, world: Any, kube: Any, traffic: Any, wait_for_router: Any
    ) -> None:
        command = TestLaunchRecord.saved["command"]
        # Run as printed, from an unrelated directory (the playbook is found by its FQCN), after the
        # kubeconfig's current context has moved to another cluster: the command names its own.
        with tempfile.TemporaryDirectory() as tmp:
            ok(
                subprocess.run(
                    shlex.split(command),
                    capture_output=True,
                    text=True,
                    env={**ansible_env(), "K8S_AUTH_KUBECONFIG": str(kubeconfig_now_elsewhere(Path(tmp)))},
                    cwd=tmp,
                    timeout=180,
                    check=False,
                )
            )
        assert user_part(ingress_route(kube, world)) == TestLaunchRecord.saved["ir_before"]
        assert mirror_object(kube, world) is None
        # Real users are split 50/50 again and the shadow gets no more copies.
        wait_for_router(world.namespace, world.route)
        deadline = time.monotonic() + 30
        while True:
            world.reset_backends()
            result = traffic(world.host, n=200)
            if result.by_status == {200: 200} and world.counts()["stable"] < 200:
                break
            assert time.monotonic() < deadline, result.by_status
            time.sleep(0.5)
        counts = world.counts()
        assert counts["stable"] + counts["canary"] == 200, counts
        assert 60 <= counts["canary"] <= 140, counts
        info = run_module("traefik_traffic_info", {"namespace": world.namespace})
        assert info["abandoned_launches"] == []


# --- resuming an interrupted launch ------------------------------------------------------------------


def test_a_resumed_launch_keeps_the_true_original_and_disable_restores_it(
    seed_world: Any, kube: Any, traefik_api_get: Any
) -> None:
    w = seed_world(app="resume")
    original = user_part(ingress_route(kube, w))
    attach = {"attach_to_ingress": True, "confirm_end_weighted_split": True}

    # 1. Interrupted between its two writes: the mirror exists, the IngressRoute is untouched.
    partial = run_module("traefik_mirror", mirror_args(w, 20, launch=launch("run-1", 20)))
    assert not partial.get("failed"), partial
    assert user_part(ingress_route(kube, w)) == original

    # 2. Run again (a new launch id): attaches, saving the true original.
    second = run_module("traefik_mirror", mirror_args(w, 20, launch=launch("run-2", 20), **attach))
    assert not second.get("failed"), second
    assert any("takes it over" in warning or "replaces that record" in warning for warning in second["warnings"])
    saved = ingress_route(kube, w)["metadata"]["annotations"][PRE_MIRROR]
    assert json.loads(saved) == {"0": original["spec"]["routes"][0]["services"]}
    wait_mirror_live(traefik_api_get, w, percent=20)

    # 3. Interrupted again after attach, and someone put the weighted service back beside the mirror.
    ir = ingress_route(kube, w)
    services = ir["spec"]["routes"][0]["services"] + [{"name": w.wrr, "kind": "TraefikService"}]
    kube.request(
        "PATCH",
        f"/apis/traefik.io/v1alpha1/namespaces/{w.namespace}/ingressroutes/{w.route}",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": ir["metadata"]["resourceVersion"]},
            {"op": "replace", "path": "/spec/routes/0/services", "value": services},
        ],
        content_type="application/json-patch+json",
    )

    # 4. Resumed: the saved original is unchanged, the route goes through the mirror only.
    third = run_module("traefik_mirror", mirror_args(w, 50, launch=launch("run-3", 50), **attach))
    assert not third.get("failed"), third
    resumed = ingress_route(kube, w)
    assert resumed["metadata"]["annotations"][PRE_MIRROR] == saved
    assert {s["name"] for s in resumed["spec"]["routes"][0]["services"]} == {f"{w.route}-mirror"}

    # 5. Disable restores the IngressRoute of before the first launch, exactly.
    disabled = run_module("traefik_mirror", {"route_name": w.route, "namespace": w.namespace, "state": "absent"})
    assert not disabled.get("failed"), disabled
    assert user_part(ingress_route(kube, w)) == original
    assert mirror_object(kube, w) is None
