"""playbooks/shadow_launch_fleet.yml on two real clusters at the same time: the session's cluster and a
second instance of the harness (its own apiserver, Traefik, Prometheus and backends; state
.state/cluster-fleet-b, ports +200), each an inventory host with its own kubeconfig and Prometheus.

- the canary cluster's shadow fails: it is rolled back, the second wave never starts, both clusters end
  exactly as before;
- the canary cluster passes and a cluster of the second wave fails: that one is rolled back by the role,
  and with rollback_launched_on_failure=true the canary cluster too.

Both check the IngressRoutes and mirrors in each apiserver, the user responses at the client and what the
backends of each cluster received.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusters import second_cluster
from dlcluster import traefik as traefik_api
from dlcluster.backends import BackendsClient
from dlcluster.rbac import bind_operator
from dlcluster.testing import Cluster
from dlcluster.traffic import send
from dlcluster.world import SeedWorld, create_world, remove_world_backends
from routes import fail_shadow_while_attached, mirror_exists, route_as_written
from shadow import REPO_ROOT, playbook_env
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

RATE = 30.0  # user requests per second and cluster: 150 copies per 10 s window at a 50% mirror


@pytest.fixture(scope="module")
def cluster_b() -> Iterator[Cluster]:
    """The second cluster, started for this module and stopped at its end."""
    with second_cluster("fleet-b", "DARKLAUNCH_FLEET_B_STATE_DIR", "DARKLAUNCH_FLEET_B_PORT_OFFSET", 200) as member:
        yield member


class Site:
    """One cluster of the fleet with the seed's world in it, as the test sees it."""

    def __init__(self, name: str, cluster: Cluster, world: SeedWorld) -> None:
        self.name = name
        self.cluster = cluster
        self.kube = cluster.kube("admin")
        self.world = world

    def route(self) -> dict[str, Any]:
        return route_as_written(self.kube, self.world)

    def has_mirror(self) -> bool:
        return mirror_exists(self.kube, self.world)

    def inventory_vars(self) -> dict[str, Any]:
        return {
            "k8s_auth": {"kubeconfig": str(self.cluster.kubeconfigs["shadow-operator"])},
            "prometheus_url": self.cluster.prometheus_url,
        }

    def fail_shadow_while_attached(self) -> threading.Thread:
        """The shadow fails half its requests while attached (routes.fail_shadow_while_attached). Only copies
        reach it: the users' split is stable and staging."""
        return fail_shadow_while_attached(
            self.kube,
            self.world,
            lambda path: traefik_api.api_get(self.cluster.traefik_api_url or "", path),
            name=f"fail-shadow-{self.name}",
        )

    def traffic(self) -> SteadyTraffic:
        return SteadyTraffic(self.cluster.traefik_url or "", self.world.host, RATE, limit=240).start()


def _wait_routable(cluster: Cluster, world: SeedWorld) -> None:
    traefik_api.wait_for_api_object(
        cluster.traefik_api_url or "",
        "routers",
        lambda r: r["name"].startswith(f"{world.namespace}-{world.route}-") and r.get("status") == "enabled",
        f"a router for {world.route}",
    )
    deadline = time.monotonic() + 30
    while send(cluster.traefik_url or "", world.host, 1, path="/__probe").statuses != [200]:
        assert time.monotonic() < deadline, f"{world.host} is not routed"
        time.sleep(0.1)
    world.reset_backends()


@pytest.fixture
def fleet(
    cluster: Cluster, cluster_b: Cluster, make_namespace: Callable[[str], str], request: pytest.FixtureRequest
) -> Iterator[dict[str, Site]]:
    """The same app, route and namespace in both clusters (as a fleet deploys it)."""
    namespace = make_namespace("fleet")
    app = "fleet-" + request.node.name.rsplit("_", 1)[-1][:8]
    sites: dict[str, Site] = {}
    created: list[tuple[BackendsClient, SeedWorld]] = []
    for name, member in (("cluster-a", cluster), ("cluster-b", cluster_b)):
        backends = BackendsClient(member.backends_url or "")
        # Users are split between stable and staging; the canary (the shadow) never answers them. A failing
        # canary would otherwise meet users the moment a rollback restores the split, before the test can
        # repair it (CI saw one such 500 on a loaded machine).
        world = create_world(member.kube("admin"), backends, namespace, app, weights={"stable": 50, "staging": 50})
        created.append((backends, world))
        bind_operator(member.kube("admin"), namespace)
        _wait_routable(member, world)
        sites[name] = Site(name, member, world)
    yield sites
    for backends, world in created:
        remove_world_backends(backends, world)


