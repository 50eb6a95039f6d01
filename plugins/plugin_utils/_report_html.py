# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch report as one self-contained HTML page: pure, no I/O, no dependency.

Charts are inline SVG drawn here (no JavaScript, no CDN, no charting library): the page opens offline,
prints, and stays readable in a browser with scripts off. Every number shown comes from the data
given; nothing is computed that the gate did not compute, except the chart scales.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._distribution_records import ROLE_MAIN, ROLE_SHADOW
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_model import (
    VERDICT_ANOMALOUS,
    VERDICT_INSUFFICIENT,
    VERDICT_OK,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import ANOMALOUS, INCONCLUSIVE, OK
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._numbers import is_number

# Legend and drawing order: main first, so the shadow's line is drawn on top of it.
ROLES = (ROLE_MAIN, ROLE_SHADOW)
ROLE_COLOURS = {"main": "#1f6feb", "shadow": "#d9480f"}
VERDICT_COLOURS = {
    VERDICT_OK: "#2f9e44",
    VERDICT_ANOMALOUS: "#e03131",
    VERDICT_INSUFFICIENT: "#868e96",
    "error": "#862e9c",
}
# The charts: key in ``series``, title, unit and how a value is shown.
CHARTS = (
    ("request_rate", "Requests per second", "req/s", "{:.3g}"),
    ("error_rate", "5xx share", "%", "{:.3g}%"),
    ("latency_p95", "p95 latency", "ms", "{:.3g} ms"),
)
# The smallest top of each chart's axis: a flat zero line sits at the bottom of a readable scale.
AXIS_FLOOR = {"request_rate": 1.0, "error_rate": 0.05, "latency_p95": 0.01}
WIDTH, HEIGHT = 760, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 30


def page_start(title: str) -> list[str]:
    """The lines every report page starts with: its head (title, the shared stylesheet) and its heading."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]


def render(report: Mapping[str, Any]) -> str:
    """The page for ``report`` (see ``docs/user-guide.md``, "The launch report", for its fields)."""
    title = f"Shadow launch of {report.get('route', '?')} in {report.get('namespace', '?')}"
    parts = [
        *page_start(title),
        _outcome(report),
        _launch(report),
        _charts(report),
        _compare(report),
        _steps(report),
        _checks(report),
        _changes(report),
        _final_state(report),
        f"<footer>Generated {escape(_time_text(report.get('generated_at')))} by darklaunch.traefik.</footer>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


# --- sections ----------------------------------------------------------------------------------------


# The launch engine's outcomes (data) as the page says them, and their colour.
_OUTCOMES = {
    "passed": ("passed", "good"),
    "rolled_back": ("rolled back", "bad"),
    "rollback_failed": ("ROLLBACK FAILED", "bad"),
    "taken_over": ("taken over by an operator", "neutral"),
    "refused": ("refused before any change", "neutral"),
    "planned": ("planned (check mode)", "neutral"),
    "status": ("status", "neutral"),
}


def _outcome(report: Mapping[str, Any]) -> str:
    outcome, css = _OUTCOMES.get(str(report.get("outcome", "unknown")), (str(report.get("outcome")), "neutral"))
    lines = [
        f'<section id="outcome" class="outcome {css}"><p class="verdict">Outcome: '
        f"<strong>{escape(outcome)}</strong></p>"
    ]
    if report.get("summary"):
        lines.append(f"<p>{escape(report['summary'])}</p>")
    lines.append("</section>")
    return "".join(lines)


# The gate's settings the page states, in this order, with their names as the role's variables say them.
GATE_SETTINGS = (
    ("gate", "gate"),
    ("steps", "steps (%)"),
    ("bake_seconds", "bake (s)"),
    ("interval", "check interval (s)"),
    ("window", "window"),
    ("sigma", "sigma"),
    ("min_requests", "min requests"),
    ("failure_limit", "failure limit"),
    ("inconclusive_limit", "inconclusive limit"),
    ("error_limit", "error limit"),
    ("fail_on_insufficient_data", "fail on insufficient data"),
    ("lease_seconds", "lease (s)"),
)


def _launch(report: Mapping[str, Any]) -> str:
    """Where and by whom the launch ran, when, and the gate's settings."""
    cluster = report.get("cluster") or {}
    rows = [
        ("Cluster", cluster.get("name")),
        ("API server", cluster.get("server")),
        ("Context", cluster.get("context") or "none (no kubeconfig context)"),
        ("Namespace", report.get("namespace")),
        ("Route", report.get("route")),
        ("Owner", report.get("owner")),
        ("Launch id", report.get("launch_id")),
        ("Started", _time_text(report.get("started")) if report.get("started") is not None else None),
        ("Ended", _time_text(report.get("ended")) if report.get("ended") is not None else None),
    ]
    gate = report.get("gate") or {}
    settings = [(label, gate[key]) for key, label in GATE_SETTINGS if gate.get(key) is not None]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    gate_rows = (
        "".join(f"<tr><th>{escape(k)}</th><td>{escape(_setting(v))}</td></tr>" for k, v in settings)
        or '<tr><td colspan="2">Not given.</td></tr>'
    )
    return (
        f'<section id="launch"><h2>Launch</h2><table class="facts"><tbody>{body}</tbody></table>'
        f'<h3>Gate settings</h3><table class="facts gate"><tbody>{gate_rows}</tbody></table></section>'
    )


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _charts(report: Mapping[str, Any]) -> str:
    series = report.get("series") or {}
    if not series:
        return '<section id="charts"><h2>Traffic</h2><p>No series: Prometheus was not asked.</p></section>'
    start, end = _time_span(report)
    blocks = ['<section id="charts"><h2>Shadow vs main, per step</h2>', _legend()]
    for key, name, unit, fmt in CHARTS:
        blocks.append(_chart(key, name, unit, fmt, series.get(key) or {}, report, start, end))
    blocks.append("</section>")
    return "".join(blocks)


def _legend() -> str:
    items = [f'<span class="key" style="--c:{ROLE_COLOURS[r]}">{r}</span>' for r in ROLES]
    checks = [f'<span class="dot" style="--c:{c}">{escape(v)}</span>' for v, c in VERDICT_COLOURS.items()]
    return f'<p class="legend">{" ".join(items)} &nbsp; checks: {" ".join(checks)} &nbsp; dashed lines: steps</p>'


def _chart(
    key: str,
    name: str,
    unit: str,
    fmt: str,
    by_role: Mapping[str, Sequence[Sequence[float]]],
    report: Mapping[str, Any],
    start: float,
    end: float,
) -> str:
    values = [float(v) for role in ROLES for _t, v in _points(by_role.get(role)) if is_number(v)]
    # The checks' own values too: a check marker must never fall outside the plot.
    values += [
        float(v)
        for check in report.get("checks") or []
        if (v := (check.get("shadow") or {}).get(key)) is not None and is_number(v)
    ]
    top = max(_nice_top(max(values) if values else 0.0), AXIS_FLOOR.get(key, 0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - start) / max(end - start, 1e-9) * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v / top) * plot_h if top > 0 else TOP + plot_h

    scale = {"latency_p95": 1000.0, "error_rate": 100.0}.get(key, 1.0)
    svg = [
        f'<figure class="chart" data-metric="{key}"><figcaption>{escape(name)} ({escape(unit)})</figcaption>',
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(name)}, shadow and main over time">',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        svg.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        label = escape(_fmt(fmt, value * scale))
        svg.append(f'<text class="tick" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{label}</text>')
    ticks = _time_ticks(start, end)
    for i, t in enumerate(ticks):
        anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
        svg.append(
            f'<text class="tick" x="{x(t):.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}">{escape(_clock(t))}</text>'
        )
    for step in report.get("steps") or []:
        if step.get("start") is None:
            continue
        sx = x(float(step["start"]))
        percent = escape(step.get("percent"))
        svg.append(
            f'<g class="step-marker" data-percent="{percent}"><line x1="{sx:.1f}" x2="{sx:.1f}" '
            f'y1="{TOP}" y2="{TOP + plot_h}"/><text x="{sx + 3:.1f}" y="{TOP + 12}">{percent}%</text></g>'
        )
    for role in ROLES:
        points = [(float(t), float(v)) for t, v in _points(by_role.get(role)) if is_number(v)]
        if not points:
            continue
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        svg.append(
            f'<polyline class="series" data-role="{role}" points="{path}" style="stroke:{ROLE_COLOURS[role]}">'
            f"<title>{role}: {len(points)} points</title></polyline>"
        )
    for check in report.get("checks") or []:
        if check.get("at") is None:
            continue
        # A check's marker sits on the shadow's value: the shadow is what the gate judges.
        shadow_value = (check.get("shadow") or {}).get(key)
        cy = y(float(shadow_value)) if shadow_value is not None and is_number(shadow_value) else TOP + plot_h
        colour = VERDICT_COLOURS.get(str(check.get("verdict")), "#495057")
        svg.append(
            f'<circle class="check-marker" data-verdict="{escape(check.get("verdict"))}" '
            f'cx="{x(float(check["at"])):.1f}" '
            f'cy="{cy:.1f}" r="4" style="fill:{colour}"><title>{escape(_check_title(check))}</title></circle>'
        )
    svg.append("</svg></figure>")
    return "".join(svg)


def _compare(report: Mapping[str, Any]) -> str:
    """The difference check (shadow_launch_compare): its share at every check, and the paths that differed."""
    checks = [check for check in report.get("checks") or [] if isinstance(check.get("compare"), Mapping)]
    if not checks:
        return ""
    start, end = _time_span(report)
    limit = next((c["compare"]["limit"] for c in checks if c["compare"].get("limit") is not None), None)
    values = [float(c["compare"]["value"]) for c in checks if is_number(c["compare"].get("value"))]
    top = max(_nice_top(max([*values, limit or 0.0])), 0.01)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - start) / max(end - start, 1e-9) * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - (v / top) * plot_h

    svg = [
        '<figure class="chart" data-metric="difference_rate"><figcaption>Differing answers, share of the compared '
        "ones, as each check judged its window (%)</figcaption>",
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Share of differing answers at each check">',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        svg.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        svg.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{100 * value:.3g}%</text>'
        )
    if limit is not None:
        svg.append(
            f'<g class="limit"><line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(limit):.1f}" y2="{y(limit):.1f}" '
            f'style="stroke:#e03131;stroke-dasharray:6 4"/><text class="tick" x="{WIDTH - RIGHT - 4}" '
            f'y="{y(limit) - 4:.1f}" text-anchor="end">max_diff_rate {100 * limit:.3g}%</text></g>'
        )
    judged = [(float(c["at"]), float(c["compare"]["value"])) for c in checks if c.get("at") is not None
              and is_number(c["compare"].get("value"))]  # fmt: skip
    if judged:
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in judged)
        svg.append(
            f'<polyline class="series" data-role="shadow" points="{path}" style="stroke:{ROLE_COLOURS["shadow"]}"/>'
        )
    for check in checks:
        if check.get("at") is None:
            continue
        compare = check["compare"]
        value = compare.get("value")
        cy = y(float(value)) if is_number(value) else TOP + plot_h
        verdict = str(compare.get("verdict"))
        colour = VERDICT_COLOURS.get(VERDICT_INSUFFICIENT if verdict == INCONCLUSIVE else verdict, "#495057")
        svg.append(
            f'<circle class="check-marker" data-verdict="{escape(verdict)}" cx="{x(float(check["at"])):.1f}" '
            f'cy="{cy:.1f}" r="4" style="fill:{colour}"><title>{escape(compare.get("message"))}</title></circle>'
        )
    svg.append("</svg></figure>")
    samples = report.get("compare_samples") or {}
    by_path = samples.get("by_path") or {}
    rows = "".join(
        f'<tr><td><code>{escape(item["path"])}</code></td><td class="num">{item["requests"]:.0f}</td>'
        f"<td>{escape(_clock(item.get('first_seen')))}</td><td>{_sample_cell(by_path.get(item['path']))}</td></tr>"
        for item in report.get("differing_paths") or []
    )
    table = (
        "<table><thead><tr><th>JSON path (array indexes as *)</th><th>differing answers, most in one window</th>"
        f"<th>first seen</th><th>one sample (redacted)</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else "<p>No answer differed from the main's beyond the noise.</p>"
    )
    if not samples:
        said = "this report was written without them."
    elif samples.get("available"):
        said = f"read at the end of the launch: {escape(samples.get('message'))}."
    else:
        said = f"they could not be read: {escape(samples.get('message'))}."
    return (
        '<section id="compare"><h2>Compared answers</h2>' + "".join(svg) + table + '<p class="samples">Samples: the '
        "comparator keeps redacted samples of differing pairs (request line, both statuses, the differing values; "
        f"never Authorization, Cookie or other secret headers) at <code>GET /__darklaunch/samples</code>; {said}</p>"
        "</section>"
    )


