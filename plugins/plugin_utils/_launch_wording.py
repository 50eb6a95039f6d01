# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch engine's sentences: a check's line, the gate's budget, who answers users, why a step failed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import format_time
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._check_summary import side_summary, side_text
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import (
    ANOMALOUS,
    ERROR,
    INCONCLUSIVE,
    LIMIT_ANOMALOUS,
    LIMIT_ERRORS,
    LIMIT_INCONCLUSIVE,
)


def warnings(answer: Mapping[str, Any]) -> list[str]:
    return [f"Warning: {warning}" for warning in answer.get("warnings") or []]


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def failed_result(kind: str) -> str:
    return {LIMIT_ANOMALOUS: ANOMALOUS, LIMIT_INCONCLUSIVE: "not judged"}.get(kind, "failed")


def limit_word(kind: str) -> str:
    return {LIMIT_ANOMALOUS: ANOMALOUS, LIMIT_INCONCLUSIVE: INCONCLUSIVE, LIMIT_ERRORS: "Prometheus errors"}.get(
        kind, kind
    )


def broken_message(report: Mapping[str, Any]) -> str:
    rows = [row for row in report.get("metrics") or [] if isinstance(row, Mapping) and row.get("verdict") == "error"]
    return (
        f"Custom check(s) {', '.join(str(row.get('name')) for row in rows)} in shadow_launch_metrics cannot be "
        f"evaluated: {'; '.join(str(row.get('message')) for row in rows)}"
    )


def budget_line(report: Mapping[str, Any]) -> str:
    """What the gate's sigma means for this launch, once: the chance of rolling a healthy step back."""
    budget = report.get("false_alarm_budget")
    budget_text = f"{float(budget):.1%}" if isinstance(budget, (int, float)) else "the tail of sigma"
    return (
        f"Anomaly gate: at sigma {report.get('sigma')} a healthy step is rolled back with a chance of at most "
        f"{budget_text}; {report.get('comparisons')} comparisons per step decide, each at z "
        f"{report.get('sigma_applied')}."
    )


def check_line(check: Mapping[str, Any], bake: int) -> str:
    """One line per check: the step, the time into the bake, the verdict and the numbers of both sides."""
    head = f"{check['percent']}% step, {int(check['elapsed'])}/{bake} s, check {check['check']}/{check['of']}: "
    if check.get("outcome") == ERROR:
        return head + f"error | {check.get('summary')}"
    services = check.get("services") or []
    shadow, main = (side_text(role, side_summary(services, role)) for role in ("shadow", "main"))
    line = head + f"{check.get('verdict')} | {shadow} | {main}"
    compare = check.get("compare")
    return line + f" | {compare_side(compare)}" if isinstance(compare, Mapping) else line


def compare_side(compare: Mapping[str, Any]) -> str:
    """The difference check in a few words: its share of differing answers, or why it has none."""
    compared = compare.get("compared") or 0
    value = compare.get("value")
    if not isinstance(value, (int, float)):
        reason = "no comparator metrics" if compare.get("reason") == "no_data" else f"{compared:.0f} compared"
        return f"answers not judged ({reason})"
    top = compare.get("top_paths") or []
    where = f" (most at {top[0]['path']})" if top and (compare.get("results") or {}).get("different") else ""
    return f"answers {value:.1%} different of {compared:.0f} compared{where}"


def users_line(before: Mapping[str, Any] | None, attached: Mapping[str, Any]) -> str:
    """Who answers users before and after the attach. An ended weighted split and the shadow's side effects are
    said once, by traefik_mirror's warnings that follow this line."""
    after = attached.get("distribution") or {}
    serving = [s for s in after.get("main_sink") or [] if (s.get("user_share_percent") or 0) > 0]
    if (attached.get("resolved") or {}).get("weighted_split", {}).get("ended"):
        users = ""
    elif len(serving) > 1:
        users = " Real users keep their weighted split; the shadow gets copies on top of it."
    else:
        users = " Real users are still answered by the main service only."
    return f"Before: {_before_words(before, attached)} After: {after.get('explanation')}{users}"


def _before_words(before: Mapping[str, Any] | None, attached: Mapping[str, Any]) -> Any:
    """The route before the attach in words: on an HTTPRoute, the rule the mirror went on (the route's own
    sentence speaks of whichever rule comes first)."""
    index = (attached.get("resolved") or {}).get("rule_index")
    routes = (before or {}).get("routes") or []
    if isinstance(index, int) and 0 <= index < len(routes) and routes[index].get("explanation"):
        return routes[index]["explanation"]
    return (before or {}).get("explanation")


def now_text(moment: float) -> str:
    return format_time(datetime.fromtimestamp(moment, timezone.utc))