def write_inventory(path: Path, canary: list[Site], rest: list[Site]) -> Path:
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "children": {
                "canary_clusters": {"hosts": {site.name: site.inventory_vars() for site in canary}},
                "clusters": {"hosts": {site.name: site.inventory_vars() for site in rest}},
            },
        }
    }
    path.write_text(yaml.safe_dump(inventory))
    return path


def run_fleet(inventory: Path, world: SeedWorld, **extra: Any) -> subprocess.CompletedProcess[str]:
    extra_vars = {
        "route_name": world.route,
        "route_namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "steps": "50",
        "bake_seconds": 10,
        "window": "10s",
        "interval": 5,
        # The test machine's latency is noisy (two shared cores); the failing shadow is far beyond 5.
        "sigma": 5,
        "history_windows": 3,
        "min_requests": 20,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        **extra,
    }
    env = {k: v for k, v in playbook_env().items() if not k.startswith(("K8S_AUTH_", "PROMETHEUS_"))}
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(inventory),
            str(REPO_ROOT / "playbooks" / "shadow_launch_fleet.yml"),
            "-e",
            json.dumps(extra_vars),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )


def copies_received(site: Site, load: SteadyTraffic) -> int:
    """Requests the canary backend got beyond the user responses it answered (the weighted split's share)."""
    canary = site.world.backends["canary"]
    copies: int = canary.total - load.answered_by[canary.name]
    return copies


def summary_lines(out: str) -> list[str]:
    start = out.rfind("Fleet shadow launch of")
    assert start >= 0, out[-4000:]
    return [line.strip().strip('",') for line in out[start:].splitlines()[:8]]


@dataclass
class FleetRun:
    """A fleet launch under user load in every cluster, as it ended."""

    returncode: int
    out: str
    before: dict[str, dict[str, Any]]  # each cluster's route as written before the run
    loads: dict[str, SteadyTraffic]


def run_with_a_failing_shadow(tmp_path: Path, canary: Site, rest: Site, failing: Site, **extra: Any) -> FleetRun:
    """The fleet launch, ``canary`` in the first wave and ``rest`` in the second, users on both, ``failing``'s
    shadow failing half its requests while attached; its summary printed."""
    sites = (canary, rest)
    before = {site.name: site.route() for site in sites}
    inventory = write_inventory(tmp_path / "fleet.yml", canary=[canary], rest=[rest])
    loads = {site.name: site.traffic() for site in sites}
    time.sleep(12)  # a little history for the baselines
    failing_shadow = failing.fail_shadow_while_attached()

    started = time.monotonic()
    completed = run_fleet(inventory, canary.world, report_dir=str(tmp_path / "reports"), **extra)
    seconds = time.monotonic() - started
    failing_shadow.join(timeout=10)
    for load in loads.values():
        load.stop()
    out = completed.stdout + completed.stderr
    print(f"\nfleet run: rc {completed.returncode} in {seconds:.1f} s")
    print("\n".join(summary_lines(out)))
    return FleetRun(completed.returncode, out, before, loads)


def assert_users_served_and_routes_as_before(run: FleetRun, sites: tuple[Site, ...]) -> None:
    """Every cluster's route exactly as before, no mirror left, and no user error anywhere."""
    for site in sites:
        load = run.loads[site.name]
        assert site.route() == run.before[site.name], site.name
        assert not site.has_mirror(), site.name
        assert load.errors() == 0, f"{site.name}: users saw {dict(load.statuses)}, failures {load.failures}"
        assert load.sent > 0


