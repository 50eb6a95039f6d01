# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch's rules, one by one: cadence, lease, what a check counts as, the limits and the step verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import (
    ANOMALOUS,
    BROKEN,
    ERROR,
    INCONCLUSIVE,
    OK,
    STEP_GATE_OFF,
    STEP_NOT_JUDGED,
    STEP_OK,
    GateRules,
    Tally,
    check_due,
    check_rules,
    checks_per_step,
    classify,
    interval_seconds,
    lease_seconds,
    limit_reached,
    step_verdict,
)

DEFAULT = GateRules(bake_seconds=300, interval_seconds=60)


def rules(**changes: Any) -> GateRules:
    values: dict[str, Any] = {"bake_seconds": 300, "interval_seconds": 60}
    values.update(changes)
    return GateRules(**values)


def tally_of(outcomes: Sequence[str]) -> Tally:
    tally = Tally()
    for outcome in outcomes:
        tally = tally.record(outcome)
    return tally


def first_limit(outcomes: Sequence[str], gate: GateRules) -> tuple[int, str] | None:
    """The check (from 1) at which the engine would stop, and the limit's kind: the engine acts on a limit at
    the check that reaches it."""
    tally = Tally()
    for number, outcome in enumerate(outcomes, start=1):
        tally = tally.record(outcome)
        limit = limit_reached(tally, gate)
        if limit is not None:
            return number, limit.kind
    return None


# --- settings ------------------------------------------------------------------------------------------


def test_the_defaults_are_accepted() -> None:
    check_rules(DEFAULT)
    assert (DEFAULT.failure_limit, DEFAULT.inconclusive_limit, DEFAULT.error_limit) == (1, 3, 3)
    assert DEFAULT.fail_on_insufficient_data is True
    assert DEFAULT.gate is True


@pytest.mark.parametrize(
    ("changes", "variable", "low"),
    [
        ({"bake_seconds": -1}, "shadow_launch_bake_seconds", 0),
        ({"interval_seconds": 0}, "shadow_launch_interval", 1),
        ({"failure_limit": 0}, "shadow_launch_failure_limit", 1),
        ({"inconclusive_limit": -1}, "shadow_launch_inconclusive_limit", 0),
        ({"error_limit": 0}, "shadow_launch_error_limit", 1),
    ],
)
def test_check_rules_refuses_what_cannot_work_naming_the_variable(
    changes: dict[str, int], variable: str, low: int
) -> None:
    with pytest.raises(DarklaunchError) as caught:
        check_rules(rules(**changes))
    assert caught.value.field == variable
    got = next(iter(changes.values()))
    assert caught.value.msg == f"{variable} must be {low} or more (got {got})."


@pytest.mark.parametrize(
    "changes",
    [{"bake_seconds": 0}, {"interval_seconds": 1}, {"failure_limit": 1}, {"inconclusive_limit": 0}, {"error_limit": 1}],
)
def test_check_rules_accepts_each_lowest_value(changes: dict[str, int]) -> None:
    check_rules(rules(**changes))


# --- cadence and lease ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "window", "expected"),
    [
        (60, 300.0, 60),  # the option wins over the window
        (1, 300.0, 1),
        (0, 60.0, 60),  # 0: the window's length
        (0, 90.5, 91),  # rounded up to whole seconds
        (0, 5.0, 10),  # at least 10 s
        (0, 0.0, 10),
        (0, 10.0, 10),
    ],
)
def test_interval_is_the_option_or_the_window_and_at_least_ten_seconds(
    option: int, window: float, expected: int
) -> None:
    assert interval_seconds(option, window) == expected


def test_the_default_bake_makes_five_checks_one_interval_apart() -> None:
    assert checks_per_step(DEFAULT) == 5
    assert [check_due(n, DEFAULT) for n in range(1, 6)] == [60.0, 120.0, 180.0, 240.0, 300.0]


def test_a_bake_that_is_not_a_multiple_of_the_interval_ends_with_a_check_at_its_end() -> None:
    gate = rules(bake_seconds=150, interval_seconds=60)
    assert checks_per_step(gate) == 3
    assert [check_due(n, gate) for n in (1, 2, 3)] == [60.0, 120.0, 150.0]


def test_a_bake_shorter_than_the_interval_has_one_check_at_its_end() -> None:
    gate = rules(bake_seconds=30, interval_seconds=60)
    assert checks_per_step(gate) == 1
    assert check_due(1, gate) == 30.0


def test_a_zero_bake_still_has_one_check() -> None:
    gate = rules(bake_seconds=0, interval_seconds=60)
    assert checks_per_step(gate) == 1
    assert check_due(1, gate) == 0.0


