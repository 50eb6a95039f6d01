# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: one self-contained HTML page across the clusters of a fleet launch.

One row per cluster, in wave order: how its launch ended and why, where its users go now, and a link to
that cluster's own launch report. Pure: it gets the rows and returns the page; the action plugin writes it.
The style is the launch report's, so the two read alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import VERDICT_ANOMALOUS
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_html import escape, page_start

# A cluster's result as the fleet playbook records it, and how its row is coloured.
RESULT_CLASSES = {
    "passed and torn down": "ok",
    "launched": "ok",
    "not started": "neutral",
}


def fleet_summary(clusters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The counts the page's headline and the action's result share."""
    failed = [str(c.get("cluster")) for c in clusters if c.get("failed")]
    not_started = [str(c.get("cluster")) for c in clusters if c.get("result") == "not started"]
    return {
        "clusters": len(clusters),
        "failed": failed,
        "not_started": not_started,
        "outcome": "failed" if failed else "passed",
    }


def render_fleet(
    route: str, namespace: str, clusters: Sequence[Mapping[str, Any]], page_dir: str, generated: float
) -> str:
    """The page for ``clusters`` (dicts with ``cluster``, ``result``, ``failed``, ``cause``, ``now`` and
    ``report_path``); links to the clusters' reports are relative to ``page_dir`` when they are below it."""
    summary = fleet_summary(clusters)
    title = f"Fleet shadow launch of {route} in {namespace}"
    headline = f"{summary['clusters']} clusters, {len(summary['failed'])} failed"
    if summary["not_started"]:
        headline += f"; not started (an earlier wave failed): {', '.join(summary['not_started'])}"
    css = "bad" if summary["failed"] else "good"
    rows = "".join(_row(cluster, page_dir) for cluster in clusters)
    when = datetime.fromtimestamp(generated, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "\n".join(
        [
            *page_start(title),
            f'<section id="outcome" class="outcome {css}"><p class="verdict">Outcome: '
            f"<strong>{escape(summary['outcome'])}</strong></p><p>{escape(headline)}</p></section>",
            '<h2>Clusters, in wave order</h2><table id="clusters"><thead><tr><th>Cluster</th><th>Result</th>'
            "<th>Why</th><th>Where its users go now</th><th>Launch report</th></tr></thead>",
            f"<tbody>{rows}</tbody></table>",
            f"<footer>Generated {escape(when)} by darklaunch.traefik.</footer>",
            "</body></html>",
        ]
    )


def _row(cluster: Mapping[str, Any], page_dir: str) -> str:
    result = str(cluster.get("result") or "unknown")
    css = VERDICT_ANOMALOUS if cluster.get("failed") else RESULT_CLASSES.get(result, "neutral")
    return (
        f'<tr data-cluster="{escape(cluster.get("cluster"))}"><td>{escape(cluster.get("cluster"))}</td>'
        f'<td class="{css}">{escape(result)}</td><td>{escape(cluster.get("cause") or "")}</td>'
        f"<td>{escape(cluster.get('now') or '')}</td><td>{_report_link(cluster.get('report_path'), page_dir)}</td></tr>"
    )


def _report_link(path: Any, page_dir: str) -> str:
    if not path:
        return "none"
    target = os.path.abspath(str(path))
    relative = os.path.relpath(target, os.path.abspath(page_dir))
    href = quote(relative) if not relative.startswith("..") else "file://" + quote(target)
    return f'<a href="{escape(href)}">{escape(os.path.basename(target))}</a>'
