# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A target's history from other labels of the same backend (pure): an HTTPRoute's main service is named by the
CRD provider while traefik_mirror is attached and by the Gateway provider before (_httproute_labels), so the
windows before attach are found under the Gateway provider's label, whichever form the running release uses.

Only history windows where the target's own label has no series at all are filled, and only from the labels its
patterns match: the current window, and any window where its own label counted, stay its own (a Gateway
provider label of 3.0-3.7.5 names a Service, and may count another rule's users of the same Service too).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping, Sequence
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_labels import form_of
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    ServiceSeries,
    Target,
    WindowCounts,
)


def parse_patterns(label: str, raw: Any) -> tuple[str, ...]:
    """A target's ``label_patterns``: regular expressions, each checked to compile."""
    if raw in (None, ""):
        return ()
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list | tuple) or not all(isinstance(value, str) and value for value in values):
        raise DarklaunchError(f"Anomaly target {label}: label_patterns must be a list of regular expressions.")
    for value in values:
        try:
            re.compile(value)
        except re.error as error:
            raise DarklaunchError(f"Anomaly target {label}: label_patterns {value!r} is not valid ({error}).") from None
    return tuple(dict.fromkeys(values))


def _sum(windows: Sequence[WindowCounts]) -> WindowCounts:
    def total(values: list[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return sum(known) if known else None

    return WindowCounts(
        requests=sum(w.requests for w in windows),
        errors=sum(w.errors for w in windows),
        latency_sum=total([w.latency_sum for w in windows]),
        latency_count=total([w.latency_count for w in windows]),
        client_errors=sum(w.client_errors for w in windows),
    )


def fill_history(series: MutableMapping[str, ServiceSeries], targets: Sequence[Target]) -> list[dict[str, Any]]:
    """Fill each aliased target's empty history windows from the series its patterns match (removed from
    ``series``: they were fetched for it). Returns, per target whose history was filled, which labels and forms
    were used and how many windows."""
    used: list[dict[str, Any]] = []
    for target in targets:
        if not target.aliases:
            continue
        matched = sorted(
            label
            for label in series
            if label != target.service and any(re.fullmatch(pattern, label) for pattern in target.aliases)
        )
        if not matched:
            continue
        others = [series.pop(label) for label in matched]
        own = series.get(target.service)
        count = max(len(s.windows) for s in others)
        windows: list[WindowCounts | None] = list(own.windows) if own else [None] * count
        filled = 0
        for index in range(len(windows) - 1):  # never the current window
            if windows[index] is not None:
                continue
            found = [s.windows[index] for s in others if index < len(s.windows)]
            counted = [window for window in found if window is not None]
            if counted:
                windows[index] = _sum(counted)
                filled += 1
        series[target.service] = ServiceSeries(target.service, tuple(windows), own.buckets if own else ())
        if filled:
            used.append(
                {
                    "service": target.service,
                    "history_labels": matched,
                    "label_forms": sorted({form_of(label) for label in matched} - {""}),
                    "windows": filled,
                }
            )
    return used


def history_patterns(targets: Sequence[Target]) -> list[str]:
    return sorted({pattern for target in targets for pattern in target.aliases})