def test_a_held_step_checks_on_one_interval_apart_past_the_bake() -> None:
    assert [check_due(n, DEFAULT) for n in (6, 7, 8)] == [360.0, 420.0, 480.0]
    gate = rules(bake_seconds=150, interval_seconds=60)
    assert [check_due(n, gate) for n in (4, 5)] == [210.0, 270.0]


@pytest.mark.parametrize(("option", "interval", "expected"), [(0, 60, 180), (0, 10, 80), (0, 300, 660), (45, 60, 45)])
def test_lease_is_the_option_or_two_intervals_plus_a_minute(option: int, interval: int, expected: int) -> None:
    assert lease_seconds(option, rules(interval_seconds=interval)) == expected


def test_the_lease_is_the_same_with_the_gate_off() -> None:
    # Every check renews the record, gate or not.
    assert lease_seconds(0, rules(gate=False)) == lease_seconds(0, DEFAULT) == 180


# --- one check -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ({"verdict": "ok"}, OK),
        ({"verdict": "anomalous"}, ANOMALOUS),
        ({"verdict": "insufficient_data"}, INCONCLUSIVE),
        ({"verdict": "something new"}, INCONCLUSIVE),
        ({}, INCONCLUSIVE),
        ({"verdict": "ok", "metrics": [{"name": "p99", "verdict": "ok"}]}, OK),
        ({"verdict": "ok", "metrics": [{"name": "p99", "verdict": "anomalous"}]}, OK),
        ({"verdict": "insufficient_data", "metrics": [{"name": "p99", "verdict": "insufficient_data"}]}, INCONCLUSIVE),
        # A custom check Prometheus cannot evaluate is broken, whatever the overall verdict.
        ({"verdict": "ok", "metrics": [{"name": "typo", "verdict": "error"}]}, BROKEN),
        (
            {"verdict": "anomalous", "metrics": [{"name": "a", "verdict": "ok"}, {"name": "b", "verdict": "error"}]},
            BROKEN,
        ),
        ({"verdict": "ok", "metrics": None}, OK),
        ({"verdict": "ok", "metrics": ["not a row"]}, OK),
    ],
)
def test_classify(report: dict[str, object], expected: str) -> None:
    assert classify(report) == expected


def test_tally_counts_each_outcome_and_remembers_the_last() -> None:
    tally = tally_of([OK, ANOMALOUS, INCONCLUSIVE, ERROR, OK])
    assert tally.to_dict() == {"ok": 2, "anomalous": 1, "inconclusive": 1, "errors": 1}
    assert tally.last == OK
    assert Tally().last is None
    assert Tally().to_dict() == {"ok": 0, "anomalous": 0, "inconclusive": 0, "errors": 0}


def test_tally_counts_errors_in_a_row_and_any_answer_resets_them() -> None:
    assert tally_of([ERROR, ERROR]).consecutive_errors == 2
    for answer in (OK, ANOMALOUS, INCONCLUSIVE, BROKEN):
        tally = tally_of([ERROR, ERROR, answer])
        assert tally.consecutive_errors == 0
        assert tally.errors == 2
        assert tally.last == answer


def test_tally_is_immutable() -> None:
    tally = Tally()
    tally.record(OK)
    assert tally == Tally()


# --- limits --------------------------------------------------------------------------------------------


def test_no_limit_while_the_checks_are_good() -> None:
    assert limit_reached(tally_of([OK, OK, OK]), DEFAULT) is None
    assert limit_reached(Tally(), DEFAULT) is None


def test_failure_limit_one_stops_at_the_first_anomaly() -> None:
    assert first_limit([OK, ANOMALOUS, OK], DEFAULT) == (2, "anomalous")
    limit = limit_reached(tally_of([OK, ANOMALOUS]), DEFAULT)
    assert limit is not None
    assert limit.message == "1 anomalous check(s) reached the failure limit of 1"


def test_failure_limit_two_tolerates_one_anomaly() -> None:
    gate = rules(failure_limit=2)
    assert first_limit([ANOMALOUS, OK, OK, OK, OK], gate) is None
    assert first_limit([ANOMALOUS, OK, ANOMALOUS], gate) == (3, "anomalous")


def test_error_limit_counts_errors_in_a_row_only() -> None:
    # README: "ok, error, ok, ok, ok" passes; "ok, error, error, error" fails at the 4th check.
    assert first_limit([OK, ERROR, OK, OK, OK], DEFAULT) is None
    assert first_limit([ERROR, OK, ERROR, OK, ERROR], DEFAULT) is None
    assert first_limit([OK, ERROR, ERROR, ERROR], DEFAULT) == (4, "error_limit")
    limit = limit_reached(tally_of([ERROR, ERROR, ERROR]), DEFAULT)
    assert limit is not None
    assert limit.message.startswith("3 consecutive check(s) could not ask Prometheus, the error limit of 3")


