# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The progressive shadow launch as one state machine: preflight, each step (set the percentage, bake,
check every interval, renew the launch record), the rollback decision, teardown, and the data for the report.

Everything outside this file reaches it through four ports, so the unit tests drive it with a fake clock,
a fake cluster and a fake Prometheus: ``Cluster`` (traefik_mirror's Python and reads by name), ``Judge``
(the traffic lookup's ``anomalies`` answer), ``Watchdog`` (arm, disarm) and ``Clock`` (now, sleep).
The rules themselves (cadence, lease, limits, step verdict) are in ``_launch_rules``.

The operator is in charge: before every write the engine checks that the mirror and the route are as it
left them (``_launch_state.deviation``); an operator's change stops the launch with ``taken_over`` and is
never undone. The operator's pause and abort (``_launch_control``) are read at every check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control import ABORTED, PAUSED, Control
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_ports import (
    CHECK_MODE_STEP,
    PASSED,
    PLANNED,
    REFUSED,
    ROLLBACK_FAILED,
    ROLLED_BACK,
    TAKEN_OVER,
    Clock,
    Cluster,
    Judge,
    JudgeUnavailable,
    LaunchPlan,
    LaunchResult,
    Watchdog,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import (
    ANOMALOUS,
    BROKEN,
    ERROR,
    OK,
    STEP_GATE_OFF,
    Tally,
    check_due,
    checks_per_step,
    classify,
    limit_reached,
    step_verdict,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_state import (
    Expected,
    Seen,
    deviation,
    live_owner,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_wording import (
    broken_message,
    budget_line,
    capitalised,
    check_line,
    compare_side,
    failed_result,
    limit_word,
    users_line,
    warnings,
)


class _Stop(Exception):
    """Ends the launch from anywhere inside a step: ``outcome`` says whether to roll back."""

    def __init__(self, outcome: str, cause: str, kind: str, failed_check: dict[str, Any] | None = None) -> None:
        super().__init__(cause)
        self.outcome = outcome
        self.cause = cause
        self.kind = kind
        self.failed_check = failed_check


class LaunchEngine:
    def __init__(
        self,
        plan: LaunchPlan,
        cluster: Cluster,
        judge: Judge | None,
        watchdog: Watchdog | None,
        clock: Clock,
        say: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.cluster = cluster
        self.judge = judge if plan.rules.gate else None
        self.watchdog = watchdog
        self.clock = clock
        self._say = say
        self.result = LaunchResult(outcome=PASSED, msg="")
        self._expected: Expected | None = None
        self._steps: list[int] = list(plan.steps)
        self._step: dict[str, Any] | None = None
        self._control: Control | None = None
        self._budget_said = False
        self._armed = False

    # --- the launch ------------------------------------------------------------------------------------

    def run(self) -> LaunchResult:
        try:
            self._preflight()
        except DarklaunchError as error:
            return self._end(REFUSED, error.msg, "refused")
        except _Stop as stop:
            return self._end(stop.outcome, stop.cause, stop.kind)
        if self.plan.check_mode:
            return self._planned()
        try:
            self._arm()
            self._enable()
            for percent in self._steps:
                self._run_step(percent)
            self._finish()
        except _Stop as stop:
            if stop.outcome == TAKEN_OVER:
                try:
                    self._disarm()
                except _Stop as watchdog:
                    return self._end(ROLLED_BACK, f"{stop.cause} {watchdog.cause}", watchdog.kind)
                return self._end(
                    TAKEN_OVER,
                    f"Shadow launch of {self.plan.route_name} in {self.plan.namespace} was taken over: {stop.cause}",
                    stop.kind,
                    stop.failed_check,
                    cause=stop.cause,
                )
            return self._roll_back(stop.cause, stop.kind, stop.failed_check)
        except DarklaunchError as error:
            return self._roll_back(error.msg, "error")
        return self._end(PASSED, self._passed_summary(), None)

    # --- preflight: nothing here writes ----------------------------------------------------------------

    def _preflight(self) -> None:
        self._refuse_owned_route()
        dry_run = self.cluster.plan(self._steps[0])
        resolved = dict(dry_run.get("resolved") or {})
        self.result.resolved = resolved
        current = int(resolved.get("previous_percent") or 0)
        if current:
            self._steps = [step for step in self._steps if step >= current] or [current]
            self.say(
                f"Mirror is already at {current}%: resuming with steps {', '.join(map(str, self._steps))} "
                "(earlier steps already ran)."
            )
        if self.judge is not None:
            self._first_check()
        before = self.cluster.read_route()
        if before is None:
            raise DarklaunchError(
                f"{self._kind()} {self.plan.route_name} in {self.plan.namespace} does not exist. Fix the route before "
                "launching a shadow on it.",
                field="shadow_launch_route_name",
            )
        broken = before.get("broken") or []
        if broken:
            reasons = "; ".join(str(item.get("reason")) for item in broken)
            raise DarklaunchError(
                f"{self._kind()} {self.plan.route_name} in {self.plan.namespace} is already broken: {reasons}. Fix the "
                "route before launching a shadow on it.",
                field="shadow_launch_route_name",
            )
        self.result.before = before
        if not current:
            kinds = ("TraefikService", "IngressRoute", "HTTPRoute") if self.plan.attach else ("TraefikService",)
            summaries = [a["summary"] for a in dry_run.get("actions") or [] if a.get("kind") in kinds]
            self.say(f"Plan for the first step ({self._steps[0]}%): " + ("; ".join(summaries) or "nothing to change"))
        rules = self.plan.rules
        if rules.gate and rules.bake_seconds < self.plan.window_seconds:
            self.say(
                f"Each step bakes {rules.bake_seconds}s but the anomaly gate judges the last {self.plan.window}: part "
                "of what it judges happened before the step. Raise shadow_launch_bake_seconds or shorten "
                "shadow_launch_window."
            )

    def _refuse_owned_route(self) -> None:
        mirror, _route = self.cluster.observe()
        owner = live_owner(mirror, self.plan.launch_id, self._now())
        if owner is None:
            return
        if self.plan.takeover:
            self.say(f"Taking over {owner} (shadow_launch_takeover=true): that launch stops at its next check.")
            return
        raise DarklaunchError(
            f"Route {self.plan.route_name} in {self.plan.namespace} is owned by a running launch: {owner}. Nothing "
            "was changed. Wait for it to end, pause or abort it (playbooks/shadow_pause.yml, shadow_abort.yml), or "
            "set shadow_launch_takeover=true to adopt it.",
            field="shadow_launch_takeover",
        )

    def _first_check(self) -> None:
        """The gate must be able to ask Prometheus before anything changes."""
        try:
            report = self.judge.check() if self.judge else {}
        except JudgeUnavailable as error:
            raise DarklaunchError(
                f"The anomaly gate cannot ask Prometheus, so nothing was changed: {error}", field="prometheus_url"
            ) from None
        if classify(report) == BROKEN:
            raise DarklaunchError(broken_message(report), field="shadow_launch_metrics")

    def _planned(self) -> LaunchResult:
        now = self._now()
        self.result.steps = [
            {"percent": p, "result": CHECK_MODE_STEP, "tally": Tally().to_dict(), "start": now, "end": now}
            for p in self._steps
        ]
        return self._end(PLANNED, "Check mode: nothing was changed; the plan above is what the launch would do.", None)

    # --- changes ---------------------------------------------------------------------------------------

    def _arm(self) -> None:
        if self.watchdog is not None:
            log = self.watchdog.arm()
            self._armed = True
            if log:
                self.say(f"Watchdog armed: it rolls the launch back if this run is interrupted (its log: {log}).")

    def _disarm(self) -> None:
        if self.watchdog is None or not self._armed:
            return
        self._armed = False
        acted = self.watchdog.disarm()
        if acted and acted.get("outcome") == "rolled_back":
            raise _Stop(
                ROLLED_BACK,
                "The watchdog rolled this launch back while it ran "
                f"({acted.get('reason', 'no reason recorded')}): this run stopped renewing its launch record for "
                "longer than the lease allows. The route was restored.",
                "watchdog",
            )

    def _write(
        self, percent: int, attach: bool, record: str = "running", checked: bool = False, progress: str | None = None
    ) -> dict[str, Any]:
        """Every write of a running launch: first check (unless the caller just did) that nobody changed what
        this launch left."""
        if not checked:
            self._check_unchanged()
        applied = self.cluster.apply(percent, attach, record, progress)
        self._record_changes(applied)
        if applied.get("resolved"):
            self.result.resolved = dict(applied["resolved"])
        self._expected = Expected(percent=percent, attached=attach, launch_id=self.plan.launch_id)
        return applied

    def _check_unchanged(self) -> Seen:
        mirror, route = self.cluster.observe()
        seen = Seen.of(mirror, route, self.result.resolved)
        if self._expected is not None:
            changed = deviation(seen, self._expected)
            if changed is not None:
                percent = self._step["percent"] if self._step else self._expected.percent
                raise _Stop(
                    TAKEN_OVER,
                    f"{changed}. This launch stopped at its {percent}% step and left the route and the mirror as "
                    "they are now: it never undoes an operator's change. Check them with playbooks/shadow_status.yml.",
                    "taken_over",
                )
        self._control = seen.control
        return seen

    def _record_changes(self, applied: Mapping[str, Any]) -> None:
        summaries = [a["summary"] for a in applied.get("actions") or [] if not a.get("record_only")]
        if summaries:
            self.result.changes.append({"at": self._now(), "summaries": summaries})

    def _enable(self) -> None:
        first = self._steps[0]
        created = self._write(first, attach=False)
        made = [a["summary"] for a in created.get("actions") or [] if not a.get("record_only")]
        if not self.plan.attach:
            status = created.get("status")
            waiting = f" (waiting on an {self._kind()} change)." if status == "inactive" else "."
            self.say(" ".join([f"Mirror is {status} at {first}%{waiting}", *made, *warnings(created)]))
            return
        # Created unattached on purpose (Traefik builds the mirror before a router needs it). The attach is the
        # next write, so this write's warnings (an inactive mirror among them) are not true for long: the
        # attach's own warnings are the ones said.
        verb = "created" if any(a.get("verb") == "create" for a in created.get("actions") or []) else "set"
        self.say(" ".join([f"Mirror {verb} at {first}%, attached next.", *made]))
        attached = self._write(first, attach=True)
        users = (
            [users_line(self.result.before, attached)]
            if any(not a.get("record_only") for a in attached.get("actions") or [])
            else []
        )
        if users or attached.get("warnings"):
            self.say(" ".join([*users, *warnings(attached)]))

    def _finish(self) -> None:
        self._step = None
        if self.plan.teardown:
            self._check_unchanged()
            self._restore()
        else:
            self._write(self._steps[-1], self.plan.attach, record="finished")
        self._disarm()

    # --- one step --------------------------------------------------------------------------------------

    def _run_step(self, percent: int) -> None:
        rules = self.plan.rules
        self._write(percent, self.plan.attach)
        start = self._now()
        self._step = {"percent": percent, "start": start}
        tally = Tally()
        planned = checks_per_step(rules)
        number = 0
        while True:
            number += 1
            self._sleep_until(start + check_due(number, rules))
            started = self._now()
            seen = self._check_unchanged()
            if seen.control is not None and seen.control.state == ABORTED:
                raise _Stop(
                    ROLLED_BACK,
                    f"Aborted by the operator ({seen.control.describe()}, playbooks/shadow_abort.yml) during the "
                    f"{percent}% step.",
                    "aborted",
                )
            paused = seen.control is not None and seen.control.state == PAUSED
            of = max(planned, number)
            line = f"{percent}% step, {int(started - start)}/{rules.bake_seconds} s, check {number}/{of}: gate off"
            if self.judge is not None:
                # A limit reached here rolls back at once, without renewing the record first.
                tally, line = self._judge(percent, number, of, start, started, tally, paused)
                self._step["tally"] = tally.to_dict()  # for the report, should a later write fail
            # Renews the launch record, with the checks so far for shadow_status.yml.
            self._write(percent, self.plan.attach, checked=True, progress=self._progress(percent, number, tally))
            self.say(line + self._paused_note())
            if paused:
                continue
            if number >= planned:
                break
        verdict = step_verdict(tally, rules)
        record = {
            "percent": percent,
            "result": verdict.result,
            "tally": tally.to_dict(),
            "start": start,
            "end": self._now(),
        }
        if not verdict.passed:
            last = self.result.checks[-1] if self.result.checks else None
            summary = last.get("summary") if last else "no check ran"
            self._step = {**record, "result": verdict.result}
            raise _Stop(
                ROLLED_BACK,
                f"Anomaly gate at {percent}%: not judged. {capitalised(verdict.reason or '')} (last: {summary}). "
                "A gate that judged nothing is not a pass, so the launch is rolled back. Send more traffic through "
                "the route, lower shadow_launch_min_requests, bake longer, or set "
                "shadow_launch_fail_on_insufficient_data=false to go on without a verdict.",
                "not_judged",
                last,
            )
        if verdict.result != STEP_GATE_OFF and tally.last != OK:
            self.say(
                f"Step {percent}%: NOT JUDGED. Its last check was not a conclusive ok; the launch goes on only "
                "because shadow_launch_fail_on_insufficient_data is false. This is not an all-clear."
            )
        self.result.steps.append(record)
        self.result.passed.append(percent)
        self._step = None

    def _judge(
        self, percent: int, number: int, of: int, start: float, started: float, tally: Tally, paused: bool
    ) -> tuple[Tally, str]:
        """Ask the gate once; stop at a limit, else return the step's tally and the check's line."""
        rules = self.plan.rules
        try:
            report = dict(self.judge.check(since=start)) if self.judge else {}
            outcome = classify(report)
        except JudgeUnavailable as error:
            report = {"verdict": "error", "summary": f"Prometheus could not be asked: {error}", "services": []}
            outcome = ERROR
        ended = self._now()
        check = {
            **report,
            "percent": percent,
            "check": number,
            "of": of,
            "elapsed": round(started - start, 1),
            "at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "outcome": outcome,
            "started": started,
            "ended": ended,
            "paused": paused,
        }
        self.result.checks.append(check)
        if not self._budget_said and outcome in (OK, ANOMALOUS) and "false_alarm_budget" in report:
            self._budget_said = True
            self.say(budget_line(report))
        tally = tally.record(outcome)
        line = check_line(check, rules.bake_seconds)
        limit = limit_reached(tally, rules)
        if limit is None:
            return tally, line
        self.say(line + self._paused_note())
        self._step = {
            "percent": percent,
            "result": failed_result(limit.kind),
            "tally": tally.to_dict(),
            "start": start,
            "end": ended,
        }
        if limit.kind == "broken_check":
            cause = broken_message(report)
        else:
            cause = (
                f"Anomaly gate at {percent}%: {limit_word(limit.kind)}. {limit.message} after "
                f"{int(check['elapsed'])} s of the {rules.bake_seconds} s bake (check {number} of {of}, at "
                f"{check['at']}): {report.get('summary')}"
            )
        raise _Stop(ROLLED_BACK, cause, limit.kind, check)

    def _progress(self, percent: int, number: int, tally: Tally) -> str:
        """The checks so far in one line, for the launch record (shadow_status.yml shows it)."""
        passed = ", ".join(f"{p}%" for p in self.result.passed) or "none"
        counts = (
            f"{tally.ok} ok, {tally.anomalous} anomalous, {tally.inconclusive} inconclusive, {tally.errors} errors"
            if self.judge is not None
            else "gate off"
        )
        paused = f"; {self._control.describe()}" if self._control is not None else ""
        # The difference check (shadow_launch_compare) of the last check, for shadow_status.yml.
        last = self.result.checks[-1] if self.judge is not None and self.result.checks else {}
        compare = f"; {compare_side(last['compare'])}" if isinstance(last.get("compare"), Mapping) else ""
        return (
            f"check {number} of the {percent}% step ({counts}; last {tally.last or '-'}{compare}); steps passed: "
            f"{passed}{paused}"
        )

    def _paused_note(self) -> str:
        if self._control is None or self._control.state != PAUSED:
            return ""
        return f" | paused ({self._control.describe()}): holding this step until playbooks/shadow_resume.yml"

    def _sleep_until(self, moment: float) -> None:
        wait = moment - self._now()
        if wait > 0:
            self.clock.sleep(wait)

    # --- endings ---------------------------------------------------------------------------------------

    def _restore(self) -> dict[str, Any]:
        restored = self.cluster.restore()
        self._record_changes(restored)
        if restored.get("resolved") and not self.result.resolved:
            self.result.resolved = dict(restored["resolved"])
        undone = [a["summary"] for a in restored.get("actions") or []] or ["No mirror was left: nothing to undo."]
        self.say(" ".join(undone + [f"Warning: {w}" for w in restored.get("warnings") or []]))
        self._expected = None
        self._verify_restored()
        return restored

    def _verify_restored(self) -> None:
        """Only comparable when the launch started from a route that was not already behind a mirror."""
        before = self.result.before
        if not before or not self.plan.restore_to_wrr or (before.get("traffic_split") or {}).get("type") == "mirror":
            return
        after = self.cluster.read_route() or {}
        targets_before = [r.get("targets") for r in before.get("routes") or []]
        targets_after = [r.get("targets") for r in after.get("routes") or []]
        if targets_before != targets_after:
            raise DarklaunchError(
                f"The {self._kind()} was not restored to its state before the launch. Before: {targets_before}; "
                f"now: {targets_after}."
            )
        self.say(f"{self._kind()} {self.plan.route_name} targets exactly what it targeted before the launch.")

    def _roll_back(self, cause: str, kind: str, failed_check: dict[str, Any] | None = None) -> LaunchResult:
        if self._step is not None:
            step = {"result": "failed", "tally": Tally().to_dict(), "end": self._now(), **self._step}
            self.result.steps.append(step)
            self._step = None
        try:
            self._restore()
            self._disarm()
        except _Stop as watchdog:
            cause = f"{cause} {watchdog.cause}"
        except DarklaunchError as error:
            armed = "The watchdog stays armed and tries the rollback again when this run exits. " if self._armed else ""
            return self._end(
                ROLLBACK_FAILED,
                f"ROLLBACK FAILED after the launch failed. Launch: {cause} Rollback: {error.msg} {armed}Check the "
                f"route with {self.cluster.status_command()} and, once the cause is fixed, restore it with "
                f"{self.cluster.rollback_command()}",
                kind,
                failed_check,
                cause=cause,
            )
        passed = ", ".join(f"{p}%" for p in self.result.passed) or "none"
        return self._end(
            ROLLED_BACK,
            f"Shadow launch of {self.plan.route_name} in {self.plan.namespace} was rolled back. Steps that passed: "
            f"{passed}. Cause: {cause}{self._users_on_shadow_sentence()}",
            kind,
            failed_check,
            cause=cause,
        )

    def _users_on_shadow_sentence(self) -> str:
        """The rollback restores the route exactly; when that split sends users to the version just stopped, say so."""
        shadow = self.result.resolved.get("mirror_service")
        route = self.cluster.read_route() or {}
        share = sum(
            float(sink.get("user_share_percent") or 0)
            for sink in route.get("main_sink") or []
            if sink.get("kind") == "Service"
            and sink.get("namespace") == self.plan.namespace
            and sink.get("name") == shadow
        )
        if not share:
            return ""
        return (
            f" Users are back on the route as it was before the launch, so {share:g}% of user responses come from "
            f"{shadow} again, the version this launch stopped. To keep users off it, take it out of the route's "
            "weighted split."
        )

    def _passed_summary(self) -> str:
        steps = ", ".join(f"{p}%" for p in self.result.passed)
        tail = "; mirroring was turned off again" if self.plan.teardown else "; the mirror stays in place"
        return f"Every step passed its gate ({steps}){tail}."

    def _end(
        self,
        outcome: str,
        msg: str,
        kind: str | None,
        failed_check: dict[str, Any] | None = None,
        cause: str | None = None,
    ) -> LaunchResult:
        self.result.outcome = outcome
        self.result.msg = msg
        self.result.cause = cause if cause is not None else (msg if outcome not in (PASSED, PLANNED) else None)
        self.result.cause_kind = kind
        self.result.failed_check = failed_check
        self.result.status_command = self.cluster.status_command()
        return self.result

    def _kind(self) -> str:
        """The route's kind as traefik_mirror resolved it (an IngressRoute until it says otherwise)."""
        return str(self.result.resolved.get("route_kind") or "IngressRoute")

    def say(self, line: str) -> None:
        self.result.lines.append(line)
        self._say(line)

    def _now(self) -> float:
        return self.clock.now()
