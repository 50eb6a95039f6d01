# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch's rules, each stated once: cadence, lease, what a check counts as, the limits, the step verdict.

The engine (``_launch_engine``) applies them; the role's documentation states them with examples, and
the unit tests pin each one. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_metrics import CHECK_ERROR
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import VERDICT_ANOMALOUS, VERDICT_OK

# What one check of the gate counts as.
OK = VERDICT_OK
ANOMALOUS = VERDICT_ANOMALOUS
INCONCLUSIVE = "inconclusive"  # the lookup answered insufficient_data: too few requests, no samples
ERROR = "error"  # Prometheus (or the API) could not be asked: timeout, refused, 5xx
BROKEN = "broken"  # a custom check Prometheus refuses to evaluate: asking again cannot help

# The limits a step can reach (Limit.kind; the launch result's cause_kind).
LIMIT_ANOMALOUS = ANOMALOUS
LIMIT_INCONCLUSIVE = "inconclusive_limit"
LIMIT_ERRORS = "error_limit"
LIMIT_BROKEN_CHECK = "broken_check"

# How a step ends.
STEP_OK = "ok"
STEP_NOT_JUDGED = "not judged"  # passes only with fail_on_insufficient_data=false
STEP_GATE_OFF = "gate off"

MIN_AUTOMATIC_INTERVAL = 10
LEASE_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class GateRules:
    """The settings the rules read (role variables shadow_launch_*)."""

    bake_seconds: int
    interval_seconds: int
    failure_limit: int = 1
    inconclusive_limit: int = 3
    error_limit: int = 3
    fail_on_insufficient_data: bool = True
    gate: bool = True


def check_rules(rules: GateRules) -> None:
    """Refuse settings that cannot work, naming the variable."""
    for name, value, low in (
        ("bake_seconds", rules.bake_seconds, 0),
        ("interval", rules.interval_seconds, 1),
        ("failure_limit", rules.failure_limit, 1),
        ("inconclusive_limit", rules.inconclusive_limit, 0),
        ("error_limit", rules.error_limit, 1),
    ):
        if value < low:
            raise DarklaunchError(
                f"shadow_launch_{name} must be {low} or more (got {value}).", field=f"shadow_launch_{name}"
            )


# --- cadence and lease ---------------------------------------------------------------------------------


def interval_seconds(option: int, window_seconds: float) -> int:
    """The seconds between two checks: the option, or (0) the window and at least 10 s."""
    if option > 0:
        return option
    return max(MIN_AUTOMATIC_INTERVAL, math.ceil(window_seconds))


def checks_per_step(rules: GateRules) -> int:
    """One check every interval, the last at the end of the bake; at least one."""
    return max(1, math.ceil(rules.bake_seconds / rules.interval_seconds))


def check_due(number: int, rules: GateRules) -> float:
    """Seconds after the step started at which check ``number`` (from 1) is due: never after the bake's end.

    Past the bake (a paused step holds), checks go on one interval apart.
    """
    planned = checks_per_step(rules)
    if number <= planned:
        return float(min(number * rules.interval_seconds, rules.bake_seconds))
    return float(rules.bake_seconds + (number - planned) * rules.interval_seconds)


def lease_seconds(option: int, rules: GateRules) -> int:
    """How long the launch record stays valid unrenewed: the option, or (0) long enough for two missed
    renewals. Every check renews it, gate or not."""
    if option > 0:
        return option
    return 2 * rules.interval_seconds + LEASE_MARGIN_SECONDS


# --- one check -----------------------------------------------------------------------------------------


def classify(report: dict[str, object]) -> str:
    """What the traffic lookup's answer counts as: a custom check Prometheus cannot evaluate is BROKEN;
    otherwise ok, anomalous, or (anything else) inconclusive. Inconclusive is never a pass."""
    rows = report.get("metrics") or []
    if isinstance(rows, list) and any(isinstance(row, dict) and row.get("verdict") == CHECK_ERROR for row in rows):
        return BROKEN
    verdict = report.get("verdict")
    if verdict == OK:
        return OK
    if verdict == ANOMALOUS:
        return ANOMALOUS
    return INCONCLUSIVE


