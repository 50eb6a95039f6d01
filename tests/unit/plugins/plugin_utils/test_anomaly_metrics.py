# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Custom metric checks: definitions, rules, the verdicts that never pass, and the whole answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_metrics import (
    CheckContext,
    combine_verdict,
    parse_metric_checks,
    run_metric_check,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._prometheus import PrometheusQueryError

CONTEXT = CheckContext(
    shadow="ns-canary-80@kubernetescrd",
    main="ns-stable-80@kubernetescrd",
    namespace="ns",
    route="r",
    window="30s",
    selector='cluster="eu"',
)


def one(value: str) -> list[dict[str, Any]]:
    return [{"metric": {}, "value": [1, value]}]


class Answers:
    """Answers per queried service label; records every query."""

    def __init__(self, shadow: Any, main: Any = None) -> None:
        self.answers = {"canary": shadow, "stable": main}
        self.sent: list[str] = []

    def __call__(self, promql: str) -> Sequence[Mapping[str, Any]]:
        self.sent.append(promql)
        answer = self.answers["canary" if "canary" in promql else "stable"]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]


def run(item: dict[str, Any], answers: Answers) -> dict[str, Any]:
    [check] = parse_metric_checks([item])
    return run_metric_check(check, CONTEXT, answers, lambda error: isinstance(error, PrometheusQueryError))


Q = 'x{service=~"$shadow"}'


@pytest.mark.parametrize(
    ("rule", "shadow", "main", "verdict", "value"),
    [
        ({"max": 0.5}, "0.4", None, "ok", 0.4),
        ({"max": 0.5}, "0.6", None, "anomalous", 0.6),
        ({"min": 10}, "9", None, "anomalous", 9.0),
        ({"min": 10}, "10", None, "ok", 10.0),
        ({"max_ratio": 1.5}, "3", "2", "ok", 1.5),
        ({"max_ratio": 1.5}, "3.1", "2", "anomalous", 1.55),
        ({"max_ratio": 1.5}, "1", "0", "anomalous", None),
        ({"max_increase": 0.1}, "0.3", "0.25", "ok", 0.05),
        ({"max_increase": 0.1}, "0.4", "0.25", "anomalous", 0.15),
    ],
)
def test_rules(rule: dict[str, float], shadow: str, main: str | None, verdict: str, value: float | None) -> None:
    answers = Answers(one(shadow), one(main) if main else None)
    row = run({"name": "c", "query": Q, **rule}, answers)
    assert row["verdict"] == verdict, row
    assert row["value"] == (pytest.approx(value) if value is not None else None)
    # A threshold costs one query, a comparison two; each gets the selector.
    assert row["queries"] == len(answers.sent) == (2 if main else 1)
    assert all('cluster="eu"' in sent for sent in answers.sent)


def test_comparison_runs_the_query_for_the_main_in_place_of_the_shadow() -> None:
    answers = Answers(one("1"), one("1"))
    row = run({"name": "c", "query": 'x{service=~"$shadow"}[$window]', "max_ratio": 2}, answers)
    assert answers.sent == [
        'x{service=~"ns-canary-80@kubernetescrd",cluster="eu"}[30s]',
        'x{service=~"ns-stable-80@kubernetescrd",cluster="eu"}[30s]',
    ]
    assert (row["shadow_value"], row["main_value"]) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("answer", "verdict", "reason"),
    [
        (PrometheusQueryError("Prometheus rejected the query (bad_data: parse error)"), "error", "query_error"),
        ([], "inconclusive", "no_data"),
        (one("NaN"), "inconclusive", "nan"),
        (one("1") + one("2"), "inconclusive", "several_series"),
    ],
)
def test_no_value_never_passes(answer: Any, verdict: str, reason: str) -> None:
    row = run({"name": "p99", "query": Q, "max": 1}, Answers(answer))
    assert (row["verdict"], row["reason"], row["value"]) == (verdict, reason, None)
    assert row["message"].startswith("p99: ")
    combined, summary = combine_verdict("ok", "No anomalies.", [row])
    assert combined == "insufficient_data" and "p99" in summary and reason in summary


def test_zero_against_zero_ratio_is_inconclusive() -> None:
    row = run({"name": "c", "query": Q, "max_ratio": 2}, Answers(one("0"), one("0")))
    assert (row["verdict"], row["reason"]) == ("inconclusive", "nan")


def test_connection_errors_are_not_swallowed() -> None:
    with pytest.raises(DarklaunchError, match="Cannot reach"):
        run({"name": "c", "query": Q, "max": 1}, Answers(DarklaunchError("Cannot reach Prometheus")))


def test_route_without_services_is_inconclusive() -> None:
    [check] = parse_metric_checks([{"name": "c", "query": Q, "max": 1}])
    row = run_metric_check(check, None, Answers(one("1")), lambda error: False)
    assert (row["verdict"], row["reason"], row["queries"]) == ("inconclusive", "no_shadow", 0)


def test_before_the_mirror_exists_a_typo_is_still_caught() -> None:
    """The role's preflight asks before the mirror exists: one query with an empty $shadow."""
    no_shadow = CheckContext(shadow="", main="ns-stable-80@kubernetescrd", namespace="ns", route="r", window="30s")
    [check] = parse_metric_checks([{"name": "c", "query": Q, "max_ratio": 2}])
    answers = Answers(one("1"), one("1"))
    row = run_metric_check(check, no_shadow, answers, lambda error: False)
    assert (row["verdict"], row["reason"], row["queries"]) == ("inconclusive", "no_shadow", 1)
    assert answers.sent == ['x{service=~""}']
    broken = Answers(PrometheusQueryError("bad_data: parse error"), PrometheusQueryError("bad_data: parse error"))
    row = run_metric_check(check, no_shadow, broken, lambda error: isinstance(error, PrometheusQueryError))
    assert (row["verdict"], row["reason"]) == ("error", "query_error")


def test_anomalous_custom_check_makes_the_answer_anomalous() -> None:
    row = run({"name": "orders", "query": Q, "min": 5}, Answers(one("1")))
    verdict, summary = combine_verdict("ok", "No anomalies.", [row])
    assert verdict == "anomalous" and summary.startswith("Custom check orders is 1, not at least min 5")


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ({"query": Q, "max": 1}, "has no name"),
        ({"name": "c", "max": 1}, "needs a query"),
        ({"name": "c", "query": Q}, "exactly one rule"),
        ({"name": "c", "query": Q, "max": 1, "min": 0}, "exactly one rule"),
        ({"name": "c", "query": Q, "max": "lots"}, "max must be a number"),
        ({"name": "c", "query": Q, "max_ratio": 0}, "above 0"),
        ({"name": "c", "query": "x", "max_increase": 1}, "must use $shadow"),
        ({"name": "c", "query": 'x{a="$nope"}', "max": 1}, "unknown placeholder $nope"),
        ({"name": "c", "query": Q, "max": 1, "maximum": 2}, "unknown key(s) maximum"),
        ("c", "must be a mapping"),
    ],
)
def test_bad_definitions_name_the_field(item: Any, words: str) -> None:
    with pytest.raises(DarklaunchError) as caught:
        parse_metric_checks([item])
    assert caught.value.field == "metrics" and words in str(caught.value)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(DarklaunchError, match="used twice"):
        parse_metric_checks([{"name": "c", "query": Q, "max": 1}, {"name": "c", "query": Q, "min": 1}])


def test_survey_strings_are_numbers() -> None:
    [check] = parse_metric_checks([{"name": "c", "query": Q, "max": "0.5"}])
    assert (check.rule, check.limit, check.query_count) == ("max", 0.5, 1)
