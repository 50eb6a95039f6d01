"""The fleet report's page (pure code; the fleet playbook writes it in tests/integration/test_fleet.py)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._fleet_report_html import fleet_summary, render_fleet

T0 = 1_790_000_000.0


class Page(HTMLParser):
    """Rows of the clusters table (cells as text, plus each row's link) and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr" and dict(attrs).get("data-cluster"):
            self.rows.append({"cells": [], "href": None, "class": []})
        elif tag == "td" and self.rows:
            self._cell = []
            self.rows[-1]["class"].append(dict(attrs).get("class"))
        elif tag == "a" and self.rows:
            self.rows[-1]["href"] = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append("".join(self._cell))
            self._cell = None


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    return parsed


CLUSTERS = [
    {
        "cluster": "eu-canary",
        "result": "rolled back",
        "failed": True,
        "cause": "Anomaly gate at 20%: anomalous <b>500s</b>",
        "now": "All requests go to api-stable.",
        "report_path": "/reports/shadow-launch-production-api-20261127T151200Z.html",
    },
    {"cluster": "eu-main", "result": "not started", "failed": False, "cause": "eu-canary failed in an earlier wave"},
]


def test_one_row_per_cluster_in_wave_order_with_its_result_and_report() -> None:
    page = parse(render_fleet("api", "production", CLUSTERS, "/reports", T0))
    assert [row["cells"][:2] for row in page.rows] == [["eu-canary", "rolled back"], ["eu-main", "not started"]]
    # Text from the clusters is text, never markup; the failed row is marked as such.
    assert page.rows[0]["cells"][2] == "Anomaly gate at 20%: anomalous <b>500s</b>" and "b" not in page.tags
    assert page.rows[0]["class"][1] == "anomalous" and page.rows[1]["class"][1] == "neutral"
    # A report beside the page is linked relatively (the directory can be moved or served); none is "none".
    assert page.rows[0]["href"] == "shadow-launch-production-api-20261127T151200Z.html"
    assert page.rows[1]["href"] is None and page.rows[1]["cells"][4] == "none"
    assert not {"script", "link", "img", "iframe"} & set(page.tags), "self-contained: nothing loaded"


def test_a_report_elsewhere_is_linked_by_its_absolute_path(tmp_path: Path) -> None:
    page = parse(render_fleet("api", "production", CLUSTERS[:1], str(tmp_path), T0))
    assert page.rows[0]["href"] == "file:///reports/shadow-launch-production-api-20261127T151200Z.html"


def test_the_headline_says_how_many_failed_and_which_never_started() -> None:
    assert fleet_summary(CLUSTERS) == {
        "clusters": 2,
        "failed": ["eu-canary"],
        "not_started": ["eu-main"],
        "outcome": "failed",
    }
    page = render_fleet("api", "production", CLUSTERS, "/reports", T0)
    assert "2 clusters, 1 failed; not started (an earlier wave failed): eu-main" in page
    passed = [{"cluster": "a", "result": "launched", "failed": False}]
    assert fleet_summary(passed)["outcome"] == "passed"
    assert parse(render_fleet("api", "production", passed, "/reports", T0)).rows[0]["class"][1] == "ok"
