"""The launch report's data reduction and HTML page (pure code: no browser, no cluster here; the page is
also opened in a real Chromium by tests/integration/test_report_browser.py)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_data import check_row, epoch, report_data
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_html import render

T0 = 1_790_000_000.0


def gate_check(at: float, verdict: str, shadow: dict[str, Any], mains: list[dict[str, Any]]) -> dict[str, Any]:
    """A check as the role records it: the lookup's answer plus percent and time (10 s windows)."""
    shadow = {**shadow, "request_rate": shadow["requests"] / 10}
    mains = [{**main, "request_rate": main["requests"] / 10} for main in mains]
    return {
        "verdict": verdict,
        "summary": f"summary <{verdict}>",
        "anomalies": [{"description": "shadow canary has an error rate of 10.00%"}] if verdict == "anomalous" else [],
        "services": [{"role": "shadow", "service": "ns-canary-80@kubernetescrd", **shadow}]
        + [{"role": "main", **main} for main in mains]
        + [{"role": "other_route", "requests": 999.0, "error_rate": 0.5, "latency_p95": 9.0}],
        "percent": 20,
        "at": at,
    }


def params(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "route_name": "api<script>alert(1)</script>",
        "namespace": "production",
        "outcome": "rolled_back",
        "summary": "The gate found 1 anomaly & rolled back.",
        "steps": [
            {"percent": 20, "result": "ok", "tally": {"ok": 2}, "start": T0, "end": T0 + 20},
            {
                "percent": 50,
                "result": "anomalous",
                "tally": {"ok": 1, "anomalous": 1},
                "start": T0 + 21,
                "end": T0 + 40,
            },
        ],
        "checks": [
            gate_check(
                T0 + 10,
                "ok",
                {"requests": 80.0, "error_rate": 0.0, "latency_p95": 0.012},
                [{"requests": 400.0, "error_rate": 0.0, "latency_p95": 0.011}],
            ),
            gate_check(
                T0 + 31,
                "anomalous",
                {"requests": 200.0, "error_rate": 0.1, "latency_p95": 0.02},
                [
                    {"requests": 300.0, "error_rate": 0.01, "latency_p95": 0.01},
                    {"requests": 100.0, "error_rate": 0.03, "latency_p95": 0.03},
                ],
            ),
        ],
        "changes": [{"at": "2026-09-21T10:00:05", "summary": "create TraefikService api-mirror"}],
        "final_state": {"explanation": "User responses come 50% from stable, 50% from canary.", "main_sink": []},
        "series": {
            key: {
                "shadow": [[T0 + i, value] for i in range(0, 41, 5)],
                "main": [[T0 + i, value / 2] for i in range(0, 41, 5)],
            }
            for key, value in (("request_rate", 8.0), ("error_rate", 0.05), ("latency_p95", 0.02))
        }
        # What the lookup's series term adds beside the metrics.
        | {"start": T0, "end": T0 + 40, "step": 5.0, "labels": {"shadow": ["c"], "main": ["s"]}},
    }
    base.update(extra)
    return base


class Page(HTMLParser):
    """Elements of interest, by class, with their attributes; and every table cell by data-field."""

    def __init__(self) -> None:
        super().__init__()
        self.by_class: dict[str, list[dict[str, str | None]]] = {}
        self.fields: dict[str, list[str]] = {}
        self.scripts = 0
        self._field: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for name in (attributes.get("class") or "").split():
            self.by_class.setdefault(name, []).append(attributes)
        self._field = attributes.get("data-field")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._field:
            self.fields.setdefault(self._field, []).append(data)
            self._field = None


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    return parser


def test_a_check_is_reduced_to_the_shadow_and_the_mains_numbers_only() -> None:
    row = check_row(params()["checks"][1])
    assert row["shadow"] == {"requests": 200.0, "request_rate": 20.0, "error_rate": 0.1, "latency_p95": 0.02}
    # Two mains behind a weighted split: requests add up, the 5xx share is weighted, p95 is the slowest.
    assert row["main"] == {
        "requests": 400.0,
        "request_rate": 40.0,
        "error_rate": pytest.approx(0.015),
        "latency_p95": 0.03,
    }
    assert row["at"] == T0 + 31 and row["anomalies"] == ["shadow canary has an error rate of 10.00%"]


def test_times_are_read_from_numbers_and_iso_strings_naive_meaning_utc() -> None:
    assert epoch(12.5) == 12.5 and epoch("12.5") == 12.5
    assert epoch("1970-01-01T00:01:00") == 60.0 and epoch("1970-01-01T00:01:00Z") == 60.0
    assert epoch("not a time") is None and epoch(None) is None and epoch(True) is None


def test_the_summary_for_set_stats_counts_the_checks() -> None:
    stats = report_data(params(), now=T0)["stats"]
    assert stats == {
        "route": "api<script>alert(1)</script>",
        "namespace": "production",
        "outcome": "rolled_back",
        "steps": [{"percent": 20, "result": "ok"}, {"percent": 50, "result": "anomalous"}],
        "checks": 2,
        "anomalous_checks": 1,
        "inconclusive_checks": 0,
        "cluster": None,
        "launch_id": None,
        "owner": None,
        "started": stats["started"],
        "ended": stats["ended"],
    }
    assert stats["ended"] is not None


