# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The English of anomaly answers: a value with its unit, a finding in a sentence, the verdict's summary."""

from __future__ import annotations

from collections.abc import Sequence

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import ROLE_SHADOW
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    CHECK_HISTORY,
    CHECK_SHADOW_VS_MAIN,
    METRIC_CLIENT_ERROR_RATE,
    METRIC_DELIVERY,
    METRIC_ERROR_RATE,
    METRIC_LATENCY_MEAN,
    METRIC_LATENCY_P95,
    METRIC_LATENCY_P99,
    METRIC_REQUEST_RATE,
    UNIT_RATIO,
    UNIT_SECONDS,
    VERDICT_ANOMALOUS,
    VERDICT_INSUFFICIENT,
    VERDICT_OK,
    Anomaly,
    CheckOutcome,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import (
    AnomalySettings,
)

METRIC_PHRASE = {
    METRIC_ERROR_RATE: "an error rate of",
    METRIC_CLIENT_ERROR_RATE: "a client error rate of",
    METRIC_LATENCY_MEAN: "a mean latency of",
    METRIC_LATENCY_P95: "a p95 latency of",
    METRIC_LATENCY_P99: "a p99 latency of",
    METRIC_REQUEST_RATE: "a request rate of",
    METRIC_DELIVERY: "copies completed at",
}


def describe(anomaly: Anomaly) -> str:
    """A finding in one sentence: who, what, against what, how far (z) and how bad."""
    target = anomaly.target
    who = f"shadow {target.display_name}" if target.role == ROLE_SHADOW else target.display_name
    value, baseline = format_value(anomaly.value, anomaly.unit), format_value(anomaly.baseline, anomaly.unit)
    score = f"z {anomaly.z_score:.2f}, {anomaly.severity}"
    if anomaly.metric == METRIC_DELIVERY:
        return (
            f"{who} completed {value} of the copies its mirror percentage sends, expected {baseline} from "
            f"{anomaly.compared_to} ({score}): its copies hang or fail before an answer"
        )
    where = "on main" if anomaly.check == CHECK_SHADOW_VS_MAIN else "in its recent history"
    return f"{who} has {METRIC_PHRASE[anomaly.metric]} {value} against {baseline} {where} ({score})"


def format_value(value: float, unit: str) -> str:
    if unit == UNIT_RATIO:
        return f"{value:.2%}"
    if unit == UNIT_SECONDS:
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.2f} req/s"


def informational_note(informational: Sequence[Anomaly], why: str) -> str:
    if not informational:
        return ""
    more = f" (and {len(informational) - 1} more)" if len(informational) > 1 else ""
    return f" Not part of the verdict, {why}: {describe(informational[0])}{more}."


def summary(
    verdict: str,
    anomalies: Sequence[Anomaly],
    primary: Sequence[CheckOutcome],
    outcomes: Sequence[CheckOutcome],
    settings: AnomalySettings,
) -> str:
    span = f"over the last {settings.window} at sigma {settings.sigma:g}"
    if settings.threshold > settings.sigma:
        span += f" (z {settings.threshold:.1f} per comparison across {settings.comparisons} comparisons)"
    if verdict == VERDICT_ANOMALOUS:
        more = f", and {_count(len(anomalies) - 1, 'more anomaly', 'more anomalies')}" if len(anomalies) > 1 else ""
        return f"{_count(len(anomalies), 'anomaly', 'anomalies')} {span}: {describe(anomalies[0])}{more}."
    if verdict == VERDICT_INSUFFICIENT:
        unjudged = [outcome for outcome in primary if outcome.status == VERDICT_INSUFFICIENT]
        if not unjudged:
            return f"Not enough data to judge {span}: there are no services to check."
        first = unjudged[0]
        more = f", and {_count(len(unjudged) - 1, 'more service', 'more services')} too" if len(unjudged) > 1 else ""
        return f"Not enough data to judge {span}: {_label_of(first)} {first.gaps[0] if first.gaps else ''}{more}."
    return f"No anomalies {span}: {_ok_details(outcomes)}."


def _ok_details(outcomes: Sequence[CheckOutcome]) -> str:
    shadows_ok = sum(1 for o in outcomes if o.check == CHECK_SHADOW_VS_MAIN and o.status == VERDICT_OK)
    history_ok = sum(1 for o in outcomes if o.check == CHECK_HISTORY and o.status == VERDICT_OK)
    history_unjudged = sum(1 for o in outcomes if o.check == CHECK_HISTORY and o.status == VERDICT_INSUFFICIENT)
    parts = []
    if shadows_ok:
        parts.append(
            _count(shadows_ok, "shadow behaves like its main service", "shadows behave like their main services")
        )
    if history_ok:
        parts.append(_count(history_ok, "service matches its recent history", "services match their recent history"))
    if history_unjudged:
        parts.append(f"{_count(history_unjudged, 'service has', 'services have')} too little history to compare")
    return ", ".join(parts) if parts else "nothing to report"


def _label_of(outcome: CheckOutcome) -> str:
    name = outcome.target.display_name
    return f"shadow {name}:" if outcome.target.role == ROLE_SHADOW else f"{name}:"


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"
