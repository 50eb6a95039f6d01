"""The launch report as a person sees it: a real launch through playbooks/shadow_launch.yml (live traffic,
real Traefik and Prometheus) writes the HTML report, and Debian's Chromium, driven by Playwright, opens
it: no console error, three charts each with the shadow's and the main's series, a marker per step and
per check, and the numbers in the page are the numbers the gate printed while it ran.

DARKLAUNCH_REPORT_SCREENSHOT=<path> also saves a screenshot of the page there (the README's picture).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from routes import launch_vars
from shadow import run_playbook
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network: no background connections that would be refused by the sandbox.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LINE = re.compile(
    r"(\d+)% step, \d+/\d+ s, check (\d+)/\d+: (\w+) \| shadow (\d+) req, ([\d.]+)% 5xx, p95 (\d+) ms"
    r" \| main (\d+) req, ([\d.]+)% 5xx, p95 (\d+) ms"
)


@pytest.fixture(scope="module")
def browser() -> Any:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        pytest.fail("Debian's chromium is missing: scripts/bootstrap installs it", pytrace=False)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def test_the_report_of_a_real_launch_opens_and_shows_the_gates_numbers(
    seed_world: Callable[..., Any], cluster: Any, browser: Any, tmp_path: Path
) -> None:
    world = seed_world(app="report")
    load = SteadyTraffic(cluster.traefik_url, world.host, 40.0, limit=180).start()
    try:
        time.sleep(10)  # some history for the baseline
        completed = run_playbook(
            "shadow_launch",
            launch_vars(world, steps=[20, 50], bake_seconds=10, interval=5, report_dir=str(tmp_path)),
            timeout=300,
        )
    finally:
        load.stop()
    out = completed.stdout + completed.stderr
    assert completed.returncode == 0, out
    [path] = re.findall(r"Launch report: (\S+\.html)", out)
    assert Path(path).parent == tmp_path and Path(path).is_file()
    size = Path(path).stat().st_size
    print(f"\nreport {path}: {size} bytes")
    assert size < 200_000, "the report stays small"
    printed = LINE.findall(out)
    assert len(printed) == 4, out  # two steps of two checks

    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(Path(path).as_uri())
    assert problems == []
    assert requests == [Path(path).as_uri()], "the page loads nothing from anywhere"

    assert page.locator("figure.chart").count() == 3
    for chart in page.locator("figure.chart").all():
        roles = [line.get_attribute("data-role") for line in chart.locator("polyline.series").all()]
        assert sorted(roles) == ["main", "shadow"], chart.get_attribute("data-metric")
        assert [g.get_attribute("data-percent") for g in chart.locator("g.step-marker").all()] == ["20", "50"]
        assert chart.locator("circle.check-marker").count() == 4
        box = chart.locator("svg").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 80, "the chart is drawn"

    rows = page.locator("tr.check").all()
    assert len(rows) == 4
    for row, line in zip(rows, printed, strict=True):
        percent, _n, verdict, s_req, s_err, s_p95, m_req, m_err, m_p95 = line
        cell = {f: row.locator(f'td[data-field="{f}"]').inner_text() for f in _FIELDS}
        assert row.get_attribute("data-verdict") == verdict
        assert int(cell["shadow-requests"]) == int(s_req) and int(cell["main-requests"]) == int(m_req)
        assert abs(float(cell["shadow-error_rate"].rstrip("%")) - float(s_err)) <= 0.05
        assert abs(float(cell["main-error_rate"].rstrip("%")) - float(m_err)) <= 0.05
        assert cell["shadow-latency_p95"] == f"{s_p95} ms" and cell["main-latency_p95"] == f"{m_p95} ms"
        assert f"{percent}%" in row.inner_text()
    assert "passed" in page.locator("#outcome").inner_text()
    assert page.locator("#changes tr").count() >= 4, "create, attach, ramp and teardown are listed"
    final = page.locator("#final").inner_text()
    assert f"{world.service('stable')} (50%)" in final and f"{world.service('canary')} (50%)" in final, final

    screenshot = os.environ.get("DARKLAUNCH_REPORT_SCREENSHOT")
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)
    page.close()


_FIELDS = [f"{role}-{field}" for role in ("shadow", "main") for field in ("requests", "error_rate", "latency_p95")]
