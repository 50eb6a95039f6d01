# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Custom metric checks (option ``metrics``): parse them, run their PromQL, judge the values.

Each check is ``{name, query, <rule>: number}`` with exactly one rule:

* ``max`` / ``min``: the query's value must stay at most / at least the number (1 query);
* ``max_ratio`` / ``max_increase``: the query is run for the shadow (as written) and again with ``$shadow``
  standing for the main service(s); shadow / main must stay at most the number, or shadow - main
  (2 queries).

A check never passes without a value: Prometheus refusing the query is ``error``; an empty result, a
NaN or several series where one value is needed are ``inconclusive``, each with its own reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    VERDICT_ANOMALOUS,
    VERDICT_INSUFFICIENT,
    VERDICT_OK,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._numbers import finite_number
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._promql import (
    PLACEHOLDERS,
    add_matchers,
    placeholders_in,
    substitute,
)

RULES = ("max", "min", "max_ratio", "max_increase")
COMPARING_RULES = ("max_ratio", "max_increase")
# A custom check's verdicts: the built-in verdicts, and two of its own.
CHECK_OK = VERDICT_OK
CHECK_ANOMALOUS = VERDICT_ANOMALOUS
CHECK_INCONCLUSIVE = "inconclusive"
CHECK_ERROR = "error"
REASON_QUERY_ERROR = "query_error"
REASON_NO_DATA = "no_data"
REASON_NAN = "nan"
REASON_SEVERAL_SERIES = "several_series"
REASON_NO_SHADOW = "no_shadow"
_KEYS = ("name", "query", "description", *RULES)


@dataclass(frozen=True)
class MetricCheck:
    name: str
    query: str
    rule: str
    limit: float
    description: str | None = None

    @property
    def query_count(self) -> int:
        return 2 if self.rule in COMPARING_RULES else 1


@dataclass(frozen=True)
class CheckContext:
    """What the placeholders stand for: Traefik ``service`` label values as RE2 alternations (so
    ``service=~"$shadow"`` always works, and ``service="$shadow"`` with a single service), plus the
    namespace, route and window, and the extra matchers of ``prometheus_selector``."""

    shadow: str
    main: str
    namespace: str
    route: str
    window: str
    selector: str = ""

    def render(self, check: MetricCheck, *, as_main: bool = False) -> str:
        values = {
            "shadow": self.main if as_main else self.shadow,
            "main": self.main,
            "namespace": self.namespace,
            "route": self.route,
            "window": self.window,
        }
        return add_matchers(substitute(check.query, values, check.name), self.selector)