def test_error_limit_one_stops_at_the_first_error() -> None:
    assert first_limit([OK, ERROR], rules(error_limit=1)) == (2, "error_limit")


def test_inconclusive_limit_stops_at_the_check_that_reaches_it() -> None:
    # README: "ok, inconclusive, inconclusive, inconclusive" fails at the 4th check.
    assert first_limit([OK, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE], DEFAULT) == (4, "inconclusive_limit")
    # The count is per step, not in a row.
    assert first_limit([INCONCLUSIVE, OK, INCONCLUSIVE, OK, INCONCLUSIVE], DEFAULT) == (5, "inconclusive_limit")
    assert first_limit([INCONCLUSIVE, OK, OK, OK, OK], DEFAULT) is None
    limit = limit_reached(tally_of([INCONCLUSIVE] * 3), DEFAULT)
    assert limit is not None
    assert limit.message == "3 inconclusive check(s) reached the inconclusive limit of 3"


def test_inconclusive_limit_zero_sets_no_count_limit() -> None:
    assert first_limit([INCONCLUSIVE] * 50, rules(inconclusive_limit=0)) is None


def test_a_broken_check_stops_at_once() -> None:
    assert first_limit([OK, BROKEN], rules(failure_limit=5, error_limit=5)) == (2, "broken_check")
    limit = limit_reached(tally_of([BROKEN]), DEFAULT)
    assert limit is not None
    assert "asking again cannot help" in limit.message


def test_a_broken_check_is_named_before_other_limits() -> None:
    assert first_limit([ANOMALOUS], DEFAULT) == (1, "anomalous")
    limit = limit_reached(Tally(anomalous=5, last=BROKEN), DEFAULT)
    assert limit is not None
    assert limit.kind == "broken_check"


# --- the step verdict ----------------------------------------------------------------------------------


def test_a_step_whose_last_check_is_ok_passes() -> None:
    verdict = step_verdict(tally_of([OK] * 5), DEFAULT)
    assert (verdict.passed, verdict.result, verdict.reason) == (True, STEP_OK, None)


def test_inconclusive_then_ok_passes() -> None:
    assert step_verdict(tally_of([INCONCLUSIVE, OK, OK, OK, OK]), DEFAULT).passed
    assert step_verdict(tally_of([INCONCLUSIVE, INCONCLUSIVE, OK]), DEFAULT).result == STEP_OK


def test_ok_then_inconclusive_fails_the_shadow_stopped_answering() -> None:
    verdict = step_verdict(tally_of([OK, OK, OK, OK, INCONCLUSIVE]), DEFAULT)
    assert not verdict.passed
    assert verdict.result == STEP_NOT_JUDGED
    assert verdict.reason == "the step's last check was inconclusive, and only a conclusive ok passes a step"


@pytest.mark.parametrize(
    ("outcomes", "words"),
    [
        ([OK, ERROR], "could not ask Prometheus"),
        ([], "never ran"),
        ([OK, ANOMALOUS], "was anomalous"),
        ([BROKEN], "was broken"),
    ],
)
def test_any_other_last_check_fails_the_step(outcomes: list[str], words: str) -> None:
    verdict = step_verdict(tally_of(outcomes), DEFAULT)
    assert not verdict.passed
    assert verdict.reason is not None
    assert words in verdict.reason


def test_inconclusive_limit_zero_still_needs_a_conclusive_last_check() -> None:
    gate = rules(inconclusive_limit=0)
    assert not step_verdict(tally_of([INCONCLUSIVE] * 5), gate).passed
    assert step_verdict(tally_of([INCONCLUSIVE] * 4 + [OK]), gate).passed


def test_fail_on_insufficient_data_false_lets_the_step_go_on_not_judged() -> None:
    gate = rules(fail_on_insufficient_data=False)
    verdict = step_verdict(tally_of([INCONCLUSIVE] * 5), gate)
    assert (verdict.passed, verdict.result) == (True, STEP_NOT_JUDGED)
    # Never "ok" without a conclusive ok, and an ok stays ok.
    assert step_verdict(tally_of([OK, INCONCLUSIVE]), gate).result == STEP_NOT_JUDGED
    assert step_verdict(tally_of([INCONCLUSIVE, OK]), gate).result == STEP_OK


def test_gate_off_passes_as_gate_off() -> None:
    verdict = step_verdict(Tally(), rules(gate=False))
    assert (verdict.passed, verdict.result) == (True, STEP_GATE_OFF)


def test_fail_on_insufficient_data_false_goes_on_through_five_inconclusive_checks() -> None:
    # README table (failure limit 1, inconclusive limit 3, error limit 3).
    gate = rules(fail_on_insufficient_data=False)
    assert first_limit([INCONCLUSIVE] * 5, gate) is None
    assert step_verdict(tally_of([INCONCLUSIVE] * 5), gate).result == STEP_NOT_JUDGED
