"""The shadow_launch role's gate and its safety nets, run as an operator runs them
(``ansible-playbook playbooks/shadow_launch.yml``) against the real apiserver, Traefik and Prometheus:

- the gate checks during the bake and acts on a failure within one interval;
- it fails closed when it cannot judge, and refuses a launch that would judge nothing;
- an interrupted ``ansible-playbook`` is rolled back by the watchdog without anyone running anything;
- a launch that stopped renewing its record is reported as abandoned, and a rerun resumes it.

Every case checks the cluster's real objects and counts user responses at the client.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from polling import Poller
from routes import API, INTERVAL, launch_vars, mirror_exists, route_as_written
from shadow import finish_playbook, run_playbook, start_playbook
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

RATE = 40.0  # user requests per second: 400 per window at stable, 200 copies at a 50% mirror


# --- watching the cluster ------------------------------------------------------------------------------


class RouteWatch(Poller):
    """Polls the IngressRoute and the mirror every 0.2 s and keeps every change with its time."""

    def __init__(self, kube: Any, world: Any) -> None:
        super().__init__("route-watch")
        self.kube = kube
        self.world = world
        self.seen: list[tuple[float, list[list[str]], bool]] = []

    def sample(self) -> None:
        state = (route_targets(self.kube, self.world), mirror_exists(self.kube, self.world))
        if not self.seen or self.seen[-1][1:] != state:
            self.seen.append((time.monotonic(), *state))

    def first(self, predicate: Callable[[list[list[str]], bool], bool], after: float = 0.0) -> float | None:
        return next((t for t, targets, mirror in self.seen if t >= after and predicate(targets, mirror)), None)

    def wait_for(self, predicate: Callable[[list[list[str]], bool], bool], timeout: float, after: float = 0.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first(predicate, after)
            if found is not None:
                return found
            time.sleep(0.1)
        raise AssertionError(f"not seen within {timeout:.0f}s; states seen: {self.seen}")


def route_targets(kube: Any, world: Any) -> list[list[str]]:
    ir = kube.get(API, "IngressRoute", world.route, world.namespace)
    return [[service["name"] for service in route["services"]] for route in ir["spec"]["routes"]]


def attached(world: Any) -> Callable[[list[list[str]], bool], bool]:
    mirror = f"{world.route}-mirror"
    return lambda targets, _mirror: any(mirror in names for names in targets)


def restored(original: list[list[str]]) -> Callable[[list[list[str]], bool], bool]:
    return lambda targets, mirror: targets == original and not mirror


@pytest.fixture
def output_file(tmp_path: Path) -> Path:
    return tmp_path / "ansible-playbook.out"


# --- the gate during the bake --------------------------------------------------------------------------


def test_a_shadow_failing_mid_bake_is_rolled_back_within_one_interval(
    seed_world: Callable[..., Any], kube: Any, traffic_for: Callable[[Any, float], SteadyTraffic], output_file: Path
) -> None:
    # Users are split between stable and staging, so the canary (the shadow) only ever gets copies: a rollback
    # that restores the split can never send a user to it while it fails.
    world = seed_world(app="gate-midbake", weights={"stable": 50, "staging": 50})
    before = route_as_written(kube, world)
    original = route_targets(kube, world)
    canary = world.backends["canary"]
    load = traffic_for(world, RATE)
    time.sleep(12)  # a little history for the baseline

    with RouteWatch(kube, world) as watch:
        process = start_playbook("shadow_launch", launch_vars(world), output_file)
        t_attached = watch.wait_for(attached(world), timeout=90)
        # The bake starts right after the attach; the shadow starts failing 10 s into it.
        time.sleep(max(0.0, t_attached + 10 - time.monotonic()))
        canary.set_knobs(error_rate=0.1)
        t_failing = time.monotonic()
        t_restored = watch.wait_for(restored(original), timeout=120, after=t_failing)
        out = finish_playbook(process, output_file, timeout=240)
    load.stop()
    canary.set_knobs(error_rate=0)

    delay = t_restored - t_failing
    print(f"\nshadow failing at +{t_failing - t_attached:.1f}s of the bake; route restored {delay:.1f}s later")
    print(f"user responses: {dict(load.statuses)}, connection failures {load.failures}; by {dict(load.answered_by)}")
    assert process.returncode != 0, out
    assert "anomalous" in out and "rolled back" in out, out
    assert "Users are back on the route" not in out, "no users' split contains this shadow"
    # One message block ends a failed launch; the side-effects warning is said once.
    assert out.count("[ERROR]") == 1, out
    assert "Cause: Anomaly gate at 50%: anomalous" in out and "Inspect: ansible-playbook" in out, out
    assert out.count("happens for real") == 1, out
    # One interval for the check that sees the failure, plus the rollback (generous bound; see the note).
    assert delay < INTERVAL + 20, f"rollback {delay:.1f}s after the shadow started failing\n{out}"
    lines = re.findall(r"50% step, \d+/120 s, check (\d+)/12: (\w+) \| shadow (\d+) req", out)
    assert lines and lines[-1][1] == "anomalous", out
    assert all(verdict == "ok" for _n, verdict, _r in lines[:-1]), f"a check failed before the shadow did\n{out}"
    assert int(lines[-1][0]) < 12, "the failure must be acted on during the bake, not at its end"
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)
    assert load.errors() == 0, f"users saw errors: {dict(load.statuses)}, failures {load.failures}"
    assert world.service("canary") not in load.answered_by, f"the shadow answered users: {dict(load.answered_by)}"
    assert canary.counters()["errors"] > 0, "the shadow's failures must have happened (on copies)"


def test_the_default_gate_fails_closed_on_a_route_without_traffic(seed_world: Callable[..., Any], kube: Any) -> None:
    world = seed_world(app="gate-quiet")
    before = route_as_written(kube, world)
    completed = run_playbook("shadow_launch", launch_vars(world, steps=[20], bake_seconds=10, interval=5))
    out = completed.stdout + completed.stderr
    assert completed.returncode != 0, out
    assert "not judged" in out and "rolled back" in out, out
    assert "fail_on_insufficient_data=false" in out, "the way to go on blind must be named"
    # The seed's split sends half the users to the canary, which is the shadow here: restored exactly, it
    # sends them to the version the launch stopped again, and the failure says so.
    assert f"50% of user responses come from {world.service('canary')} again" in " ".join(out.split()), out
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)


def test_going_on_blind_is_an_explicit_choice_and_says_not_judged(seed_world: Callable[..., Any], kube: Any) -> None:
    world = seed_world(app="gate-blind")
    before = route_as_written(kube, world)
    completed = run_playbook(
        "shadow_launch", launch_vars(world, steps=[20], bake_seconds=5, interval=5, fail_on_insufficient_data=False)
    )
    out = completed.stdout + completed.stderr
    assert completed.returncode == 0, out
    assert "NOT JUDGED" in out, out
    assert not re.search(r"Step 20%: ok", out), out
    assert route_as_written(kube, world) == before


def test_a_gate_without_attach_is_refused_before_any_change(seed_world: Callable[..., Any], kube: Any) -> None:
    world = seed_world(app="gate-unattached")
    versions = {
        kind: sorted(
            (o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in kube.list(API, kind, world.namespace)
        )
        for kind in ("IngressRoute", "TraefikService")
    }
    completed = run_playbook("shadow_launch", launch_vars(world, attach_to_ingress=False))
    out = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "shadow_launch_attach_to_ingress is false" in out, out
    assert "no request would be copied" in out, out
    after = {
        kind: sorted(
            (o["metadata"]["name"], o["metadata"]["resourceVersion"]) for o in kube.list(API, kind, world.namespace)
        )
        for kind in ("IngressRoute", "TraefikService")
    }
    assert after == versions


# --- interrupted runs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_launch_is_restored_by_the_watchdog(
    seed_world: Callable[..., Any],
    kube: Any,
    traffic_for: Callable[[Any, float], SteadyTraffic],
    output_file: Path,
    sig: signal.Signals,
) -> None:
    world = seed_world(app=f"gate-{sig.name.lower()}")
    before = route_as_written(kube, world)
    original = route_targets(kube, world)
    load = traffic_for(world, RATE)
    with RouteWatch(kube, world) as watch:
        process = start_playbook("shadow_launch", launch_vars(world, bake_seconds=300), output_file)
        t_attached = watch.wait_for(attached(world), timeout=90)
        time.sleep(max(0.0, t_attached + 5 - time.monotonic()))
        process.send_signal(sig)
        t_signal = time.monotonic()
        out = finish_playbook(process, output_file, timeout=60)
        t_restored = watch.wait_for(restored(original), timeout=60, after=t_signal)
    load.stop()
    print(
        f"\n{sig.name}: ansible-playbook exited {process.returncode}; "
        f"route restored {t_restored - t_signal:.1f}s after the signal"
    )
    print(f"user responses: {dict(load.statuses)}, connection failures {load.failures}")
    assert process.returncode != 0, out
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)
    assert load.errors() == 0


def test_a_killed_launch_is_reported_abandoned_and_a_rerun_resumes_it(
    seed_world: Callable[..., Any], kube: Any, output_file: Path
) -> None:
    world = seed_world(app="gate-abandoned")
    before = route_as_written(kube, world)
    original = route_targets(kube, world)
    with RouteWatch(kube, world) as watch:
        process = start_playbook(
            "shadow_launch",
            launch_vars(world, steps=[20, 50], watchdog=False, lease_seconds=3, anomaly_gate=False, bake_seconds=300),
            output_file,
        )
        watch.wait_for(attached(world), timeout=90)
        time.sleep(2)
        process.kill()  # SIGKILL: nothing of the playbook runs any more, and no watchdog was armed
        finish_playbook(process, output_file, timeout=30)
    time.sleep(4)  # past the 3 s lease

    status = run_playbook("shadow_status", {"route_name": world.route, "route_namespace": world.namespace})
    said = status.stdout + status.stderr
    assert status.returncode == 0, said
    assert "ABANDONED" in said, said
    assert "mirror_disable" in said and f"route_name={world.route}" in said, said
    assert route_targets(kube, world) != original, "nothing may have restored the route by itself"

    # The rerun resumes at the mirror's percentage and, at teardown, restores the route as it was
    # before the first run, never the mirror-routed state the interrupted run left.
    rerun = run_playbook(
        "shadow_launch", launch_vars(world, steps=[20, 50], anomaly_gate=False, bake_seconds=1), timeout=240
    )
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, out
    assert "resuming" in out, out
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)