def parse_metric_checks(raw: Any) -> list[MetricCheck]:
    """Validate the ``metrics`` option (items may come from YAML, JSON or AWX surveys as strings)."""
    if raw in (None, "", []):
        return []
    if not isinstance(raw, (list, tuple)):
        raise DarklaunchError(
            "metrics must be a list of checks, each {name, query, max|min|max_ratio|max_increase}.", field="metrics"
        )
    checks = [_parse_check(index, item) for index, item in enumerate(raw)]
    names = [check.name for check in checks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DarklaunchError(
            f"metrics: the check name {duplicates[0]!r} is used twice; names must be unique.", field="metrics"
        )
    return checks


def _parse_check(index: int, item: Any) -> MetricCheck:
    if not isinstance(item, Mapping):
        raise DarklaunchError(
            f"metrics item #{index + 1} must be a mapping with name, query and a rule.", field="metrics"
        )
    name = str(item.get("name") or "").strip()
    label = repr(name) if name else f"#{index + 1}"
    if not name:
        raise DarklaunchError(f"metrics item #{index + 1} has no name.", field="metrics")
    unknown = sorted(str(key) for key in item if key not in _KEYS)
    if unknown:
        raise DarklaunchError(
            f"metrics check {label} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(_KEYS)}.",
            field="metrics",
        )
    query = item.get("query")
    if not isinstance(query, str) or not query.strip():
        raise DarklaunchError(f"metrics check {label} needs a query (PromQL).", field="metrics")
    rules = [rule for rule in RULES if item.get(rule) not in (None, "")]
    if len(rules) != 1:
        raise DarklaunchError(
            f"metrics check {label} needs exactly one rule of {', '.join(RULES)}"
            + (f"; it has {', '.join(rules)}." if rules else "."),
            field="metrics",
        )
    rule = rules[0]
    limit = finite_number(item[rule])
    if limit is None:
        raise DarklaunchError(f"metrics check {label}: {rule} must be a number, got {item[rule]!r}.", field="metrics")
    if rule == "max_ratio" and limit <= 0:
        raise DarklaunchError(f"metrics check {label}: max_ratio must be above 0, got {item[rule]!r}.", field="metrics")
    used = placeholders_in(query)
    unknown_placeholders = sorted(used - set(PLACEHOLDERS))
    if unknown_placeholders:
        raise DarklaunchError(
            f"metrics check {label} uses an unknown placeholder ${unknown_placeholders[0]}; the placeholders are "
            + ", ".join("$" + known for known in PLACEHOLDERS)
            + ".",
            field="metrics",
        )
    if rule in COMPARING_RULES and "shadow" not in used:
        raise DarklaunchError(
            f"metrics check {label}: {rule} runs the query once for the shadow and once for the main service, "
            "by putting each in place of $shadow, so the query must use $shadow.",
            field="metrics",
        )
    description = item.get("description")
    return MetricCheck(name, query.strip(), rule, limit, str(description) if description else None)


# --------------------------------------------------------------------------------------------------
# Running and judging
# --------------------------------------------------------------------------------------------------

QueryFunction = Callable[[str], Sequence[Mapping[str, Any]]]


class _Unusable(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def run_metric_check(
    check: MetricCheck, context: CheckContext | None, query: QueryFunction, is_query_error: Callable[[Exception], bool]
) -> dict[str, Any]:
    """Run one check (``query`` runs one instant PromQL query) and return its result row.

    ``is_query_error`` says which exceptions mean "Prometheus refused this query" (reported as the
    check's ``error``); every other exception (Prometheus unreachable, credentials refused) propagates.
    """
    row: dict[str, Any] = {
        "name": check.name,
        "rule": {check.rule: check.limit},
        "value": None,
        "queries": 0,
    }
    if check.description:
        row["description"] = check.description
    if context is None:
        return _unjudged(row, CHECK_INCONCLUSIVE, REASON_NO_SHADOW, "the route has no shadow to judge")
    row["query"] = context.render(check)
    try:
        if not context.shadow:
            # Before the mirror exists (the role's preflight) the query is still sent once, with an empty
            # $shadow, so that Prometheus refuses a typo before any change is made.
            _run(query, row["query"], row, is_query_error)
            return _unjudged(row, CHECK_INCONCLUSIVE, REASON_NO_SHADOW, "the route has no shadow to judge yet")
        shadow_value = _single_value(_run(query, row["query"], row, is_query_error))
        if check.rule not in COMPARING_RULES:
            return _judge_threshold(row, check, shadow_value)
        row["main_query"] = context.render(check, as_main=True)
        main_value = _single_value(_run(query, row["main_query"], row, is_query_error), side="main")
    except _Unusable as unusable:
        verdict = CHECK_ERROR if unusable.reason == REASON_QUERY_ERROR else CHECK_INCONCLUSIVE
        return _unjudged(row, verdict, unusable.reason, unusable.message)
    return _judge_comparison(row, check, shadow_value, main_value)


def _run(
    query: QueryFunction, promql: str, row: dict[str, Any], is_query_error: Callable[[Exception], bool]
) -> Sequence[Mapping[str, Any]]:
    row["queries"] += 1
    try:
        return query(promql)
    except Exception as error:
        if is_query_error(error):
            raise _Unusable(REASON_QUERY_ERROR, str(error)) from None
        raise


def _single_value(result: Sequence[Mapping[str, Any]], side: str = "shadow") -> float:
    if not result:
        raise _Unusable(
            REASON_NO_DATA,
            f"the query returned no data for the {side} (no matching series: check metric and label names, "
            "or wait for traffic)",
        )
    if len(result) > 1:
        raise _Unusable(
            REASON_SEVERAL_SERIES,
            f"the query returned {len(result)} series for the {side}; aggregate it to one value (sum, max, ...)",
        )
    point = result[0].get("value")
    raw = point[1] if isinstance(point, (list, tuple)) and len(point) == 2 else None
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _Unusable(REASON_NO_DATA, f"the query's {side} value {raw!r} is not a number") from None
    if math.isnan(value):
        raise _Unusable(
            REASON_NAN, f"the query's value for the {side} is NaN (for example 0/0: no requests in the window)"
        )
    return value


def _judge_threshold(row: dict[str, Any], check: MetricCheck, value: float) -> dict[str, Any]:
    row["value"] = _rounded(value)
    failed = value > check.limit if check.rule == "max" else value < check.limit
    bound = "at most" if check.rule == "max" else "at least"
    row["verdict"] = CHECK_ANOMALOUS if failed else CHECK_OK
    row["message"] = (
        f"{check.name} is {_shown(value)}, {'not ' if failed else ''}{bound} {check.rule} {_shown(check.limit)}"
    )
    return row


def _judge_comparison(row: dict[str, Any], check: MetricCheck, shadow: float, main: float) -> dict[str, Any]:
    row["shadow_value"] = _rounded(shadow)
    row["main_value"] = _rounded(main)
    if check.rule == "max_increase":
        value = shadow - main
        row["value"] = _rounded(value)
        failed = value > check.limit
        row["message"] = (
            f"{check.name} is {_shown(shadow)} for the shadow and {_shown(main)} for the main: an increase of "
            f"{_shown(value)}, {'above' if failed else 'within'} max_increase {_shown(check.limit)}"
        )
    elif main == 0:
        if shadow == 0:
            return _unjudged(
                row,
                CHECK_INCONCLUSIVE,
                REASON_NAN,
                "the value is 0 for both shadow and main, so their ratio is undefined",
            )
        # A shadow with something where the main has nothing is above any ratio.
        failed = shadow > 0
        row["message"] = (
            f"{check.name} is {_shown(shadow)} for the shadow and 0 for the main: "
            f"{'above' if failed else 'within'} max_ratio {_shown(check.limit)}"
        )
    else:
        value = shadow / main
        row["value"] = _rounded(value)
        failed = value > check.limit
        row["message"] = (
            f"{check.name} is {_shown(shadow)} for the shadow and {_shown(main)} for the main: a ratio of "
            f"{_shown(value)}, {'above' if failed else 'within'} max_ratio {_shown(check.limit)}"
        )
    row["verdict"] = CHECK_ANOMALOUS if failed else CHECK_OK
    return row


def _unjudged(row: dict[str, Any], verdict: str, reason: str, message: str) -> dict[str, Any]:
    row["verdict"] = verdict
    row["reason"] = reason
    row["message"] = f"{row['name']}: {message}"
    return row


def _rounded(value: float) -> float:
    return round(value, 6) if math.isfinite(value) else value


def _shown(value: float) -> str:
    return f"{value:.4g}"


def combine_verdict(verdict: str, summary: str, rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The whole answer's verdict and summary once custom checks are added to the built-in ones.

    Any anomalous check makes it ``anomalous``; a check in ``error`` or ``inconclusive`` keeps an
    otherwise ``ok`` answer from passing (``insufficient_data``), and its message leads the summary.
    """
    anomalous = [row for row in rows if row.get("verdict") == CHECK_ANOMALOUS]
    unjudged = [row for row in rows if row.get("verdict") in (CHECK_ERROR, CHECK_INCONCLUSIVE)]
    if anomalous:
        lead = "; ".join(f"custom check {row['message']}" for row in anomalous)
        if verdict == VERDICT_ANOMALOUS:
            return verdict, f"{summary} Also {lead}."
        return VERDICT_ANOMALOUS, f"{_capitalised(lead)}. Built-in checks: {summary}"
    if unjudged:
        lead = "; ".join(f"custom check {row['verdict']} ({row['reason']}), {row['message']}" for row in unjudged)
        if verdict == VERDICT_OK:
            return VERDICT_INSUFFICIENT, f"Not judged: {lead}. Built-in checks: {summary}"
        return verdict, f"{summary} Also {lead}."
    return verdict, summary


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
