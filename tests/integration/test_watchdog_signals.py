"""The launch watchdog against the real cluster: an ``ansible-playbook`` run that attached a mirror and is
then interrupted (Ctrl-C, SIGTERM, SIGKILL) has its route restored exactly and its mirror deleted by
the watchdog, without anyone running anything; a disarmed watchdog touches nothing; no credential is
left on disk or written to the log.

Each case runs a real playbook (arm, attach with traefik_mirror, write a marker file, pause), waits for the
marker, signals ``ansible-playbook`` and watches the cluster until the route is back. The measured delay is
printed (``pytest -s``); the bound asserted is generous on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from modrun import run_module
from shadow import COLLECTIONS_ROOT, REPO_ROOT

pytestmark = pytest.mark.integration

API = "traefik.io/v1alpha1"
RESTORE_BOUND_SECONDS = 30.0
READY_TIMEOUT_SECONDS = 90.0
LAUNCH_DEADLINE = "darklaunch.traefik/launch-deadline"


def user_view(obj: dict[str, Any] | None) -> dict[str, Any]:
    """What a user wrote: spec, labels, annotations (no server bookkeeping)."""
    assert obj is not None
    meta = obj["metadata"]
    return {
        "spec": obj["spec"],
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
    }


@dataclass
class Launch:
    """A playbook run that armed the watchdog, attached the mirror and now pauses."""

    process: subprocess.Popen[str]
    marker: dict[str, Any]  # the registered results of the arm (and disarm) tasks
    world: Any
    before: dict[str, Any]  # the IngressRoute as the user wrote it, read before the playbook started

    @property
    def armed(self) -> dict[str, Any]:
        result: dict[str, Any] = self.marker["armed"]
        return result

    def output(self) -> str:
        try:
            stdout, stderr = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            stdout, stderr = self.process.communicate()
        return (stdout or "") + (stderr or "")


ARM_UNREACHABLE = """
- name: Arm against an API server nobody listens on
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Arm the watchdog
      darklaunch.traefik.launch_watchdog:
        route_name: some-route
        namespace: some-namespace
        host: https://127.0.0.1:9
        api_key: "{{ api_key }}"
        validate_certs: false
"""

PLAYBOOK = """
- name: A shadow launch that pauses in its bake
  hosts: localhost
  connection: local
  gather_facts: false
  module_defaults:
    group/darklaunch.traefik.traefik:
      kubeconfig: "{{ kubeconfig }}"
  tasks:
    - name: Arm the watchdog
      darklaunch.traefik.launch_watchdog:
        route_name: "{{ route_name }}"
        namespace: "{{ namespace }}"
        poll_seconds: 1
        grace_seconds: "{{ grace_seconds | default(60) }}"
        launch_id: "{{ launch_id }}"
      register: armed

    - name: Attach the mirror, ending the weighted split
      darklaunch.traefik.traefik_mirror:
        route_name: "{{ route_name }}"
        namespace: "{{ namespace }}"
        main_service: "{{ main_service }}"
        mirror_service: "{{ mirror_service }}"
        mirror_percent: 20
        attach_to_ingress: true
        confirm_end_weighted_split: true
        # With comparator, the record names the comparator the launch deployed (as the shadow_launch role does).
        launch: >-
          {{ {'id': launch_id, 'lease_seconds': lease_seconds | default(600) | int, 'step': 20}
             | combine({'comparator': comparator} if comparator is defined else {}) }}

    - name: Arm again when asked to (replaces the first watchdog)
      darklaunch.traefik.launch_watchdog:
        route_name: "{{ route_name }}"
        namespace: "{{ namespace }}"
        poll_seconds: 1
      register: rearmed
      when: rearm | default(false) | bool

    - name: Disarm when asked to
      darklaunch.traefik.launch_watchdog:
        route_name: "{{ route_name }}"
        namespace: "{{ namespace }}"
        state: disarmed
      register: disarmed
      when: disarm | default(false) | bool

    - name: Tell the test where we are
      ansible.builtin.copy:
        dest: "{{ marker }}"
        content: "{{ {'armed': armed, 'rearmed': rearmed, 'disarmed': disarmed} | to_json }}"
        mode: "0600"

    - name: Bake
      ansible.builtin.pause:
        seconds: "{{ bake_seconds | default(600) }}"
