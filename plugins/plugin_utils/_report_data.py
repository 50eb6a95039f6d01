# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the launch report shows, from what the shadow_launch role collected: pure, no I/O.

The role hands over its raw records (every gate check as the lookup answered it, each step, each
change); this module reduces each check to the shadow's and the main's numbers, exactly as the gate
saw them, and the summary AWX workflows get through ``set_stats``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    VERDICT_ANOMALOUS,
    VERDICT_INSUFFICIENT,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._check_summary import side_summary
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import ANOMALOUS, INCONCLUSIVE, OK
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._numbers import is_number
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_series import ROLES


def report_data(params: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    generated = time.time() if now is None else now
    checks = [check_row(check) for check in params.get("checks") or [] if isinstance(check, Mapping)]
    steps = [step_row(step) for step in params.get("steps") or [] if isinstance(step, Mapping)]
    # The role records each write batch once: {at, summaries: [...]}; a single {at, summary} works too.
    changes = [
        {"at": epoch(change.get("at")), "summary": str(summary)}
        for change in params.get("changes") or []
        if isinstance(change, Mapping)
        for summary in (change.get("summaries") or [change.get("summary", "")])
    ]
    verdicts = [str(check["verdict"]) for check in checks]
    starts = [s["start"] for s in steps if s["start"] is not None]
    ends = [s["end"] for s in steps if s["end"] is not None]
    cluster = {key: value for key, value in dict(params.get("cluster") or {}).items() if value}
    stats = {
        "route": params.get("route_name"),
        "namespace": params.get("namespace"),
        "outcome": params.get("outcome"),
        "steps": [{"percent": s["percent"], "result": s["result"]} for s in steps],
        "checks": len(checks),
        "anomalous_checks": verdicts.count(VERDICT_ANOMALOUS),
        "inconclusive_checks": verdicts.count(VERDICT_INSUFFICIENT),
        "cluster": cluster.get("name"),
        "launch_id": params.get("launch_id"),
        "owner": params.get("owner"),
        "started": iso(min(starts)) if starts else None,
        "ended": iso(max(ends) if ends else generated),
    }
    return {
        "route": params.get("route_name"),
        "namespace": params.get("namespace"),
        "outcome": params.get("outcome"),
        "summary": params.get("summary"),
        "generated_at": generated,
        "file_time": datetime.fromtimestamp(generated, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "steps": steps,
        "checks": checks,
        "changes": changes,
        "final_state": dict(params.get("final_state") or {}),
        "series": dict(params.get("series") or {}),
        "stats": stats,
        "cluster": cluster,
        "owner": params.get("owner"),
        "launch_id": params.get("launch_id"),
        "started": min(starts) if starts else None,
        "ended": max(ends) if ends else generated,
        "gate": dict(params.get("gate") or {}),
        "differing_paths": differing_paths(checks),
        "compare_samples": compare_samples(params.get("compare_samples")),
    }


def iso(moment: float) -> str:
    """RFC 3339 UTC with milliseconds, as the launch record writes times."""
    utc = datetime.fromtimestamp(moment, tz=timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def check_row(check: Mapping[str, Any]) -> dict[str, Any]:
    """One gate check: when, which step, the verdict, and the shadow's and main's numbers."""
    rows = [row for row in check.get("services") or [] if isinstance(row, Mapping)]
    row: dict[str, Any] = {
        "at": epoch(check.get("at")),
        "percent": check.get("percent"),
        "verdict": check.get("verdict"),
        "summary": check.get("summary", ""),
        "anomalies": [
            str(anomaly.get("description") or anomaly)
            for anomaly in check.get("anomalies") or []
            if isinstance(anomaly, Mapping)
        ],
    }
    for role in ROLES:
        row[role] = side_summary(rows, role)

    compare = check.get("compare")
    if isinstance(compare, Mapping):
        row["compare"] = compare_row(compare)
    return row


def compare_row(compare: Mapping[str, Any]) -> dict[str, Any]:
    """The difference check of one gate check, as the gate judged it (``_compare_check``)."""
    raw_results, raw_rule = compare.get("results"), compare.get("rule")
    results: Mapping[str, Any] = raw_results if isinstance(raw_results, Mapping) else {}
    rule: Mapping[str, Any] = raw_rule if isinstance(raw_rule, Mapping) else {}
    return {
        "verdict": compare.get("verdict"),
        "value": float(compare["value"]) if is_number(compare.get("value")) else None,
        "limit": float(rule["max_diff_rate"]) if is_number(rule.get("max_diff_rate")) else None,
        "compared": compare.get("compared"),
        "results": {key: results.get(key) for key in ("same", "different", "noise", "skipped", "error")},
        "top_paths": [
            {"path": str(item.get("path")), "requests": item.get("requests")}
            for item in compare.get("top_paths") or []
            if isinstance(item, Mapping)
        ],
        "message": compare.get("message"),
    }


def differing_paths(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every JSON path the difference check found, most differing first: the most requests it counted in one
    check's window, and the first check that saw it."""
    paths: dict[str, dict[str, Any]] = {}
    for check in checks:
        for item in (check.get("compare") or {}).get("top_paths") or []:
            count = float(item["requests"]) if is_number(item.get("requests")) else 0.0
            seen = paths.setdefault(item["path"], {"path": item["path"], "requests": 0.0, "first_seen": check["at"]})
            seen["requests"] = max(seen["requests"], count)
    return sorted(paths.values(), key=lambda item: (-item["requests"], item["path"]))


def compare_samples(given: Any) -> dict[str, Any]:
    """The comparator's samples as comparator_samples returned them: ``{}`` when none were read, else whether
    they could be, why not, and one sample per differing path (only the fields the report shows)."""
    if not isinstance(given, Mapping) or not given:
        return {}
    raw = given.get("by_path")
    by_path: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    fields = ("request", "status", "path", "primary", "candidate")
    return {
        "available": bool(given.get("available")),
        "message": str(given.get("message") or ""),
        "by_path": {
            str(label): {key: sample.get(key) for key in fields}
            for label, sample in by_path.items()
            if isinstance(sample, Mapping)
        },
    }


def step_row(step: Mapping[str, Any]) -> dict[str, Any]:
    raw_tally = step.get("tally")
    tally: Mapping[str, Any] = raw_tally if isinstance(raw_tally, Mapping) else {}
    return {
        "percent": step.get("percent"),
        "result": str(step.get("result", "")),
        "tally": {key: int(tally.get(key, 0) or 0) for key in (OK, ANOMALOUS, INCONCLUSIVE)},
        "start": epoch(step.get("start")),
        "end": epoch(step.get("end")),
    }


def epoch(value: Any) -> float | None:
    """Seconds since the epoch from a number, a numeric string or an ISO 8601 time (naive means UTC)."""
    if value is None or isinstance(value, bool):
        return None
    if is_number(value):
        return float(value)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
