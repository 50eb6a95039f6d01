# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch watchdog's decisions (pure), its process bookkeeping, and its loop with a fake cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils import _watchdog_process
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_control import collections_root
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_decision import (
    MirrorSeen,
    Observation,
    Policy,
    Verdict,
    decide,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_files import (
    ProcessId,
    process_alive,
    read_json,
    route_files,
    state_dir,
    write_private_json,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
ARMED_AT = NOW - timedelta(minutes=10)
GRACE = Policy(grace_seconds=60, armed_at=ARMED_AT)
NO_GRACE = Policy(grace_seconds=0, armed_at=ARMED_AT)
OURS = Policy(grace_seconds=60, armed_at=ARMED_AT, launch_id="ours")


def look(**changes: Any) -> Observation:
    values: dict[str, Any] = {
        "now": NOW,
        "controller_alive": True,
        "disarmed": False,
        "mirror": MirrorSeen.PRESENT,
        "mirror_seen_before": True,
        "deadline": None,
    }
    values.update(changes)
    return Observation(**values)


# --- decide ------------------------------------------------------------------------------------------


class TestDecide:
    def test_keeps_watching_a_live_run(self) -> None:
        assert decide(look(), GRACE).verdict is Verdict.WATCH

    def test_rolls_back_when_the_controller_is_gone(self) -> None:
        decision = decide(look(controller_alive=False), GRACE)
        assert decision.verdict is Verdict.ROLL_BACK
        assert "ansible-playbook" in decision.reason

    @pytest.mark.parametrize("mirror", list(MirrorSeen))
    def test_controller_gone_rolls_back_whatever_the_mirror_looked_like(self, mirror: MirrorSeen) -> None:
        # Even before the mirror was seen: the run may have died between create and the next look.
        for seen_before in (False, True):
            if mirror is MirrorSeen.ABSENT and seen_before:
                continue  # the previous look already left
            observation = look(controller_alive=False, mirror=mirror, mirror_seen_before=seen_before)
            assert decide(observation, GRACE).verdict is Verdict.ROLL_BACK

    def test_controller_gone_rolls_back_even_when_another_launch_renewed_the_record(self) -> None:
        # Only what the watchdog saw while the controller lived counts: a takeover seen too late does not.
        observation = look(controller_alive=False, record_id="theirs", own_record_seen_before=True)
        assert decide(observation, OURS).verdict is Verdict.ROLL_BACK

    def test_disarm_wins_over_everything(self) -> None:
        overdue = NOW - timedelta(seconds=1)
        decision = decide(look(disarmed=True, controller_alive=False, deadline=overdue), NO_GRACE)
        assert decision.verdict is Verdict.LEAVE

    def test_leaves_when_the_mirror_it_saw_was_deleted(self) -> None:
        assert decide(look(mirror=MirrorSeen.ABSENT), GRACE).verdict is Verdict.LEAVE

    def test_waits_for_a_mirror_not_created_yet(self) -> None:
        # Armed before the first change: no mirror yet is not "someone tore it down".
        observation = look(mirror=MirrorSeen.ABSENT, mirror_seen_before=False)
        assert decide(observation, GRACE).verdict is Verdict.WATCH

    def test_an_unreadable_mirror_is_no_reason_to_act(self) -> None:
        observation = look(mirror=MirrorSeen.UNKNOWN, deadline=NOW - timedelta(seconds=1))
        assert decide(observation, NO_GRACE).verdict is Verdict.WATCH

    def test_deadline_within_grace_keeps_watching(self) -> None:
        assert decide(look(deadline=NOW - timedelta(seconds=59)), GRACE).verdict is Verdict.WATCH
        assert decide(look(deadline=NOW + timedelta(seconds=30)), NO_GRACE).verdict is Verdict.WATCH

    def test_deadline_past_grace_rolls_back_a_stuck_run(self) -> None:
        decision = decide(look(deadline=NOW - timedelta(seconds=61)), GRACE)
        assert decision.verdict is Verdict.ROLL_BACK
        assert "2024-05-01T11:58:59Z" in decision.reason and "61s ago" in decision.reason

    def test_a_stale_deadline_from_an_earlier_run_is_not_ours(self) -> None:
        # Rerun after an interruption: the old record is long overdue until this run's first write renews it.
        stale = look(record_id="earlier", deadline=ARMED_AT - timedelta(minutes=5))
        assert decide(stale, NO_GRACE).verdict is Verdict.WATCH
        assert decide(stale, Policy(0, ARMED_AT, launch_id="ours")).verdict is Verdict.WATCH

    def test_with_a_launch_id_only_that_record_counts(self) -> None:
        overdue = NOW - timedelta(seconds=61)
        assert decide(look(record_id="ours", deadline=overdue), OURS).verdict is Verdict.ROLL_BACK
        # Not yet ours (the run has not written its record yet): a recent foreign deadline is ignored too.
        assert decide(look(record_id="earlier", deadline=overdue), OURS).verdict is Verdict.WATCH

    def test_a_run_that_took_the_record_over_is_left_alone(self) -> None:
        observation = look(record_id="theirs", deadline=NOW + timedelta(minutes=1), own_record_seen_before=True)
        decision = decide(observation, OURS)
        assert decision.verdict is Verdict.LEAVE
        assert "launch theirs took the route over from launch ours" in decision.reason

    def test_a_finished_record_is_no_takeover(self) -> None:
        # The record is removed when a launch finishes; only the controller's exit matters then.
        observation = look(record_id=None, own_record_seen_before=True)
        assert decide(observation, OURS).verdict is Verdict.WATCH


# --- files and processes ----------------------------------------------------------------------------


class TestFiles:
    def test_private_directory_and_files(self, tmp_path: Path) -> None:
        directory = state_dir(str(tmp_path))
        assert directory.stat().st_mode & 0o777 == 0o700
        files = route_files(directory, "production", "api-route", "https://k8s:6443")
        write_private_json(files.config, {"api_key": "x"})
        assert files.config.stat().st_mode & 0o777 == 0o600
        assert read_json(files.config) == {"api_key": "x"}

    def test_a_directory_others_can_write_is_refused(self, tmp_path: Path) -> None:
        planted = tmp_path / f"darklaunch-watchdog-{os.getuid()}"
        planted.mkdir(mode=0o777)
        planted.chmod(0o777)
        with pytest.raises(DarklaunchError, match="mode 0700"):
            state_dir(str(tmp_path))

    def test_same_route_in_two_clusters_gets_two_sets_of_files(self, tmp_path: Path) -> None:
        one = route_files(tmp_path, "production", "api-route", "https://a:6443")
        two = route_files(tmp_path, "production", "api-route", "https://b:6443/")
        assert one.pid != two.pid
        assert one.pid.name.startswith("production.api-route.")

    @pytest.mark.parametrize(
        ("field", "namespace", "route"), [("namespace", "../etc", "r"), ("route_name", "ns", "a/b")]
    )
    def test_names_that_are_not_kubernetes_names_are_refused(
        self, tmp_path: Path, field: str, namespace: str, route: str
    ) -> None:
        with pytest.raises(DarklaunchError) as raised:
            route_files(tmp_path, namespace, route, "https://k8s:6443")
        assert raised.value.field == field

    def test_collections_root_keeps_symlinks(self) -> None:
        plugin = "/x/collections/ansible_collections/darklaunch/traefik/plugins/action/launch_watchdog.py"
        assert collections_root(plugin) == "/x/collections"


class TestProcessAlive:
    def test_running_killed_zombie_and_reused(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            me = ProcessId.of(child.pid)
            assert process_alive(me)
            if me.start_ticks is not None:
                # Same PID, another start time: a different process that got the PID later.
                assert not process_alive(ProcessId(child.pid, me.start_ticks + 1))
            child.kill()
            # Not reaped yet: a zombie, which is gone for our purposes.
            deadline = time.monotonic() + 10
            while process_alive(me) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not process_alive(me)
        finally:
            child.kill()
            child.wait()
        assert not process_alive(me)


# --- the loop, with a fake cluster ------------------------------------------------------------------


class FakeClient:
    def __init__(self, mirrors: list[dict[str, Any] | Exception | None]) -> None:
        self.mirrors = mirrors

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        answer = self.mirrors.pop(0) if len(self.mirrors) > 1 else self.mirrors[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Runs:
    def __init__(self, failures: int = 0) -> None:
        self.options: list[dict[str, Any]] = []
        self.failures = failures

    def __call__(self, client: Any, options: dict[str, Any], *, check_mode: bool) -> Any:
        self.options.append(dict(options))
        if self.failures:
            self.failures -= 1
            raise DarklaunchError("connection refused")

        action = SimpleNamespace(summary="repoint IngressRoute r back")
        return SimpleNamespace(plan=SimpleNamespace(actions=[action]))


def watchdog(
    tmp_path: Path, controller: ProcessId, client: FakeClient, monkeypatch: pytest.MonkeyPatch, runs: Runs
) -> tuple[_watchdog_process.Watchdog, list[str]]:
    files = route_files(tmp_path, "ns", "r", "https://k8s:6443")
    config = _watchdog_process.WatchdogConfig(
        route_name="r",
        namespace="ns",
        mirror_name="r-mirror",
        wrr_name="r-wrr",
        restore_ingress_to_wrr=True,
        api_group=None,
        poll_seconds=0.01,
        policy=Policy(grace_seconds=0, armed_at=ARMED_AT),
        controller=controller,
        auth={"api_key": "s3cret-token"},
        files=files,
    )
    lines: list[str] = []
    monkeypatch.setattr(_watchdog_process, "run_mirror", runs)
    monkeypatch.setattr(_watchdog_process.time, "sleep", lambda _seconds: None)
    return _watchdog_process.Watchdog(config, lines.append, lambda: client), lines


MIRROR = {"metadata": {"name": "r-mirror", "annotations": {}}}


@pytest.fixture
def gone() -> ProcessId:
    """A controller that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return ProcessId(child.pid, None)


class TestLoop:
    def test_controller_exit_rolls_back_with_the_traefik_mirror_absent_options(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gone: ProcessId
    ) -> None:
        runs = Runs()
        dog, _lines = watchdog(tmp_path, gone, FakeClient([MIRROR]), monkeypatch, runs)
        assert dog.start()
        assert dog.run() == _watchdog_process.EXIT_OK
        assert runs.options == [
            {
                "api_key": "s3cret-token",
                "api_group": None,
                "route_name": "r",
                "namespace": "ns",
                "state": "absent",
                "mirror_name": "r-mirror",
                "wrr_name": "r-wrr",
                "restore_ingress_to_wrr": True,
            }
        ]
        outcome = read_json(dog.config.files.outcome)
        assert outcome is not None and outcome["outcome"] == "rolled_back"
        assert outcome["actions"] == ["repoint IngressRoute r back"]
        assert not dog.config.files.pid.exists()

    def test_rollback_is_retried(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gone: ProcessId) -> None:
        runs = Runs(failures=2)
        dog, lines = watchdog(tmp_path, gone, FakeClient([MIRROR]), monkeypatch, runs)
        assert dog.start()
        assert dog.run() == _watchdog_process.EXIT_OK
        assert len(runs.options) == 3
        assert sum("rollback attempt" in line for line in lines) == 2

    def test_rollback_that_keeps_failing_is_recorded(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gone: ProcessId
    ) -> None:
        runs = Runs(failures=99)
        dog, _lines = watchdog(tmp_path, gone, FakeClient([MIRROR]), monkeypatch, runs)
        assert dog.start()
        assert dog.run() == _watchdog_process.EXIT_ROLLBACK_FAILED
        assert len(runs.options) == _watchdog_process.ROLLBACK_ATTEMPTS
        outcome = read_json(dog.config.files.outcome)
        assert outcome is not None and outcome["outcome"] == "rollback_failed"
        assert outcome["error"] == "connection refused"

    def test_removed_pid_file_disarms(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        runs = Runs()
        me = ProcessId.of(os.getpid())
        dog, _lines = watchdog(tmp_path, me, FakeClient([MIRROR]), monkeypatch, runs)
        assert dog.start()
        dog.config.files.pid.unlink()
        assert dog.run() == _watchdog_process.EXIT_OK
        assert runs.options == []

    def test_sigterm_disarms(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        runs = Runs()
        dog, lines = watchdog(tmp_path, ProcessId.of(os.getpid()), FakeClient([MIRROR]), monkeypatch, runs)
        assert dog.start()
        dog.request_stop(signal.SIGTERM, None)
        assert dog.run() == _watchdog_process.EXIT_OK
        assert runs.options == []
        assert "received SIGTERM: disarming" in lines

    def test_mirror_created_later_then_deleted_by_someone_else(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        runs = Runs()
        me = ProcessId.of(os.getpid())
        answers: list[Any] = [None, None, DarklaunchError("timeout"), MIRROR, MIRROR, None]
        dog, lines = watchdog(tmp_path, me, FakeClient(answers), monkeypatch, runs)
        assert dog.start()
        assert dog.run() == _watchdog_process.EXIT_OK
        assert runs.options == []
        assert any("now exists" in line for line in lines)
        assert any("cannot read the mirror (will keep trying): timeout" in line for line in lines)
        outcome = read_json(dog.config.files.outcome)
        assert outcome is not None and outcome["outcome"] == "left"

    def test_overdue_deadline_rolls_back_while_the_controller_lives(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        runs = Runs()
        # Written after the watchdog was armed (so this run's), and not renewed since.
        annotations = {
            "darklaunch.traefik/launch-id": "x",
            "darklaunch.traefik/launch-deadline": "2024-05-01T11:55:00.000Z",
        }
        overdue = {"metadata": {"annotations": annotations}}
        dog, lines = watchdog(tmp_path, ProcessId.of(os.getpid()), FakeClient([MIRROR, overdue]), monkeypatch, runs)
        assert dog.start()
        assert dog.run() == _watchdog_process.EXIT_OK
        assert len(runs.options) == 1
        assert any("deadline 2024-05-01T11:55:00Z passed" in line for line in lines)

    def test_a_watchdog_that_cannot_read_the_mirror_does_not_start(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        dog, _lines = watchdog(
            tmp_path, ProcessId.of(os.getpid()), FakeClient([DarklaunchError("403")]), monkeypatch, Runs()
        )
        assert not dog.start()
        assert not dog.config.files.pid.exists()
        outcome = read_json(dog.config.files.outcome)
        assert outcome is not None and outcome["reason"] == "cannot read the mirror: 403"


def test_log_masks_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    _watchdog_process.Log({"s3cret-token"})("error talking with token s3cret-token")
    out = capsys.readouterr().out
    assert "s3cret-token" not in out and "error talking with token" in out


def test_an_httproute_rollback_names_the_route_kind_and_no_ingressroute_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = route_files(tmp_path, "ns", "r", "https://k8s:6443")
    data = {
        "route_name": "r",
        "namespace": "ns",
        "mirror_name": "r-mirror",
        "wrr_name": "r-wrr",
        "restore_ingress_to_wrr": True,
        "route_kind": "HTTPRoute",
        "poll_seconds": 1,
        "grace_seconds": 0,
        "controller": {"pid": 1, "start_ticks": None},
        "files": {key: str(value) for key, value in vars(files).items()},
    }
    config = _watchdog_process.WatchdogConfig.from_dict(data)
    options = config.rollback_options()
    assert options["route_kind"] == "HTTPRoute" and options["state"] == "absent"
    assert "mirror_name" not in options and "wrr_name" not in options
    calls: list[dict[str, Any]] = []

    def run_httproute_mirror(_client: Any, given: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        calls.append(given)
        return {"actions": [{"summary": "patch HTTPRoute r: rule(s) 1 back on their original backendRefs"}]}

    monkeypatch.setattr(_watchdog_process, "run_httproute_mirror", run_httproute_mirror)
    assert _watchdog_process._roll_back(object(), options) == [
        "patch HTTPRoute r: rule(s) 1 back on their original backendRefs"
    ]
    assert calls == [options]
    ingress = _watchdog_process.WatchdogConfig.from_dict({**data, "route_kind": None}).rollback_options()
    assert ingress["mirror_name"] == "r-mirror" and "route_kind" not in ingress