"""


@pytest.fixture(scope="module")
def operator_kubeconfig_dict(operator_kubeconfig: Path) -> dict[str, Any]:
    """The shadow-operator's kubeconfig as a dict: passed inline, its token goes through the config file."""
    data: dict[str, Any] = yaml.safe_load(operator_kubeconfig.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def operator_token(operator_kubeconfig_dict: dict[str, Any]) -> str:
    token: str = operator_kubeconfig_dict["users"][0]["user"]["token"]
    assert len(token) >= 16
    return token


@pytest.fixture
def launch(
    seed_world: Callable[..., Any],
    namespace: str,
    bind_operator: Callable[[str], None],
    kube: Any,
    operator_kubeconfig_dict: dict[str, Any],
    tmp_path: Path,
) -> Iterator[Callable[..., Launch]]:
    bind_operator(namespace)
    started: list[Launch] = []

    def start(app: str, **extra: Any) -> Launch:
        world = seed_world(app=app)
        before = user_view(kube.get(API, "IngressRoute", world.route, world.namespace))
        marker = tmp_path / f"{app}.marker.json"
        playbook = tmp_path / "launch.yml"
        playbook.write_text(PLAYBOOK, encoding="utf-8")
        extra_vars = {
            "kubeconfig": operator_kubeconfig_dict,
            "route_name": world.route,
            "namespace": world.namespace,
            "main_service": world.service("stable"),
            "mirror_service": world.service("canary"),
            "marker": str(marker),
            "launch_id": f"test-{app}",
            **extra,
        }
        vars_file = tmp_path / f"{app}.vars.json"
        vars_file.write_text(json.dumps(extra_vars), encoding="utf-8")
        process = subprocess.Popen(
            ["ansible-playbook", str(playbook), "-e", f"@{vars_file}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), "ANSIBLE_NOCOLOR": "1"},
            cwd=REPO_ROOT,
            # Its own process group, so the test can send the group a Ctrl-C as a terminal would.
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not marker.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                stdout, stderr = process.communicate()
                pytest.fail(f"the playbook never reached its bake:\n{stdout}\n{stderr}")
            time.sleep(0.1)
        time.sleep(0.5)  # the pause task starts right after the marker is written
        run = Launch(process, json.loads(marker.read_text(encoding="utf-8")), world, before)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.process.poll() is None:
            run.process.kill()
            run.process.communicate()


def wait_restored(kube: Any, world: Any, before: dict[str, Any], signalled_at: float) -> float:
    """Seconds from the signal until the IngressRoute is back as it was and the mirror is gone."""
    deadline = signalled_at + RESTORE_BOUND_SECONDS
    while time.monotonic() < deadline:
        route = kube.get(API, "IngressRoute", world.route, world.namespace)
        mirror = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
        if mirror is None and user_view(route) == before:
            return time.monotonic() - signalled_at
        time.sleep(0.1)
    route = kube.get(API, "IngressRoute", world.route, world.namespace)
    mirror = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
    raise AssertionError(
        f"not restored {RESTORE_BOUND_SECONDS:.0f}s after the signal: mirror "
        f"{'still exists' if mirror else 'deleted'}, route {json.dumps(user_view(route))}"
    )


def assert_attached(kube: Any, world: Any) -> None:
    route = kube.get(API, "IngressRoute", world.route, world.namespace)
    assert [s["name"] for s in route["spec"]["routes"][0]["services"]] == [f"{world.route}-mirror"]


def watchdog_files(log_path: str) -> list[Path]:
    return sorted(Path(log_path).parent.iterdir())


def read_log(run: Launch) -> str:
    return Path(run.armed["log_path"]).read_text(encoding="utf-8")


def assert_process_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"watchdog {pid} still runs")


class TestInterruptedRunIsRolledBack:
    @pytest.mark.parametrize(
        ("how", "send"),
        [
            ("ctrl-c", lambda p: os.killpg(p.pid, signal.SIGINT)),
            ("sigterm", lambda p: p.send_signal(signal.SIGTERM)),
            ("sigkill", lambda p: p.send_signal(signal.SIGKILL)),
        ],
        ids=["sigint-to-the-group", "sigterm", "sigkill"],
    )
    def test_route_restored_exactly_without_anyone_running_anything(
        self, how: str, send: Callable[[Any], None], launch: Callable[..., Launch], kube: Any
    ) -> None:
        run = launch(f"wd-{how}")
        world = run.world
        assert run.armed["armed"] is True
        assert run.armed["controller_pid"] == run.process.pid, "the watchdog must watch ansible-playbook"
        assert_attached(kube, world)
        signalled_at = time.monotonic()
        send(run.process)
        # Not reaped on purpose until the route is back: a killed ansible-playbook may linger as a zombie.
        delay = wait_restored(kube, world, run.before, signalled_at)
        print(f"\n[watchdog] {how}: route restored and mirror deleted {delay:.2f}s after the signal")
        output = run.output()
        assert run.process.returncode != 0, output
        assert "Bake" in output
        log = read_log(run)
        assert "rolling back: the ansible-playbook process that armed the watchdog is gone" in log, log
        assert "done: " in log
        assert_process_gone(run.armed["pid"])


class TestWatchdogLifecycle:
    def test_disarmed_watchdog_rolls_nothing_back_and_rearming_replaces(
        self, launch: Callable[..., Launch], kube: Any
    ) -> None:
        run = launch("wd-disarm", rearm=True, disarm=True, bake_seconds=1)
        world = run.world
        first, second = run.armed["pid"], run.marker["rearmed"]["pid"]
        assert first != second
        assert_process_gone(first)  # arming again stopped the first watchdog
        disarmed = run.marker["disarmed"]
        assert disarmed["changed"] is True and disarmed["stopped"] is True and disarmed["pid"] == second
        assert disarmed["rolled_back"] is False
        assert_process_gone(second)
        output = run.output()
        assert run.process.returncode == 0, output
        time.sleep(3)  # three polls: a watchdog still watching would have rolled back by now
        assert_attached(kube, world)
        assert kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace) is not None
        log = read_log(run)
        assert "rolling back" not in log and "done: " not in log, log
        assert "received SIGTERM: disarming" in log
        stem = Path(run.armed["log_path"]).name.removesuffix(".log")
        left = [p.name for p in Path(run.armed["log_path"]).parent.iterdir() if p.name.startswith(stem)]
        assert left == [f"{stem}.log"], "disarming removes everything but the log"
        run_module(
            "traefik_mirror",
            {"route_name": world.route, "namespace": world.namespace, "state": "absent"},
        )

    def test_no_credential_on_disk_or_in_the_log(
        self, launch: Callable[..., Launch], kube: Any, operator_token: str
    ) -> None:
        run = launch("wd-secret")
        directory = Path(run.armed["log_path"]).parent
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        stem = Path(run.armed["log_path"]).name.removesuffix(".log")
        assert not (directory / f"{stem}.json").exists(), "the config (with the kubeconfig) must be gone"
        for path in directory.iterdir():
            if path.is_file():
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} is readable by others"
                assert operator_token not in path.read_text(encoding="utf-8", errors="replace"), path
        signalled_at = time.monotonic()
        run.process.send_signal(signal.SIGTERM)
        wait_restored(kube, run.world, run.before, signalled_at)
        run.output()
        assert_process_gone(run.armed["pid"])
        log = read_log(run)
        assert "done: " in log
        assert operator_token not in log

    def test_a_stuck_run_is_rolled_back_after_its_deadline(self, launch: Callable[..., Launch], kube: Any) -> None:
        # The run writes its launch record with a 5 s lease, then "hangs" in the bake without renewing it.
        run = launch("wd-stuck", lease_seconds=5, grace_seconds=2)
        world = run.world
        mirror = kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace)
        annotations = mirror["metadata"]["annotations"]
        assert annotations["darklaunch.traefik/launch-id"] == "test-wd-stuck"
        deadline = annotations[LAUNCH_DEADLINE]
        delay = wait_restored(kube, world, run.before, time.monotonic())
        print(
            f"\n[watchdog] stuck run (deadline {deadline}, grace 2 s): rolled back, {delay:.2f}s after the check began"
        )
        assert run.process.poll() is None, "ansible-playbook is still baking: the watchdog acted on the deadline"
        log = read_log(run)
        assert "the launch record is this run's" in log, log
        assert f"rolling back: the launch record's deadline {deadline[:19]}Z passed" in log, log

    def test_arming_fails_clearly_when_the_api_server_is_unreachable(self, tmp_path: Path) -> None:
        playbook = tmp_path / "unreachable.yml"
        playbook.write_text(ARM_UNREACHABLE, encoding="utf-8")
        api_key = "not-a-real-token-0123456789abcdef"
        completed = subprocess.run(
            ["ansible-playbook", str(playbook), "-e", json.dumps({"api_key": api_key}), "-vvv"],
            capture_output=True,
            text=True,
            env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), "ANSIBLE_NOCOLOR": "1"},
            cwd=REPO_ROOT,
            timeout=120,
            check=False,
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode != 0, output
        assert "the watchdog did not start: cannot read the mirror" in output, output
        assert "127.0.0.1:9" in output
        assert api_key not in output