@dataclass(frozen=True)
class Tally:
    """The checks of one step so far."""

    ok: int = 0
    anomalous: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last: str | None = None

    def record(self, outcome: str) -> Tally:
        counts = {
            OK: replace(self, ok=self.ok + 1),
            ANOMALOUS: replace(self, anomalous=self.anomalous + 1),
            INCONCLUSIVE: replace(self, inconclusive=self.inconclusive + 1),
            BROKEN: self,
        }
        if outcome == ERROR:
            return replace(self, errors=self.errors + 1, consecutive_errors=self.consecutive_errors + 1, last=ERROR)
        return replace(counts[outcome], consecutive_errors=0, last=outcome)

    def to_dict(self) -> dict[str, int]:
        return {OK: self.ok, ANOMALOUS: self.anomalous, INCONCLUSIVE: self.inconclusive, "errors": self.errors}


@dataclass(frozen=True)
class Limit:
    """A limit the step reached: which one (``anomalous``, ``inconclusive_limit``, ``error_limit``,
    ``broken_check``) and a sentence for the operator."""

    kind: str
    message: str


def limit_reached(tally: Tally, rules: GateRules) -> Limit | None:
    """The limit the step's checks reached, if any; each is acted on at once (within one interval)."""
    if tally.last == BROKEN:
        return Limit(LIMIT_BROKEN_CHECK, "a custom check cannot be evaluated by Prometheus; asking again cannot help")
    if tally.anomalous >= rules.failure_limit:
        return Limit(
            LIMIT_ANOMALOUS,
            f"{tally.anomalous} anomalous check(s) reached the failure limit of {rules.failure_limit}",
        )
    if tally.consecutive_errors >= rules.error_limit:
        return Limit(
            LIMIT_ERRORS,
            f"{tally.consecutive_errors} consecutive check(s) could not ask Prometheus, the error limit of "
            f"{rules.error_limit}; a gate that cannot see is not a pass",
        )
    # Going on blind (fail_on_insufficient_data=false) is the operator's explicit choice for a quiet route.
    if rules.fail_on_insufficient_data and rules.inconclusive_limit and tally.inconclusive >= rules.inconclusive_limit:
        return Limit(
            LIMIT_INCONCLUSIVE,
            f"{tally.inconclusive} inconclusive check(s) reached the inconclusive limit of {rules.inconclusive_limit}",
        )
    return None


# --- the step ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepVerdict:
    """How a step whose bake is over ends: ``passed`` with its result, or failed with the reason."""

    passed: bool
    result: str  # STEP_OK, STEP_NOT_JUDGED, STEP_GATE_OFF, or for a failed step "not judged" / "failed"
    reason: str | None = None


def step_verdict(tally: Tally, rules: GateRules) -> StepVerdict:
    """A step passes only when its last check is a conclusive ok (limits are checked after every check).

    A shadow that answered well once and then stopped answering ends on an inconclusive check, so its step
    fails. ``fail_on_insufficient_data=false`` lets a step whose last check was not ok go on as
    ``not judged`` (never ``ok``).
    """
    if not rules.gate:
        return StepVerdict(True, STEP_GATE_OFF)
    if tally.last == OK:
        return StepVerdict(True, STEP_OK)
    if not rules.fail_on_insufficient_data:
        return StepVerdict(True, STEP_NOT_JUDGED)
    last = {ERROR: "could not ask Prometheus", INCONCLUSIVE: "was inconclusive", None: "never ran"}.get(
        tally.last, f"was {tally.last}"
    )
    return StepVerdict(False, STEP_NOT_JUDGED, f"the step's last check {last}, and only a conclusive ok passes a step")