def test_a_failing_canary_cluster_is_rolled_back_and_the_second_wave_never_starts(
    fleet: dict[str, Site], tmp_path: Path
) -> None:
    a, b = fleet["cluster-a"], fleet["cluster-b"]
    run = run_with_a_failing_shadow(tmp_path, canary=b, rest=a, failing=b)

    assert run.returncode != 0, run.out[-4000:]
    lines = summary_lines(run.out)
    assert "2 clusters, 1 failed (the later waves did not start)" in lines[0], lines
    assert any(line.startswith("- cluster-b: ROLLED BACK") and "anomalous" in line for line in lines), lines
    assert any(line.startswith("- cluster-a: NOT STARTED - cluster-b failed in an earlier wave") for line in lines)
    # The second wave never started: cluster-a's canary got nothing (users never reach it, and no copy);
    # cluster-b's canary got copies.
    assert a.world.backends["canary"].total == 0
    assert copies_received(a, run.loads["cluster-a"]) == 0
    assert copies_received(b, run.loads["cluster-b"]) > 0
    assert b.world.backends["canary"].counters()["errors"] > 0, "cluster-b's shadow failed, on copies"
    assert_users_served_and_routes_as_before(run, (a, b))
    # One aggregated report across the clusters, in wave order, each row linking to that cluster's own
    # launch report where there is one (the cluster that never started has none).
    rows = fleet_report_rows(run.out)
    assert [row["cluster"] for row in rows] == ["cluster-b", "cluster-a"], rows
    assert rows[0]["result"] == "rolled back" and "anomalous" in rows[0]["why"], rows
    assert rows[1]["result"] == "not started" and rows[1]["link"] is None, rows
    launch_report = Path(rows[0]["link_path"])
    assert launch_report.is_file() and "Outcome: <strong>rolled back</strong>" in launch_report.read_text()


def fleet_report_rows(out: str) -> list[dict[str, Any]]:
    """The fleet report the run printed the path of, read back as rows (with links resolved)."""
    found = re.search(r"Fleet report: (\S+\.html)", out)
    assert found, out[-3000:]
    page = Path(found.group(1))
    rows: list[dict[str, Any]] = []

    class Rows(HTMLParser):
        cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "tr" and dict(attrs).get("data-cluster"):
                rows.append({"cells": [], "link": None})
            elif tag == "td" and rows:
                self.cell = []
            elif tag == "a" and rows:
                rows[-1]["link"] = dict(attrs).get("href")

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.cell is not None:
                rows[-1]["cells"].append("".join(self.cell))
                self.cell = None

    Rows().feed(page.read_text())
    for row in rows:
        row.update(zip(("cluster", "result", "why", "now", "report"), row.pop("cells"), strict=True))
        row["link_path"] = str(page.parent / row["link"]) if row["link"] else None
    return rows


def test_a_failure_in_the_second_wave_rolls_back_the_launched_canary_when_asked(
    fleet: dict[str, Site], tmp_path: Path
) -> None:
    a, b = fleet["cluster-a"], fleet["cluster-b"]
    run = run_with_a_failing_shadow(tmp_path, canary=a, rest=b, failing=b, rollback_launched_on_failure=True)

    assert run.returncode != 0, run.out[-4000:]
    lines = summary_lines(run.out)
    assert lines[0].endswith("2 clusters, 1 failed."), lines
    assert any(line.startswith("- cluster-a: LAUNCHED, THEN ROLLED BACK") for line in lines), lines
    assert any(line.startswith("- cluster-b: ROLLED BACK") for line in lines), lines
    rows = fleet_report_rows(run.out)
    assert [(row["cluster"], row["result"]) for row in rows] == [
        ("cluster-a", "launched, then rolled back (rollback_launched_on_failure)"),
        ("cluster-b", "rolled back"),
    ], rows
    assert all(row["link_path"] and Path(row["link_path"]).is_file() for row in rows), rows
    # Both waves ran: each cluster's shadow received copies.
    assert copies_received(a, run.loads["cluster-a"]) > 0
    assert copies_received(b, run.loads["cluster-b"]) > 0
    assert_users_served_and_routes_as_before(run, (a, b))