class TestComparatorRemovedAtRollback:
    def test_the_watchdog_removes_the_comparator_the_launch_deployed_never_a_users_own(
        self, launch: Callable[..., Launch], kube: Any
    ) -> None:
        """The launch record names the comparator the launch deployed ({route}-compare): the watchdog's rollback
        removes its ConfigMap, Deployment and Service, and only those labelled as the route's comparator, so a
        user's own Service of that name stays. Admin credentials: the shipped operator Role has no comparator rights."""
        admin = os.environ["K8S_AUTH_KUBECONFIG"]
        ours = launch("wd-cmp", kubeconfig=admin, comparator="wd-cmp-route-compare")
        theirs = launch("wd-cmp-user", kubeconfig=admin, comparator="wd-cmp-user-route-compare")
        assert (ours.world.route, theirs.world.route) == ("wd-cmp-route", "wd-cmp-user-route")
        world = ours.world
        deployed = run_module(
            "comparator",
            {
                "route_name": world.route, "namespace": world.namespace, "candidate_service": world.service("canary"),
                "primary_service": world.service("stable"), "program": "# the comparator", "wait_seconds": 0,
            },
        )  # fmt: skip
        assert [a["action"] for a in deployed["actions"]] == ["created"] * 3, deployed
        user_service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{theirs.world.route}-compare", "namespace": theirs.world.namespace},
            "spec": {"ports": [{"port": 8099}]},
        }
        kube.apply(user_service)
        signalled_at = time.monotonic()
        for run in (ours, theirs):
            run.process.send_signal(signal.SIGKILL)
        for run in (ours, theirs):
            wait_restored(kube, run.world, run.before, signalled_at)
        kinds = (("ConfigMap", "v1"), ("Deployment", "apps/v1"), ("Service", "v1"))
        deadline = time.monotonic() + RESTORE_BOUND_SECONDS
        while any(kube.get(api, kind, f"{world.route}-compare", world.namespace) for kind, api in kinds):
            assert time.monotonic() < deadline, "the watchdog left the launch's comparator"
            time.sleep(0.2)
        for run in (ours, theirs):
            run.output()
            assert_process_gone(run.armed["pid"])
        log = read_log(ours)
        assert f"done: deleted Service {world.namespace}/{world.route}-compare (the launch's comparator)" in log, log
        kept = kube.get("v1", "Service", f"{theirs.world.route}-compare", theirs.world.namespace)
        assert kept is not None and kept["spec"]["ports"][0]["port"] == 8099
        log = read_log(theirs)
        assert "is not a comparator this collection deployed" in log and "left as it is" in log, log