def _sample_cell(sample: Mapping[str, Any] | None) -> str:
    """One differing request: its line, the primary's and the candidate's status, and both values."""
    if not sample:
        return "none kept"
    status = sample.get("status") or {}
    return (
        f'<code class="sample-request">{escape(sample.get("request"))}</code><br>status primary '
        f"{escape(status.get('primary'))}, candidate {escape(status.get('candidate'))}; "
        f"<code>{escape(sample.get('path'))}</code>: primary <code>{escape(sample.get('primary'))}</code>, "
        f"candidate <code>{escape(sample.get('candidate'))}</code>"
    )


def _steps(report: Mapping[str, Any]) -> str:
    rows = []
    for step in report.get("steps") or []:
        tally = step.get("tally") or {}
        rows.append(
            "<tr>"
            f'<td class="num">{escape(step.get("percent"))}%</td>'
            f"<td>{escape(_clock(step.get('start')))}</td><td>{escape(_clock(step.get('end')))}</td>"
            f'<td class="result {escape(step.get("result"))}">{escape(step.get("result"))}</td>'
            f'<td class="num">{escape(tally.get(OK, 0))}</td><td class="num">{escape(tally.get(ANOMALOUS, 0))}</td>'
            f'<td class="num">{escape(tally.get(INCONCLUSIVE, 0))}</td>'
            "</tr>"
        )
    body = "".join(rows) or '<tr><td colspan="7">No step ran.</td></tr>'
    return (
        '<section id="steps"><h2>Steps</h2><table><thead><tr><th>mirror</th><th>started</th><th>ended</th>'
        "<th>result</th><th>ok</th><th>anomalous</th><th>inconclusive</th></tr></thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


def _checks(report: Mapping[str, Any]) -> str:
    rows = []
    for check in report.get("checks") or []:
        shadow, main = check.get("shadow") or {}, check.get("main") or {}
        anomalies = "".join(f"<li>{escape(text)}</li>" for text in check.get("anomalies") or [])
        rows.append(
            f'<tr class="check" data-verdict="{escape(check.get("verdict"))}">'
            f'<td>{escape(_clock(check.get("at")))}</td><td class="num">{escape(check.get("percent"))}%</td>'
            f'<td class="verdict {escape(check.get("verdict"))}">{escape(check.get("verdict"))}</td>'
            + "".join(
                f'<td class="num" data-field="{role}-{field}">{escape(_number(side.get(field), field))}</td>'
                for role, side in (("shadow", shadow), ("main", main))
                for field in ("requests", "error_rate", "latency_p95")
            )
            + f"<td>{escape(check.get('summary', ''))}{f'<ul>{anomalies}</ul>' if anomalies else ''}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="10">The gate did not run.</td></tr>'
    return (
        '<section id="checks"><h2>Every gate check</h2><table><thead><tr><th>at</th><th>step</th><th>verdict</th>'
        "<th>shadow req</th><th>shadow 5xx</th><th>shadow p95</th><th>main req</th><th>main 5xx</th><th>main p95</th>"
        f"<th>summary</th></tr></thead><tbody>{body}</tbody></table></section>"
    )


def _changes(report: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(_clock(change.get('at')))}</td><td>{escape(change.get('summary'))}</td></tr>"
        for change in report.get("changes") or []
    )
    return (
        '<section id="changes"><h2>What was changed in the cluster</h2><table><thead><tr><th>at</th><th>change</th>'
        f"</tr></thead><tbody>{rows or '<tr><td colspan=2>Nothing was changed.</td></tr>'}</tbody></table></section>"
    )


def _final_state(report: Mapping[str, Any]) -> str:
    final = report.get("final_state") or {}
    sinks = ", ".join(
        f"{s.get('name')} ({s.get('user_share_percent')}%)"
        for s in final.get("main_sink") or []
        if isinstance(s, Mapping)
    )
    return (
        '<section id="final"><h2>Who serves users now</h2>'
        f"<p>{escape(final.get('explanation') or 'Unknown: the route could not be read after the launch.')}</p>"
        + (f"<p>User responses come from: {escape(sinks)}.</p>" if sinks else "")
        + "</section>"
    )


# --- helpers -------------------------------------------------------------------------------------------


def _points(raw: Any) -> list[tuple[float, Any]]:
    if not isinstance(raw, Sequence):
        return []
    return [(float(p[0]), p[1]) for p in raw if isinstance(p, Sequence) and len(p) == 2]


def _time_span(report: Mapping[str, Any]) -> tuple[float, float]:
    series = report.get("series") or {}
    by_metric = [series[key] for key, *_rest in CHARTS if isinstance(series.get(key), Mapping)]
    times = [t for by_role in by_metric for role in ROLES for t, _v in _points(by_role.get(role))]
    times += [float(s[k]) for s in report.get("steps") or [] for k in ("start", "end") if s.get(k) is not None]
    times += [float(c["at"]) for c in report.get("checks") or [] if c.get("at") is not None]
    if not times:
        return 0.0, 1.0
    return min(times), max([*times, min(times) + 1.0])


def _nice_top(value: float) -> float:
    """A round number at or above ``value`` (1, 2, 2.5, 5 x a power of ten); 0 for no data."""
    if value <= 0 or not math.isfinite(value):
        return 0.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10.0 * magnitude


def _time_ticks(start: float, end: float, count: int = 5) -> list[float]:
    return [start + (end - start) * i / (count - 1) for i in range(count)]


def _clock(value: Any) -> str:
    if value is None or not is_number(value):
        return "-"
    return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%H:%M:%S")


def _time_text(value: Any) -> str:
    if not is_number(value):
        return "at an unknown time"
    return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(fmt: str, value: float) -> str:
    return fmt.format(value)


def _number(value: Any, field: str) -> str:
    if not is_number(value):
        return "n/a"
    number = float(value)
    if field == "error_rate":
        return f"{number:.2%}"
    if field == "latency_p95":
        return f"{number * 1000:.0f} ms"
    return f"{number:.0f}"


def _check_title(check: Mapping[str, Any]) -> str:
    shadow = check.get("shadow") or {}
    return (
        f"{_clock(check.get('at'))} {check.get('percent')}% step: {check.get('verdict')}; shadow "
        f"{_number(shadow.get('requests'), 'requests')} req, {_number(shadow.get('error_rate'), 'error_rate')} 5xx, "
        f"p95 {_number(shadow.get('latency_p95'), 'latency_p95')}"
    )


def escape(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#212529}
body{margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 12px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
.outcome{padding:10px 14px;border-radius:6px;border:1px solid}
.outcome p{margin:4px 0}
.good{background:#ebfbee;border-color:#2f9e44}
.bad{background:#fff5f5;border-color:#e03131}
.neutral{background:#f8f9fa;border-color:#adb5bd}
.verdict{font-size:16px}
figure.chart{margin:8px 0 16px}
figcaption{font-weight:600;margin-bottom:2px}
svg{width:100%;height:auto;display:block}
rect.plot{fill:#fff;stroke:#ced4da}
line.grid{stroke:#e9ecef}
text.tick{font-size:11px;fill:#495057}
polyline.series{fill:none;stroke-width:2}
g.step-marker line{stroke:#495057;stroke-dasharray:4 3}
g.step-marker text{font-size:11px;fill:#495057}
circle.check-marker{stroke:#fff;stroke-width:1}
.legend{font-size:12px}
.key::before{content:"";display:inline-block;width:18px;height:3px;background:var(--c);margin:0 4px 3px 0}
.dot::before{content:"";display:inline-block;width:9px;height:9px;border-radius:50%;background:var(--c)}
.dot::before{margin:0 3px 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e9ecef;padding:4px 6px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.anomalous,td.error{color:#c92a2a;font-weight:600}
td.ok{color:#2b8a3e}
td.insufficient_data,td.not.judged{color:#868e96}
ul{margin:4px 0 0 16px;padding:0}
footer{margin-top:28px;font-size:12px;color:#868e96}
""".strip()
