# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch engine driven through its ports: a fake clock, a fake cluster, a scripted gate and a fake watchdog.

Time only moves when the engine sleeps. Preflight, the mirror's creation and the first step's start all happen
at T0, so with the default rules (300 s bake, 60 s interval) the first step's checks run at T0+60 ... T0+300,
and an operator's change scheduled at T0+90 is seen at the check at T0+120.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control import (
    ABORTED,
    PAUSED,
    control_annotations,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import (
    LaunchRecord,
    format_time,
    launch_annotation_keys,
    read_launch_record,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_engine import LaunchEngine
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_ports import (
    CHECK_MODE_STEP,
    PASSED,
    PLANNED,
    REFUSED,
    ROLLBACK_FAILED,
    ROLLED_BACK,
    TAKEN_OVER,
    JudgeUnavailable,
    LaunchPlan,
    LaunchResult,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import GateRules

T0 = 1_750_000_000.0
NS = "web"
ROUTE = "shop"
MIRROR = "shop-mirror"
MAIN = "shop-stable"
SHADOW = "shop-staging"
OURS = "launch-ours"
OWNER = "alice@laptop pid 42"
LEASE = 180
CHECKS = [T0 + 60 * n for n in range(1, 6)]  # the default step's check times


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, timezone.utc)


# --- the gate's answers ----------------------------------------------------------------------------------


def report(
    verdict: str = "ok",
    *,
    shadow: tuple[float, float | None, float | None] = (120, 0.0, 0.012),
    main: tuple[float, float | None, float | None] = (240, 0.0, 0.011),
    summary: str | None = None,
    metrics: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The traffic lookup's ``anomalies`` answer: requests, 5xx rate and p95 (seconds) of each side."""
    services = [
        {"role": role, "name": name, "requests": requests, "error_rate": rate, "latency_p95": p95}
        for role, name, (requests, rate, p95) in (("shadow", SHADOW, shadow), ("main", MAIN, main))
    ]
    answer: dict[str, Any] = {
        "verdict": verdict,
        "summary": summary or f"the shadow looks {verdict}",
        "services": services,
    }
    if metrics is not None:
        answer["metrics"] = metrics
    return answer


OK = report("ok", summary="shadow and main agree")
ANOMALOUS = report("anomalous", shadow=(120, 0.25, 0.9), summary="shadow 5xx 25.0% vs main 0.0%")
INSUFFICIENT = report("insufficient_data", shadow=(3, None, None), summary="too few requests (3 < 100)")
BROKEN = report(
    "ok",
    metrics=[
        {"name": "p99 latency", "verdict": "ok", "message": "0.2 <= 0.5"},
        {"name": "orders typo", "verdict": "error", "message": "bad_data: parse error at char 7"},
    ],
)
DOWN = JudgeUnavailable("connection refused")

Answer = dict[str, Any] | Exception


# --- fakes -----------------------------------------------------------------------------------------------


class FakeClock:
    """now() only moves through sleep(); every sleep is recorded."""

    def __init__(self, start: float = T0) -> None:
        self.moment = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.moment

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.moment += seconds
        # A launch that never ends would hang the test run: no test here bakes for a simulated day.
        assert self.moment < T0 + 86_400, "the launch did not end within a simulated day"


class Write(NamedTuple):
    at: float
    verb: str  # apply or restore
    percent: int | None = None
    attach: bool | None = None
    record: str | None = None


def plain_route(shadow_share: int = 0) -> dict[str, Any]:
    """The IngressRoute before the launch: the main service, or a weighted split that gives the shadow a share."""
    if shadow_share:
        services = [
            {"name": MAIN, "kind": "Service", "port": 80, "weight": 100 - shadow_share},
            {"name": SHADOW, "kind": "Service", "port": 80, "weight": shadow_share},
        ]
    else:
        services = [{"name": MAIN, "kind": "Service", "port": 80}]
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "IngressRoute",
        "metadata": {"name": ROUTE, "namespace": NS, "managedFields": []},
        "spec": {
            "entryPoints": ["web"],
            "routes": [
                {"match": "Host(`shop.example`)", "kind": "Rule", "services": services},
                {
                    "match": "Host(`shop.example`) && PathPrefix(`/health`)",
                    "kind": "Rule",
                    "services": [{"name": "shop-health", "kind": "Service", "port": 8080}],
                },
            ],
        },
    }


def mirror_object(percent: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "traefik.io/v1alpha1",
        "kind": "TraefikService",
        "metadata": {"name": MIRROR, "namespace": NS, "annotations": dict(annotations or {}), "managedFields": []},
        "spec": {
            "mirroring": {
                "name": MAIN,
                "kind": "Service",
                "port": 80,
                "mirrors": [{"name": SHADOW, "kind": "Service", "port": 80, "percent": percent}],
            }
        },
    }


def other_record(deadline: float, launch_id: str = "launch-other", owner: str = "bob@ci") -> LaunchRecord:
    return LaunchRecord(
        id=launch_id,
        owner=owner,
        route=ROUTE,
        started=at(-600),
        step=20,
        deadline=datetime.fromtimestamp(deadline, timezone.utc),
        renewed=at(-60),
    )


class FakeCluster:
    """The mirror TraefikService and the IngressRoute in memory, written the way traefik_mirror writes them.

    Every write (apply, restore) is counted in ``writes`` with its time. ``at(seconds, change)`` schedules an
    operator's change (or anyone else's) for T0+seconds: it happens at the first call the engine makes at or
    after that moment, before the call reads anything.
    """

    def __init__(
        self,
        clock: FakeClock,
        *,
        shadow_share: int = 0,
        existing_percent: int | None = None,
        existing_record: LaunchRecord | None = None,
        existing_attached: bool = False,
        route_exists: bool = True,
    ) -> None:
        self.clock = clock
        self.launch_id = OURS
        self.original_route = plain_route(shadow_share)
        self.route: dict[str, Any] | None = copy.deepcopy(self.original_route) if route_exists else None
        self.mirror: dict[str, Any] | None = None
        if existing_percent is not None:
            annotations = existing_record.annotations() if existing_record else {}
            self.mirror = mirror_object(existing_percent, annotations)
            if existing_attached:
                self._attach()
        self.writes: list[Write] = []
        self.progress: list[str | None] = []  # the progress of every running write, in order
        self.plans: list[int] = []
        self.observed: list[float] = []
        self.hooks: list[tuple[float, Callable[[], None]]] = []
        self._acting_at: float | None = None
        self.broken: list[dict[str, Any]] = []
        self.plan_error: DarklaunchError | None = None
        self.apply_error: DarklaunchError | None = None
        self.restore_error: DarklaunchError | None = None
        self.restore_leaves: dict[str, Any] | None = None  # the route a (faulty) restore leaves behind

    # --- scheduling ------------------------------------------------------------------------------------

    def at(self, seconds: float, change: Callable[[], None]) -> None:
        self.hooks.append((T0 + seconds, change))

    def _due(self) -> None:
        now = self.clock.now()
        for hook in [hook for hook in self.hooks if hook[0] <= now]:
            self.hooks.remove(hook)
            self._acting_at = hook[0]
            try:
                hook[1]()
            finally:
                self._acting_at = None

    def _moment(self) -> datetime:
        """When the change being made happens: a scheduled change at its own time, else now."""
        return datetime.fromtimestamp(self._acting_at or self.clock.now(), timezone.utc)

    # --- what others do --------------------------------------------------------------------------------

    def _touched(self, obj: dict[str, Any] | None, manager: str) -> None:
        if obj is not None:
            stamp = self._moment().strftime("%Y-%m-%dT%H:%M:%SZ")
            obj["metadata"].setdefault("managedFields", []).append(
                {"manager": manager, "operation": "Update", "time": stamp}
            )

    def delete_mirror(self, detach: bool = False) -> None:
        """kubectl delete of the mirror (the route keeps naming it), or mirror_disable.yml (detach=True)."""
        self.mirror = None
        if detach:
            self.route = copy.deepcopy(self.original_route)
            self._touched(self.route, "kubectl-edit")

    def set_percent(self, percent: int) -> None:
        assert self.mirror is not None
        self.mirror["spec"]["mirroring"]["mirrors"][0]["percent"] = percent
        self._touched(self.mirror, "kubectl-edit")

    def detach(self) -> None:
        self.route = copy.deepcopy(self.original_route)
        self._touched(self.route, "kubectl-edit")

    def control(self, state: str | None, by: str = "alice") -> None:
        """playbooks/shadow_pause.yml, shadow_resume.yml (None) or shadow_abort.yml."""
        assert self.mirror is not None
        annotations = self.mirror["metadata"]["annotations"]
        for key, value in control_annotations(state, by, self._moment()).items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value

    def take_record(self, launch_id: str = "launch-other", owner: str = "bob@ci") -> None:
        """Another launch (shadow_launch_takeover=true) writes its record over ours."""
        assert self.mirror is not None
        annotations = self.mirror["metadata"]["annotations"]
        for key in launch_annotation_keys(annotations):
            del annotations[key]
        annotations.update(other_record(self._moment().timestamp() + LEASE, launch_id, owner).annotations())

    # --- the port ------------------------------------------------------------------------------------

    def plan(self, percent: int) -> dict[str, Any]:
        self._due()
        self.plans.append(percent)
        if self.plan_error is not None:
            raise self.plan_error
        actions = []
        if self.mirror is None:
            actions.append(self._action(f"create TraefikService {NS}/{MIRROR} copying {percent}% to {SHADOW}"))
        if not self._attached():
            actions.append(self._action(f"IngressRoute {NS}/{ROUTE} route 0: {MAIN} -> {MIRROR}", "IngressRoute"))
        return self._answer(actions, self._percent())

    def apply(self, percent: int, attach: bool, record: str, progress: str | None = None) -> dict[str, Any]:
        self._due()
        now = self.clock.now()
        self.writes.append(Write(now, "apply", percent, attach, record))
        if self.apply_error is not None:
            raise self.apply_error
        previous = self._percent()
        actions: list[dict[str, Any]] = []
        if self.mirror is None:
            self.mirror = mirror_object(percent)
            actions.append(self._action(f"create TraefikService {NS}/{MIRROR} copying {percent}% to {SHADOW}"))
        elif previous != percent:
            self.mirror["spec"]["mirroring"]["mirrors"][0] = {
                "name": SHADOW,
                "kind": "Service",
                "port": 80,
                "percent": percent,
            }
            actions.append(self._action(f"TraefikService {NS}/{MIRROR}: copies {previous}% -> {percent}%"))
        annotations = self.mirror["metadata"]["annotations"]
        current = read_launch_record(annotations)
        moment = datetime.fromtimestamp(now, timezone.utc)
        if record == "running":
            same = current is not None and current.id == self.launch_id
            started = current.started if current is not None and same else moment
            if progress is None and current is not None and same:
                progress = current.progress  # None keeps the last
            for key in launch_annotation_keys(annotations):
                del annotations[key]
            ours = LaunchRecord(
                id=self.launch_id,
                owner=OWNER,
                route=ROUTE,
                started=started,
                step=percent,
                deadline=datetime.fromtimestamp(now + LEASE, timezone.utc),
                renewed=moment,
                progress=progress,
            )
            annotations.update(ours.annotations())
            self.progress.append(progress)
            actions.append(self._action(f"launch {self.launch_id} renewed (step {percent}%)", record_only=True))
        elif current is not None and current.id == self.launch_id:
            for key in launch_annotation_keys(annotations):
                del annotations[key]
            actions.append(self._action(f"launch {self.launch_id} finished: record removed", record_only=True))
        if attach and not self._attached():
            self._attach()
            actions.append(self._action(f"IngressRoute {NS}/{ROUTE} route 0: {MAIN} -> {MIRROR}", "IngressRoute"))
        return self._answer(actions, previous)

    def restore(self) -> dict[str, Any]:
        self._due()
        self.writes.append(Write(self.clock.now(), "restore"))
        if self.restore_error is not None:
            raise self.restore_error
        previous = self._percent()
        actions = []
        if self.route is not None and self.route != self.original_route:
            self.route = copy.deepcopy(self.restore_leaves or self.original_route)
            actions.append(self._action(f"IngressRoute {NS}/{ROUTE} restored", "IngressRoute"))
        if self.mirror is not None:
            self.mirror = None
            actions.append(self._action(f"delete TraefikService {NS}/{MIRROR}"))
        answer = self._answer(actions, previous)
        answer.update(status="absent", warnings=[])
        return answer

    def observe(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        self._due()
        self.observed.append(self.clock.now())
        return copy.deepcopy(self.mirror), copy.deepcopy(self.route)

    def read_route(self) -> dict[str, Any] | None:
        self._due()
        return self._distribution()

    def rollback_command(self) -> str:
        return f"ansible-playbook darklaunch.traefik.mirror_disable -e route_name={ROUTE} -e context=test"

    def status_command(self) -> str:
        return f"ansible-playbook darklaunch.traefik.shadow_status -e route_name={ROUTE} -e context=test"

    # --- helpers -------------------------------------------------------------------------------------

    @staticmethod
    def _action(summary: str, kind: str = "TraefikService", record_only: bool = False) -> dict[str, Any]:
        return {"summary": summary, "kind": kind, "record_only": record_only}

    def _percent(self) -> int | None:
        if self.mirror is None:
            return None
        percent: int = self.mirror["spec"]["mirroring"]["mirrors"][0]["percent"]
        return percent

    def _attached(self) -> bool:
        return self.route is not None and any(
            service.get("name") == MIRROR for service in self.route["spec"]["routes"][0]["services"]
        )

    def _attach(self) -> None:
        assert self.route is not None
        self.route["spec"]["routes"][0]["services"] = [{"name": MIRROR, "kind": "TraefikService"}]

    def _resolved(self, previous: int | None) -> dict[str, Any]:
        return {
            "route_name": ROUTE,
            "namespace": NS,
            "mirror_name": MIRROR,
            "main_service": MAIN,
            "main_kind": "Service",
            "mirror_service": SHADOW,
            "previous_percent": previous,
            "weighted_split": {"live": False, "split": None, "ended": False},
        }

    def _answer(self, actions: list[dict[str, Any]], previous: int | None) -> dict[str, Any]:
        return {
            "changed": any(not action["record_only"] for action in actions),
            "status": "active" if self._attached() else "inactive",
            "actions": actions,
            # As traefik_mirror warns: a mirror nothing routes through yet, and the side effects of every copy.
            "warnings": ([] if self._attached() else ["mirror is inactive"]) + ["copies have side effects"],
            "resolved": self._resolved(previous),
            "distribution": self._distribution(),
        }

    def _distribution(self) -> dict[str, Any] | None:
        if self.route is None:
            return None
        rules = self.route["spec"]["routes"]
        routes = [
            {"index": i, "match": rule["match"], "targets": copy.deepcopy(rule["services"])}
            for i, rule in enumerate(rules)
        ]
        if self._attached():
            split = {"type": "mirror", "wraps_weighted": False, "layers": ["mirror"]}
            main_sink = [{"kind": "Service", "name": MAIN, "namespace": NS, "port": 80, "user_share_percent": 100}]
            explanation = f"Users are answered by {MAIN}; {self._percent()}% of requests are copied to {SHADOW}."
        else:
            services = rules[0]["services"]
            total = sum(service.get("weight", 1) for service in services)
            main_sink = [
                {
                    "kind": service["kind"],
                    "name": service["name"],
                    "namespace": NS,
                    "port": service.get("port"),
                    "user_share_percent": round(100 * service.get("weight", 1) / total, 2),
                }
                for service in services
            ]
            split = {"type": "weighted" if len(services) > 1 else "direct", "wraps_weighted": False, "layers": []}
            explanation = "Users are answered by " + ", ".join(f"{s['name']}" for s in services) + "."
        return {
            "route": ROUTE,
            "namespace": NS,
            "traffic_split": split,
            "routes": routes,
            "main_sink": main_sink,
            "broken": list(self.broken),
            "explanation": explanation,
        }

    # --- what the tests read -------------------------------------------------------------------------

    @property
    def applies(self) -> list[Write]:
        return [write for write in self.writes if write.verb == "apply"]

    @property
    def restores(self) -> list[Write]:
        return [write for write in self.writes if write.verb == "restore"]

    def record(self) -> LaunchRecord | None:
        return read_launch_record(self.mirror["metadata"]["annotations"]) if self.mirror else None


class FakeJudge:
    """The gate's answers in order: the first call is preflight's, then one per check; ``then`` afterwards."""

    def __init__(
        self, clock: FakeClock, answers: Sequence[Answer], preflight: Answer | None = None, then: Answer | None = None
    ) -> None:
        self.clock = clock
        self.script: list[Answer] = [OK if preflight is None else preflight, *answers]
        self.then = OK if then is None else then
        self.calls: list[float] = []
        self.since: list[float | None] = []

    def check(self, since: float | None = None) -> dict[str, Any]:
        self.calls.append(self.clock.now())
        self.since.append(since)
        answer = self.script.pop(0) if self.script else self.then
        if isinstance(answer, Exception):
            raise answer
        return copy.deepcopy(answer)

    @property
    def bake_calls(self) -> list[float]:
        return self.calls[1:]


class FakeWatchdog:
    def __init__(self, acted: dict[str, Any] | None = None) -> None:
        self.acted = acted
        self.events: list[str] = []

    def arm(self) -> None:
        self.events.append("arm")

    def disarm(self) -> dict[str, Any] | None:
        self.events.append("disarm")
        return self.acted


WATCHDOG_ROLLED_BACK = {"outcome": "rolled_back", "reason": "the deadline passed by 30 s"}


def rules(**changes: Any) -> GateRules:
    values: dict[str, Any] = {"bake_seconds": 300, "interval_seconds": 60}
    values.update(changes)
    return GateRules(**values)


@dataclass
class World:
    clock: FakeClock
    cluster: FakeCluster
    judge: FakeJudge
    watchdog: FakeWatchdog
    said: list[tuple[float, str]] = field(default_factory=list)

    def plan(self, **changes: Any) -> LaunchPlan:
        values: dict[str, Any] = {
            "route_name": ROUTE,
            "namespace": NS,
            "steps": (50,),
            "rules": rules(),
            "attach": True,
            "teardown": False,
            "launch_id": OURS,
        }
        values.update(changes)
        return LaunchPlan(**values)

    def run(self, **changes: Any) -> LaunchResult:
        engine = LaunchEngine(
            self.plan(**changes),
            self.cluster,
            self.judge,
            self.watchdog,
            self.clock,
            lambda line: self.said.append((self.clock.now(), line)),
        )
        return engine.run()

    def lines(self) -> list[str]:
        return [line for _moment, line in self.said]

    def lines_after(self, moment: float) -> list[tuple[float, str]]:
        return [(when, line) for when, line in self.said if when > moment]

    def writes_after(self, moment: float) -> list[Write]:
        return [write for write in self.cluster.writes if write.at > moment]


def world(
    answers: Sequence[Answer] = (),
    *,
    preflight: Answer | None = None,
    then: Answer | None = None,
    acted: dict[str, Any] | None = None,
    **cluster: Any,
) -> World:
    clock = FakeClock()
    return World(
        clock=clock,
        cluster=FakeCluster(clock, **cluster),
        judge=FakeJudge(clock, answers, preflight=preflight, then=then),
        watchdog=FakeWatchdog(acted),
    )


def step_row(percent: int, result: str, end: float, start: float = T0, **tally: int) -> dict[str, Any]:
    """A step as the result's ``steps`` lists it: its checks counted by verdict (0 where not given)."""
    counts = {"ok": 0, "anomalous": 0, "inconclusive": 0, "errors": 0}
    return {"percent": percent, "result": result, "tally": {**counts, **tally}, "start": start, "end": end}


def assert_rolled_back_once(w: World, result: LaunchResult, cause_kind: str | None = None) -> None:
    """Rolled back once, the route and the mirror as before the launch (and for ``cause_kind``, if given)."""
    assert result.outcome == ROLLED_BACK
    if cause_kind is not None:
        assert result.cause_kind == cause_kind
    assert result.failed
    assert result.msg.startswith(f"Shadow launch of {ROUTE} in {NS} was rolled back. ")
    assert len(w.cluster.restores) == 1
    assert w.watchdog.events == ["arm", "disarm"]
    assert w.cluster.mirror is None
    assert w.cluster.route == w.cluster.original_route


# --- a launch that passes, and the cadence ----------------------------------------------------------------


def test_a_step_bakes_with_five_checks_at_60_to_300_seconds() -> None:
    w = world()
    result = w.run()
    assert result.outcome == PASSED
    assert not result.failed
    assert w.clock.sleeps == [60.0] * 5
    assert w.judge.calls == [T0, *CHECKS]
    assert [(c["check"], c["of"], c["elapsed"], c["outcome"]) for c in result.checks] == [
        (n, 5, 60.0 * n, "ok") for n in range(1, 6)
    ]
    assert result.checks[0]["at"] == at(60).isoformat(timespec="seconds")
    assert result.passed == [50]
    assert result.steps == [step_row(50, "ok", end=T0 + 300, ok=5)]
    assert result.msg == "Every step passed its gate (50%); the mirror stays in place."
    assert result.cause is None
    assert result.cause_kind is None
    assert w.watchdog.events == ["arm", "disarm"]


def test_each_step_bakes_in_turn() -> None:
    w = world()
    result = w.run(steps=(20, 50))
    assert result.outcome == PASSED
    assert result.passed == [20, 50]
    assert [(s["percent"], s["start"], s["end"]) for s in result.steps] == [
        (20, T0, T0 + 300),
        (50, T0 + 300, T0 + 600),
    ]
    assert w.judge.bake_calls == [*CHECKS, *(t + 300 for t in CHECKS)]
    assert [c["percent"] for c in result.checks] == [20] * 5 + [50] * 5
    assert result.msg == "Every step passed its gate (20%, 50%); the mirror stays in place."
    assert w.cluster.record() is None  # closed at the end
    assert w.cluster._percent() == 50


def test_each_check_tells_the_gate_when_its_step_began() -> None:
    # The shadow's copies count from the step's start (the mirror's percentage changed then); preflight
    # asks before anything changed, without a start.
    w = world()
    w.run(steps=(20, 50))
    assert w.judge.since == [None, *[T0] * 5, *[T0 + 300] * 5]


def test_a_bake_that_is_not_a_multiple_of_the_interval_is_checked_at_its_end() -> None:
    w = world()
    result = w.run(rules=rules(bake_seconds=150))
    assert result.outcome == PASSED
    assert w.clock.sleeps == [60.0, 60.0, 30.0]
    assert w.judge.bake_calls == [T0 + 60, T0 + 120, T0 + 150]
    assert [(c["check"], c["of"]) for c in result.checks] == [(1, 3), (2, 3), (3, 3)]
    assert result.steps[0]["end"] == T0 + 150


def test_every_check_renews_the_launch_record() -> None:
    w = world()
    w.run()
    renewals = [write.at for write in w.cluster.applies if write.record == "running"]
    # The mirror's creation and attach, the step's start, then one renewal per check.
    assert renewals == [T0, T0, T0, *CHECKS]
    assert all(write.percent == 50 for write in w.cluster.applies)


def test_the_launch_record_carries_the_engines_id_and_a_fresh_deadline() -> None:
    w = world()
    seen: list[LaunchRecord | None] = []
    w.cluster.at(130, lambda: seen.append(w.cluster.record()))
    w.run()
    record = seen[0]
    assert record is not None
    assert record.id == OURS
    assert record.step == 50
    assert record.renewed == at(120)
    assert record.deadline == at(120 + LEASE)


def test_every_renewal_records_the_checks_so_far() -> None:
    w = world([OK, INSUFFICIENT])
    w.run()
    # Preflight's writes carry none; then the step's start, then one per check.
    checks = w.cluster.progress[-5:]
    assert all(progress is not None for progress in checks)
    assert str(checks[1]).startswith("check 2 of the 50% step (1 ok, 0 anomalous, 1 inconclusive, 0 errors; last ")


def test_the_recorded_progress_carries_the_difference_check() -> None:
    compared = {
        **OK,
        "compare": {"verdict": "ok", "value": 0.0, "compared": 120, "results": {"different": 0}, "top_paths": []},
    }
    w = world([compared], then=compared)
    w.run()
    assert "(1 ok, 0 anomalous, 0 inconclusive, 0 errors; last ok; answers 0.0% different of 120 compared)" in str(
        w.cluster.progress[-5]
    )


def test_the_plan_is_said_before_anything_changes() -> None:
    w = world()
    w.run()
    assert w.lines()[0] == (
        f"Plan for the first step (50%): create TraefikService {NS}/{MIRROR} copying 50% to {SHADOW}; "
        f"IngressRoute {NS}/{ROUTE} route 0: {MAIN} -> {MIRROR}"
    )
    assert w.cluster.plans == [50]


def test_a_bake_shorter_than_the_window_is_warned_about() -> None:
    w = world()
    w.run(rules=rules(bake_seconds=30, interval_seconds=30), window_seconds=120.0, window="2m")
    assert any(line.startswith("Each step bakes 30s but the anomaly gate judges the last 2m") for line in w.lines())
    quiet = world()
    quiet.run()
    assert not any(line.startswith("Each step bakes") for line in quiet.lines())


# --- the output: one line per check ------------------------------------------------------------------------


def test_exactly_one_line_per_check_and_nothing_between_checks() -> None:
    w = world()
    w.run()
    during = w.lines_after(T0)
    assert [moment for moment, _line in during] == CHECKS
    assert during[0][1] == (
        "50% step, 60/300 s, check 1/5: ok | shadow 120 req, 0.0% 5xx, p95 12 ms | main 240 req, 0.0% 5xx, p95 11 ms"
    )
    assert during[4][1].startswith("50% step, 300/300 s, check 5/5: ok | ")


def test_the_check_line_of_each_kind_of_answer() -> None:
    w = world([INSUFFICIENT, DOWN, ANOMALOUS])
    w.run(rules=rules(failure_limit=1, error_limit=2))
    assert [line for _moment, line in w.lines_after(T0)] == [
        "50% step, 60/300 s, check 1/5: insufficient_data | shadow 3 req, no 5xx rate, p95 n/a "
        "| main 240 req, 0.0% 5xx, p95 11 ms",
        "50% step, 120/300 s, check 2/5: error | Prometheus could not be asked: connection refused",
        "50% step, 180/300 s, check 3/5: anomalous | shadow 120 req, 25.0% 5xx, p95 900 ms "
        "| main 240 req, 0.0% 5xx, p95 11 ms",
        "IngressRoute web/shop restored delete TraefikService web/shop-mirror",
        "IngressRoute shop targets exactly what it targeted before the launch.",
    ]


def test_the_check_line_shows_the_difference_check() -> None:
    differs = {
        **report("anomalous", summary="Difference check: ..."),
        "compare": {
            "verdict": "anomalous",
            "value": 0.052,
            "compared": 327,
            "results": {"same": 310, "different": 17, "noise": 0, "skipped": 4, "error": 0},
            "top_paths": [{"path": "/price", "requests": 17}],
        },
    }
    unjudged = {**OK, "compare": {"verdict": "inconclusive", "reason": "no_data", "value": None, "compared": 0}}
    w = world([unjudged, differs])
    w.run(rules=rules(failure_limit=1))
    lines = [line for _moment, line in w.lines_after(T0)]
    assert lines[0].endswith("| main 240 req, 0.0% 5xx, p95 11 ms | answers not judged (no comparator metrics)")
    assert lines[1].endswith("| answers 5.2% different of 327 compared (most at /price)")


def test_the_false_alarm_budget_is_said_once_with_the_first_conclusive_check() -> None:
    budgeted = {**OK, "sigma": 2.0, "false_alarm_budget": 0.02275, "comparisons": 40, "sigma_applied": 3.254}
    w = world([INSUFFICIENT, budgeted], then=budgeted)
    w.run()
    lines = [line for _moment, line in w.lines_after(T0)]
    budget = [line for line in lines if line.startswith("Anomaly gate: ")]
    assert budget == [
        "Anomaly gate: at sigma 2.0 a healthy step is rolled back with a chance of at most 2.3%; 40 comparisons "
        "per step decide, each at z 3.254."
    ]
    # Said before the check line it came with, after the inconclusive first check.
    assert lines.index(budget[0]) == 1


def test_gate_off_says_one_line_per_check_and_never_asks() -> None:
    w = world()
    result = w.run(rules=rules(gate=False))
    assert result.outcome == PASSED
    assert w.judge.calls == []
    assert result.checks == []
    assert result.steps[0]["result"] == "gate off"
    assert [line for _moment, line in w.lines_after(T0)] == [
        f"50% step, {60 * n}/300 s, check {n}/5: gate off" for n in range(1, 6)
    ]
    # The record is still renewed at every check.
    assert [write.at for write in w.cluster.applies if write.record == "running"][-5:] == CHECKS


# --- how a step ends: the last check --------------------------------------------------------------------------


def test_ok_then_inconclusive_fails_the_step_the_shadow_stopped_answering() -> None:
    w = world([OK, OK, OK, OK, INSUFFICIENT])
    result = w.run()
    assert_rolled_back_once(w, result, "not_judged")
    assert w.judge.bake_calls == CHECKS
    assert w.cluster.restores[0].at == T0 + 300
    assert "Anomaly gate at 50%: not judged. The step's last check was inconclusive" in result.msg
    assert "(last: too few requests (3 < 100))" in result.msg
    assert result.failed_check is not None
    assert result.failed_check["check"] == 5
    assert result.steps[-1]["percent"] == 50
    assert result.steps[-1]["result"] == "not judged"
    assert result.steps[-1]["tally"] == {"ok": 4, "anomalous": 0, "inconclusive": 1, "errors": 0}
    assert result.passed == []


def test_inconclusive_then_ok_passes_under_the_limit() -> None:
    w = world([INSUFFICIENT, INSUFFICIENT, OK, OK, OK])
    result = w.run()
    assert result.outcome == PASSED
    assert result.steps[0]["result"] == "ok"
    assert result.steps[0]["tally"]["inconclusive"] == 2


def test_the_inconclusive_limit_fails_the_step_at_once() -> None:
    w = world([OK, INSUFFICIENT, INSUFFICIENT, INSUFFICIENT])
    result = w.run()
    assert_rolled_back_once(w, result, "inconclusive_limit")
    assert w.judge.bake_calls == CHECKS[:4]
    assert w.clock.sleeps == [60.0] * 4
    assert w.cluster.restores[0].at == T0 + 240
    assert "Anomaly gate at 50%: inconclusive. 3 inconclusive check(s) reached the inconclusive limit of 3" in (
        result.msg
    )
    assert result.steps[-1]["result"] == "not judged"
    assert result.steps[-1]["end"] == T0 + 240


def test_inconclusive_limit_zero_counts_nothing_but_the_last_check_still_decides() -> None:
    failing = world([INSUFFICIENT] * 5)
    result = failing.run(rules=rules(inconclusive_limit=0))
    assert result.outcome == ROLLED_BACK
    assert result.cause_kind == "not_judged"
    assert failing.judge.bake_calls == CHECKS
    passing = world([INSUFFICIENT] * 4 + [OK])
    assert passing.run(rules=rules(inconclusive_limit=0)).outcome == PASSED


def test_fail_on_insufficient_data_false_goes_on_not_judged_and_says_so() -> None:
    w = world([INSUFFICIENT] * 5)
    result = w.run(rules=rules(fail_on_insufficient_data=False, inconclusive_limit=0), steps=(20, 50))
    assert result.outcome == PASSED
    assert result.passed == [20, 50]
    assert result.steps[0]["result"] == "not judged"
    assert result.steps[1]["result"] == "ok"
    not_judged = [line for line in w.lines() if "NOT JUDGED" in line]
    assert not_judged == [
        "Step 20%: NOT JUDGED. Its last check was not a conclusive ok; the launch goes on only because "
        "shadow_launch_fail_on_insufficient_data is false. This is not an all-clear."
    ]


def test_fail_on_insufficient_data_false_goes_on_through_a_quiet_step_with_the_default_limits() -> None:
    w = world([INSUFFICIENT] * 5)
    result = w.run(rules=rules(fail_on_insufficient_data=False))
    assert result.outcome == PASSED
    assert result.steps[0]["result"] == "not judged"


def test_the_last_check_erroring_fails_the_step() -> None:
    w = world([OK, OK, OK, OK, DOWN])
    result = w.run()
    assert result.outcome == ROLLED_BACK
    assert result.cause_kind == "not_judged"
    assert "could not ask Prometheus" in result.msg


# --- limits acted on at once ----------------------------------------------------------------------------------


def test_failure_limit_one_rolls_back_at_the_first_anomaly_before_the_bake_ends() -> None:
    w = world([OK, ANOMALOUS])
    result = w.run()
    assert_rolled_back_once(w, result, "anomalous")
    assert w.clock.sleeps == [60.0, 60.0]
    assert w.judge.bake_calls == CHECKS[:2]
    assert w.cluster.restores[0].at == T0 + 120
    assert result.cause == (
        "Anomaly gate at 50%: anomalous. 1 anomalous check(s) reached the failure limit of 1 after 120 s of the "
        f"300 s bake (check 2 of 5, at {at(120).isoformat(timespec='seconds')}): shadow 5xx 25.0% vs main 0.0%"
    )
    assert result.msg.endswith(f"Steps that passed: none. Cause: {result.cause}")
    assert result.failed_check is not None
    assert (result.failed_check["check"], result.failed_check["verdict"]) == (2, "anomalous")
    assert result.steps == [step_row(50, "anomalous", end=T0 + 120, ok=1, anomalous=1)]


def test_failure_limit_two_tolerates_one_anomaly() -> None:
    tolerated = world([OK, ANOMALOUS, OK, OK, OK])
    assert tolerated.run(rules=rules(failure_limit=2)).outcome == PASSED
    second = world([ANOMALOUS, OK, ANOMALOUS])
    result = second.run(rules=rules(failure_limit=2))
    assert result.outcome == ROLLED_BACK
    assert result.cause_kind == "anomalous"
    assert second.judge.bake_calls == CHECKS[:3]


def test_one_prometheus_error_then_ok_does_not_roll_back() -> None:
    w = world([DOWN, OK, DOWN, OK, OK])
    result = w.run(rules=rules(error_limit=2))
    assert result.outcome == PASSED
    assert result.steps[0]["tally"] == {"ok": 3, "anomalous": 0, "inconclusive": 0, "errors": 2}


def test_error_limit_errors_in_a_row_roll_back() -> None:
    w = world([OK, DOWN, DOWN, DOWN])
    result = w.run()
    assert_rolled_back_once(w, result, "error_limit")
    assert w.judge.bake_calls == CHECKS[:4]
    assert "Anomaly gate at 50%: Prometheus errors. 3 consecutive check(s) could not ask Prometheus" in result.msg
    assert result.failed_check is not None
    assert result.failed_check["outcome"] == "error"
    assert result.steps[-1]["result"] == "failed"


def test_a_broken_custom_check_rolls_back_at_once() -> None:
    w = world([OK, BROKEN])
    result = w.run(rules=rules(failure_limit=5, error_limit=5))
    assert_rolled_back_once(w, result, "broken_check")
    assert w.judge.bake_calls == CHECKS[:2]
    assert result.cause == (
        "Custom check(s) orders typo in shadow_launch_metrics cannot be evaluated: bad_data: parse error at char 7"
    )


# --- preflight: refused before any write ------------------------------------------------------------------------


def assert_refused_untouched(w: World, result: LaunchResult) -> None:
    assert result.outcome == REFUSED
    assert result.failed
    assert result.cause_kind == "refused"
    assert result.cause == result.msg
    assert w.cluster.writes == []
    assert w.watchdog.events == []


def test_a_route_owned_by_another_live_launch_is_refused_naming_it() -> None:
    owner = other_record(T0 + 100)
    w = world(existing_percent=20, existing_record=owner, existing_attached=True)
    result = w.run(steps=(20, 50))
    assert_refused_untouched(w, result)
    assert (
        f"is owned by a running launch: launch launch-other run by bob@ci, started {format_time(at(-600))}, "
        f"deadline {format_time(at(100))}. Nothing was changed." in result.msg
    )
    assert "shadow_launch_takeover=true" in result.msg
    assert w.judge.calls == []
    assert w.cluster.record() == owner


def test_takeover_adopts_a_route_another_live_launch_owns() -> None:
    w = world(existing_percent=20, existing_record=other_record(T0 + 100), existing_attached=True)
    result = w.run(steps=(20, 50), takeover=True)
    assert result.outcome == PASSED
    assert any(line.startswith("Taking over launch launch-other run by bob@ci") for line in w.lines())
    assert w.cluster.applies[0].record == "running"
    assert result.passed == [20, 50]


def test_an_abandoned_record_is_no_owner_and_the_launch_resumes_from_its_percent() -> None:
    w = world(existing_percent=50, existing_record=other_record(T0 - 1), existing_attached=True)
    result = w.run(steps=(20, 50, 100))
    assert result.outcome == PASSED
    assert "Mirror is already at 50%: resuming with steps 50, 100 (earlier steps already ran)." in w.lines()
    assert not any(line.startswith("Plan for the first step") for line in w.lines())
    assert {write.percent for write in w.cluster.applies} == {50, 100}
    assert result.passed == [50, 100]
    assert [step["percent"] for step in result.steps] == [50, 100]


def test_resuming_between_two_steps_goes_on_with_the_next_one() -> None:
    w = world(existing_percent=30, existing_attached=True)
    result = w.run(steps=(20, 50, 100))
    assert result.passed == [50, 100]
    assert w.cluster.applies[0].percent == 50


def test_prometheus_unavailable_at_the_first_check_is_refused() -> None:
    w = world(preflight=DOWN)
    result = w.run()
    assert_refused_untouched(w, result)
    assert result.msg == "The anomaly gate cannot ask Prometheus, so nothing was changed: connection refused"
    assert w.judge.calls == [T0]


def test_a_broken_custom_check_at_preflight_is_refused() -> None:
    w = world(preflight=BROKEN)
    result = w.run()
    assert_refused_untouched(w, result)
    assert result.msg.startswith("Custom check(s) orders typo in shadow_launch_metrics cannot be evaluated")


def test_a_missing_route_is_refused() -> None:
    w = world(route_exists=False)
    result = w.run()
    assert_refused_untouched(w, result)
    assert result.msg.startswith(f"IngressRoute {ROUTE} in {NS} does not exist.")


def test_a_broken_route_is_refused() -> None:
    w = world()
    w.cluster.broken = [{"reference": "Service web/gone", "reason": "Service web/gone does not exist"}]
    result = w.run()
    assert_refused_untouched(w, result)
    assert "is already broken: Service web/gone does not exist." in result.msg


def test_a_dry_run_that_refuses_is_refused() -> None:
    w = world()
    w.cluster.plan_error = DarklaunchError("Service web/shop-staging does not exist.", field="mirror_service")
    result = w.run()
    assert_refused_untouched(w, result)
    assert result.msg == "Service web/shop-staging does not exist."


def test_check_mode_plans_without_writing_or_arming() -> None:
    w = world()
    result = w.run(check_mode=True, steps=(20, 50))
    assert result.outcome == PLANNED
    assert not result.failed
    assert result.cause is None
    assert w.cluster.writes == []
    assert w.watchdog.events == []
    assert w.clock.sleeps == []
    assert [(step["percent"], step["result"]) for step in result.steps] == [
        (20, CHECK_MODE_STEP),
        (50, CHECK_MODE_STEP),
    ]
    assert any(line.startswith("Plan for the first step (20%)") for line in w.lines())


# --- the operator takes over: never undone ------------------------------------------------------------------------


def assert_taken_over(w: World, result: LaunchResult, changed_at: float, seen_at: float) -> None:
    assert result.outcome == TAKEN_OVER
    assert result.failed
    assert result.cause_kind == "taken_over"
    assert w.writes_after(T0 + changed_at) == []
    assert w.cluster.restores == []
    assert w.watchdog.events == ["arm", "disarm"]
    assert w.judge.calls[-1] < T0 + seen_at
    assert w.cluster.observed[-1] == T0 + seen_at
    assert result.cause is not None
    assert result.msg == f"Shadow launch of {ROUTE} in {NS} was taken over: {result.cause}"
    assert "This launch stopped at its 50% step and left the route and the mirror as they are now" in result.cause


def taken_cause(result: LaunchResult) -> str:
    assert result.cause is not None
    return result.cause


def taken_over_by(change: Callable[[FakeCluster], object], seconds: float, check: float) -> tuple[World, str]:
    """A launch whose route or mirror ``change`` alters at ``seconds``: taken over at the check at ``check``;
    the world and the cause."""
    w = world()
    w.cluster.at(seconds, lambda: change(w.cluster))
    result = w.run()
    assert_taken_over(w, result, seconds, check)
    return w, taken_cause(result)


def test_a_mirror_deleted_during_a_bake_stops_the_launch_at_the_next_check() -> None:
    w, cause = taken_over_by(FakeCluster.delete_mirror, 90, 120)
    assert cause.startswith(f"The mirror {MIRROR} was deleted while the launch ran. ")
    assert w.cluster.mirror is None
    assert w.cluster.route is not None
    assert w.cluster.route["spec"]["routes"][0]["services"] == [{"name": MIRROR, "kind": "TraefikService"}]


def test_a_mirror_disabled_during_a_bake_says_the_route_no_longer_routes_through_it() -> None:
    cause = taken_over_by(lambda cluster: cluster.delete_mirror(detach=True), 90, 120)[1]
    assert cause.startswith(
        f"The mirror {MIRROR} was deleted while the launch ran and the IngressRoute no longer routes through it "
        f"(last change by kubectl-edit (Update) at {at(90).strftime('%Y-%m-%dT%H:%M:%SZ')}). "
    )


def test_a_changed_percent_stops_the_launch_naming_both_percentages() -> None:
    w, cause = taken_over_by(lambda cluster: cluster.set_percent(10), 150, 180)
    assert cause.startswith(f"The mirror {MIRROR} copies 10% to {SHADOW}, not the 50% this launch set")
    assert w.cluster._percent() == 10


def test_another_launch_taking_the_record_stops_this_one() -> None:
    w, cause = taken_over_by(FakeCluster.take_record, 90, 120)
    assert cause.startswith("Launch launch-other (bob@ci) took the route over")
    record = w.cluster.record()
    assert record is not None
    assert record.id == "launch-other"


def test_a_detached_route_stops_the_launch() -> None:
    cause = taken_over_by(FakeCluster.detach, 90, 120)[1]
    assert cause.startswith(f"IngressRoute {ROUTE} no longer routes through the mirror {MIRROR}")


def test_a_change_in_a_later_step_names_that_step() -> None:
    w = world()
    w.cluster.at(330, lambda: w.cluster.set_percent(20))
    result = w.run(steps=(20, 50))
    assert result.outcome == TAKEN_OVER
    assert "not the 50% this launch set" in result.msg
    assert "stopped at its 50% step" in result.msg
    assert result.passed == [20]


def test_a_watchdog_rollback_seen_as_a_deleted_mirror_ends_the_launch_rolled_back() -> None:
    # The run stalled past its lease; the watchdog restored the route. The run wakes, finds the mirror gone.
    w = world(acted=WATCHDOG_ROLLED_BACK)
    w.cluster.at(90, lambda: w.cluster.delete_mirror(detach=True))
    result = w.run()
    assert result.outcome == ROLLED_BACK
    assert "The watchdog rolled this launch back" in result.msg


# --- the operator's pause and abort ---------------------------------------------------------------------------


def paused_note(moment: float) -> str:
    return (
        f" | paused (paused by alice at {format_time(at(moment))}): holding this step until playbooks/shadow_resume.yml"
    )


def test_a_paused_launch_holds_its_step_past_the_bake_and_ends_it_at_the_first_ok_after_resume() -> None:
    w = world()
    w.cluster.at(90, lambda: w.cluster.control(PAUSED))
    w.cluster.at(450, lambda: w.cluster.control(None))
    result = w.run()
    assert result.outcome == PASSED
    held = [T0 + 60 * n for n in range(1, 9)]
    assert w.judge.bake_calls == held
    assert result.steps[0]["end"] == T0 + 480
    assert result.steps[0]["tally"]["ok"] == 8
    # Still renewing at every check, held or not.
    assert [write.at for write in w.cluster.applies if write.record == "running"][-8:] == held
    assert [c["paused"] for c in result.checks] == [False, True, True, True, True, True, True, False]
    assert [(c["check"], c["of"]) for c in result.checks][-3:] == [(6, 6), (7, 7), (8, 8)]
    lines = [line for _moment, line in w.lines_after(T0)]
    assert len(lines) == 8
    assert lines[1].endswith(paused_note(90))
    assert lines[6].startswith("50% step, 420/300 s, check 7/7: ok")
    assert lines[6].endswith(paused_note(90))
    assert "paused" not in lines[7]


def test_a_paused_launch_still_rolls_back_on_an_anomaly() -> None:
    w = world([OK, OK, ANOMALOUS])
    w.cluster.at(90, lambda: w.cluster.control(PAUSED))
    result = w.run()
    assert_rolled_back_once(w, result, "anomalous")
    assert w.cluster.restores[0].at == T0 + 180
    assert result.failed_check is not None
    assert result.failed_check["paused"] is True


def test_a_launch_paused_past_its_bake_keeps_checking_until_aborted() -> None:
    w = world()
    w.cluster.at(90, lambda: w.cluster.control(PAUSED))
    w.cluster.at(690, lambda: w.cluster.control(ABORTED))
    result = w.run()
    assert_rolled_back_once(w, result, "aborted")
    assert w.judge.bake_calls == [T0 + 60 * n for n in range(1, 12)]
    assert w.cluster.restores[0].at == T0 + 720


def test_an_abort_rolls_back_at_the_next_check() -> None:
    w = world()
    w.cluster.at(90, lambda: w.cluster.control(ABORTED, by="carol"))
    result = w.run(steps=(20, 50))
    assert_rolled_back_once(w, result, "aborted")
    assert w.cluster.restores[0].at == T0 + 120
    assert w.judge.bake_calls == [T0 + 60]  # the abort is read before the gate is asked
    assert result.cause == (
        f"Aborted by the operator (aborted by carol at {format_time(at(90))}, playbooks/shadow_abort.yml) during "
        "the 20% step."
    )
    assert result.steps[-1]["percent"] == 20
    assert result.steps[-1]["result"] == "failed"


def test_an_aborted_step_keeps_the_tally_of_its_checks() -> None:
    w = world()
    w.cluster.at(150, lambda: w.cluster.control(ABORTED))
    result = w.run()
    assert result.outcome == ROLLED_BACK
    assert result.steps[-1]["tally"]["ok"] == 2


def test_a_resumed_step_ends_at_its_next_check_which_must_be_a_conclusive_ok() -> None:
    # Held past its bake, the step ends at the first check after the resume, under the same last-check rule.
    w = world([OK, OK, OK, OK, OK, OK, INSUFFICIENT, OK])
    w.cluster.at(90, lambda: w.cluster.control(PAUSED))
    w.cluster.at(390, lambda: w.cluster.control(None))
    result = w.run()
    assert result.outcome == ROLLED_BACK
    assert result.cause_kind == "not_judged"
    assert w.cluster.restores[0].at == T0 + 420


# --- rollback -----------------------------------------------------------------------------------------------------


def test_a_rollback_in_a_later_step_names_the_steps_that_passed() -> None:
    w = world([OK] * 5 + [OK, ANOMALOUS])
    result = w.run(steps=(20, 50, 100))
    assert_rolled_back_once(w, result)
    assert result.passed == [20]
    assert "Steps that passed: 20%. Cause: Anomaly gate at 50%: anomalous." in result.msg
    assert [(s["percent"], s["result"]) for s in result.steps] == [(20, "ok"), (50, "anomalous")]
    assert "user responses" not in result.msg
    assert w.cluster.restores[0].at == T0 + 420
    assert any(line == "IngressRoute shop targets exactly what it targeted before the launch." for line in w.lines())


def test_a_failed_rollback_says_so_and_leaves_the_watchdog_armed() -> None:
    w = world([ANOMALOUS])
    w.cluster.restore_error = DarklaunchError("the API server answered 503")
    result = w.run()
    assert result.outcome == ROLLBACK_FAILED
    assert result.failed
    assert result.cause_kind == "anomalous"
    assert result.msg.startswith("ROLLBACK FAILED after the launch failed. Launch: Anomaly gate at 50%: anomalous.")
    assert "Rollback: the API server answered 503 The watchdog stays armed" in result.msg
    # The commands name the launch's cluster (the fake's context), whatever the current context is later.
    assert result.msg.endswith(
        f"Check the route with ansible-playbook darklaunch.traefik.shadow_status -e route_name={ROUTE} -e context=test "
        f"and, once the cause is fixed, restore it with ansible-playbook darklaunch.traefik.mirror_disable "
        f"-e route_name={ROUTE} -e context=test"
    )
    assert result.to_dict()["status_command"].endswith("-e context=test")
    assert result.cause is not None
    assert result.cause.startswith("Anomaly gate at 50%: anomalous.")
    assert len(w.cluster.restores) == 1
    assert w.watchdog.events == ["arm"]


def test_a_rollback_that_leaves_the_route_changed_is_a_failed_rollback() -> None:
    w = world([ANOMALOUS])
    changed = plain_route()
    changed["spec"]["routes"][0]["services"][0]["port"] = 8080
    w.cluster.restore_leaves = changed
    result = w.run()
    assert result.outcome == ROLLBACK_FAILED
    assert "The IngressRoute was not restored to its state before the launch." in result.msg


def test_a_rollback_that_puts_users_back_on_the_shadow_says_so() -> None:
    w = world([ANOMALOUS], shadow_share=10)
    result = w.run()
    assert_rolled_back_once(w, result)
    assert result.msg.endswith(
        f" Users are back on the route as it was before the launch, so 10% of user responses come from {SHADOW} "
        "again, the version this launch stopped. To keep users off it, take it out of the route's weighted split."
    )


def test_a_write_that_fails_during_a_step_rolls_back() -> None:
    w = world()
    w.cluster.at(150, lambda: setattr(w.cluster, "apply_error", DarklaunchError("conflict on shop-mirror")))
    result = w.run()
    assert_rolled_back_once(w, result, "error")
    assert result.cause == "conflict on shop-mirror"
    assert result.steps[-1]["result"] == "failed"


# --- the end of a launch ------------------------------------------------------------------------------------------


def test_teardown_restores_the_route_at_the_end() -> None:
    w = world()
    result = w.run(teardown=True)
    assert result.outcome == PASSED
    assert result.msg == "Every step passed its gate (50%); mirroring was turned off again."
    assert [(write.at, write.verb) for write in w.cluster.writes][-1] == (T0 + 300, "restore")
    assert len(w.cluster.restores) == 1
    assert not [write for write in w.cluster.applies if write.record == "finished"]
    assert w.cluster.mirror is None
    assert w.cluster.route == w.cluster.original_route
    assert w.watchdog.events == ["arm", "disarm"]


def test_without_teardown_the_record_is_closed_and_the_mirror_stays() -> None:
    w = world()
    result = w.run(teardown=False)
    assert result.outcome == PASSED
    assert w.cluster.writes[-1] == Write(T0 + 300, "apply", 50, True, "finished")
    assert w.cluster.restores == []
    assert w.cluster.mirror is not None
    assert w.cluster.record() is None
    assert w.cluster._percent() == 50
    assert w.watchdog.events == ["arm", "disarm"]


def test_a_watchdog_that_had_rolled_back_is_not_a_pass() -> None:
    w = world(acted=WATCHDOG_ROLLED_BACK)
    result = w.run()
    assert result.outcome == ROLLED_BACK
    assert result.failed
    assert result.cause_kind == "watchdog"
    assert "The watchdog rolled this launch back while it ran (the deadline passed by 30 s)" in result.msg


def test_the_changes_are_recorded_without_record_only_writes() -> None:
    w = world()
    result = w.run(steps=(20, 50))
    summaries = [summary for change in result.changes for summary in change["summaries"]]
    assert summaries == [
        f"create TraefikService {NS}/{MIRROR} copying 20% to {SHADOW}",
        f"IngressRoute {NS}/{ROUTE} route 0: {MAIN} -> {MIRROR}",
        f"TraefikService {NS}/{MIRROR}: copies 20% -> 50%",
    ]
    assert [change["at"] for change in result.changes] == [T0, T0, T0 + 300]


def test_an_attached_launch_says_only_the_warnings_that_are_true_after_the_attach() -> None:
    w = world()
    result = w.run()
    assert result.outcome == PASSED
    said = " ".join(w.lines())
    assert "Warning: mirror is inactive" not in said, said
    assert said.count("Warning: copies have side effects") == 1, said


def test_an_unattached_mirror_says_it_is_inactive() -> None:
    w = world()
    result = w.run(attach=False, rules=rules(gate=False))
    assert result.outcome == PASSED
    assert any(line.startswith("Mirror is inactive at 50% (waiting on an IngressRoute change).") for line in w.lines())
    assert "Warning: mirror is inactive" in " ".join(w.lines())
