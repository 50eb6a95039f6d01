# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch report names its cluster, owner, times and gate settings, and its file never overwrites another."""

from __future__ import annotations

import threading
from pathlib import Path

from ansible_collections.darklaunch.traefik.plugins.action.launch_report import cluster_of, reserve_path
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_data import report_data
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_html import render

T0 = 1_800_000_000.0


def params() -> dict[str, object]:
    return {
        "route_name": "api",
        "namespace": "production",
        "outcome": "passed",
        "steps": [{"percent": 20, "result": "ok", "start": T0, "end": T0 + 60}],
        "cluster": {"name": "prod-eu", "server": "https://10.0.0.1:6443", "context": "prod-eu-admin"},
        "owner": "alice@laptop via ansible-playbook",
        "launch_id": "20270115T080000Z-abcdef",
        "gate": {"gate": True, "bake_seconds": 300, "interval": 60, "window": "1m", "sigma": 3.0, "failure_limit": 2},
    }


def test_the_page_states_cluster_namespace_owner_times_and_gate_settings() -> None:
    page = render(report_data(params(), now=T0 + 61))
    for text in (
        "prod-eu",
        "https://10.0.0.1:6443",
        "prod-eu-admin",
        "production",
        "alice@laptop via ansible-playbook",
        "20270115T080000Z-abcdef",
        "bake (s)</th><td>300",
        "check interval (s)</th><td>60",
        "window</th><td>1m",
        "sigma</th><td>3.0",
        "failure limit</th><td>2",
        "gate</th><td>on",
    ):
        assert text in page, text


def test_the_summary_names_the_launch_and_its_times() -> None:
    stats = report_data(params(), now=T0 + 61)["stats"]
    assert stats["cluster"] == "prod-eu" and stats["owner"].startswith("alice")
    assert stats["started"] == "2027-01-15T08:00:00.000Z" and stats["ended"] == "2027-01-15T08:01:00.000Z"


def test_the_cluster_is_named_by_the_given_name_else_the_context_else_the_servers_host() -> None:
    assert cluster_of({"name": "fleet-1", "server": "https://a:6443"}, {})["name"] == "fleet-1"
    assert cluster_of({"server": "https://a:6443", "context": "kind-a"}, {})["name"] == "kind-a"
    assert cluster_of({"server": "https://api.example:6443"}, {})["name"] == "api.example"


def test_a_report_file_never_overwrites_another(tmp_path: Path) -> None:
    paths: list[str] = []

    def reserve() -> None:
        paths.append(reserve_path(str(tmp_path / "reports"), "shadow-launch-c-ns-api-20270115T080000Z"))

    threads = [threading.Thread(target=reserve) for _writer in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 8
    names = sorted(Path(p).name for p in paths)
    assert "shadow-launch-c-ns-api-20270115T080000Z.html" in names
    assert "shadow-launch-c-ns-api-20270115T080000Z-8.html" in names