def test_the_page_has_three_charts_each_with_both_series_every_step_and_every_check() -> None:
    page = parse(render(report_data(params(), now=T0)))
    assert len(page.by_class["chart"]) == 3
    assert len(page.by_class["series"]) == 3 * 2
    assert [a["data-role"] for a in page.by_class["series"]] == ["main", "shadow"] * 3
    assert [a["data-percent"] for a in page.by_class["step-marker"]] == ["20", "50"] * 3
    assert [a["data-verdict"] for a in page.by_class["check-marker"]] == ["ok", "anomalous"] * 3
    assert page.scripts == 0, "the page needs no JavaScript"


def test_the_check_table_shows_the_gates_numbers() -> None:
    page = parse(render(report_data(params(), now=T0)))
    assert page.fields["shadow-requests"] == ["80", "200"]
    assert page.fields["shadow-error_rate"] == ["0.00%", "10.00%"]
    assert page.fields["shadow-latency_p95"] == ["12 ms", "20 ms"]
    assert page.fields["main-error_rate"] == ["0.00%", "1.50%"]
    assert page.fields["main-latency_p95"] == ["11 ms", "30 ms"]


def test_everything_from_the_cluster_is_escaped() -> None:
    html = render(report_data(params(), now=T0))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "summary &lt;anomalous&gt;" in html and "1 anomaly &amp; rolled back" in html


def test_without_series_or_checks_the_page_says_so_instead_of_drawing_empty_charts() -> None:
    page = render(report_data(params(series={}, checks=[], steps=[], changes=[]), now=T0))
    assert "Prometheus was not asked" in page and "The gate did not run." in page
    assert "No step ran." in page and "Nothing was changed." in page
    assert 'class="chart"' not in page


def test_missing_and_nan_values_are_not_drawn() -> None:
    data = params()
    data["series"]["latency_p95"]["shadow"] = [[T0, "NaN"], [T0 + 5, None], [T0 + 10, 0.01]]
    data["series"]["error_rate"] = {"main": [[T0, 0.0]]}
    page = parse(render(report_data(data, now=T0)))
    roles = [a["data-role"] for a in page.by_class["series"]]
    assert roles == ["main", "shadow", "main", "main", "shadow"]


def compared(verdict: str, value: float | None, paths: list[tuple[str, float]]) -> dict[str, Any]:
    """A gate check's difference check row (shadow_launch_compare), as _compare_check returns it."""
    return {
        "verdict": verdict,
        "value": value,
        "rule": {"max_diff_rate": 0.01},
        "compared": 200.0,
        "results": {"same": 190.0, "different": 10.0, "noise": 0.0, "skipped": 0.0, "error": 0.0},
        "top_paths": [{"path": path, "requests": count} for path, count in paths],
        "message": f"difference_rate <{verdict}>",
    }


def test_the_difference_check_gets_a_fourth_chart_and_the_table_of_differing_paths() -> None:
    data = params()
    data["checks"][0]["compare"] = compared("ok", 0.005, [("/items/*/price", 1.0)])
    data["checks"][1]["compare"] = compared("anomalous", 0.05, [("/price<b>", 10.0), ("/items/*/price", 2.0)])
    report = report_data(data, now=T0)
    assert report["differing_paths"] == [
        {"path": "/price<b>", "requests": 10.0, "first_seen": T0 + 31},
        {"path": "/items/*/price", "requests": 2.0, "first_seen": T0 + 10},
    ]
    html = render(report)
    page = parse(html)
    assert [a["data-metric"] for a in page.by_class["chart"]] == [
        "request_rate", "error_rate", "latency_p95", "difference_rate",
    ]  # fmt: skip
    assert [a["data-verdict"] for a in page.by_class["check-marker"]][-2:] == ["ok", "anomalous"]
    assert "max_diff_rate 1%" in html and "<code>/price&lt;b&gt;</code>" in html
    assert "difference_rate &lt;anomalous&gt;" in html


def test_without_the_difference_check_there_is_no_fourth_chart() -> None:
    page = parse(render(report_data(params(), now=T0)))
    assert len(page.by_class["chart"]) == 3 and 'id="compare"' not in render(report_data(params(), now=T0))


def test_each_differing_path_shows_one_redacted_sample_or_one_line_why_not() -> None:
    data = params()
    data["checks"][1]["compare"] = compared("anomalous", 0.05, [("/price", 10.0), ("/items/*/id", 2.0)])
    price = {
        "request": "GET /cart?id=<42> HTTP/1.1", "status": {"primary": 200, "candidate": 200}, "path": "/price",
        "primary": "10", "candidate": "11", "request_headers": {"authorization": "Bearer leaked"},
    }  # fmt: skip
    data["compare_samples"] = {"available": True, "message": "2 sample(s)", "by_path": {"/price": price}}
    report = report_data(data, now=T0)
    assert "request_headers" not in report["compare_samples"]["by_path"]["/price"]
    html = render(report)
    assert "leaked" not in html
    assert '<code class="sample-request">GET /cart?id=&lt;42&gt; HTTP/1.1</code>' in html
    assert (
        "status primary 200, candidate 200; <code>/price</code>: primary <code>10</code>, candidate <code>11</code>"
        in html
    )
    assert html.count("none kept") == 1  # /items/*/id had no sample
    assert "read at the end of the launch: 2 sample(s)." in html

    data["compare_samples"] = {"available": False, "message": "the API server answered 403: may not get services/proxy"}
    html = render(report_data(data, now=T0))
    assert html.count("they could not be read: the API server answered 403: may not get services/proxy.") == 1
    data.pop("compare_samples")
    assert "this report was written without them." in render(report_data(data, now=T0))
