"""Launch reports kept in the cluster, and the reaper of abandoned launches, on the real apiserver and Traefik.

A short launch leaves a ConfigMap beside its route whose page equals the local report; playbooks/shadow_report.yml
fetches it after the local file is deleted; the role keeps the newest N of the route. A launch whose
ansible-playbook and watchdog are both SIGKILLed is rolled back by playbooks/shadow_reap.yml once its lease has
passed, the IngressRoute restored exactly and the mirror deleted; a second reaper run changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from modrun import run_module, store_report
from routes import launch_vars, mirror_exists, route_as_written, routes_through_mirror
from shadow import finish_playbook, run_playbook, start_playbook

pytestmark = pytest.mark.integration

KEEP = 2


def context_name() -> str:
    config = yaml.safe_load(Path(os.environ["K8S_AUTH_KUBECONFIG"]).read_text(encoding="utf-8"))
    return str(config["current-context"])


def kept_reports(kube: Any, world: Any) -> list[dict[str, Any]]:
    return [
        c
        for c in kube.list("v1", "ConfigMap", world.namespace)
        if (c["metadata"].get("labels") or {}).get("darklaunch.traefik/route") == world.route
    ]


def test_a_launch_keeps_its_report_in_the_cluster_fetchable_after_the_file_is_gone(
    seed_world: Callable[..., Any], kube: Any, tmp_path: Path
) -> None:
    world = seed_world(app="report-kept")
    # Two older reports of the route: with keep 2 the launch's own and the newer of them remain.
    page = tmp_path / "old.html"
    page.write_text("<html>old</html>", encoding="utf-8")
    for n in (1, 2):
        older = store_report(world.route, world.namespace, f"older-{n}", str(page), f"2020-01-0{n}T00:00:00.000Z")
        assert older.get("action") == "created", older
    reports = tmp_path / "reports"
    launch = launch_vars(
        world,
        steps=[50],
        bake_seconds=5,
        interval=5,
        anomaly_gate=False,
        watchdog=False,
        report_dir=str(reports),
        report_keep=KEEP,
    )
    started = time.monotonic()
    run = run_playbook("shadow_launch", launch, timeout=120)
    out = run.stdout + run.stderr
    print(f"\n[reports] launch took {time.monotonic() - started:.1f}s")
    assert run.returncode == 0, out
    (local,) = reports.glob("*.html")
    assert local.name.startswith(f"shadow-launch-{context_name()}-{world.namespace}-{world.route}-"), local.name
    html = local.read_text(encoding="utf-8")
    for text in ("API server", "Context", "Owner", "Gate settings", "bake (s)</th><td>5", world.namespace):
        assert text in html, text
    assert "kept in the cluster as ConfigMap" in out, out

    kept = kept_reports(kube, world)
    names = sorted(c["metadata"]["name"] for c in kept)
    assert len(kept) == KEEP, names
    assert f"shadow-report-{world.route}-older-2" in names and f"shadow-report-{world.route}-older-1" not in names
    ours = next(c for c in kept if "older" not in c["metadata"]["name"])
    assert ours["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "darklaunch.traefik"
    notes = ours["metadata"]["annotations"]
    assert notes["darklaunch.traefik/report-outcome"] == "passed"
    assert notes["darklaunch.traefik/report-started"] and notes["darklaunch.traefik/report-ended"]
    assert json.loads(ours["data"]["summary.json"])["outcome"] == "passed"
    fetched = run_module("launch_report_info", {"namespace": world.namespace, "route_name": world.route, "fetch": True})
    assert fetched["report"]["name"] == ours["metadata"]["name"] and fetched["page"] == html

    # The runner's directory is gone: the report comes back from the cluster.
    local.unlink()
    dest = tmp_path / "fetched.html"
    got = run_playbook(
        "shadow_report", {"route_name": world.route, "route_namespace": world.namespace, "dest": str(dest)}
    )
    assert got.returncode == 0, got.stdout + got.stderr
    assert dest.read_text(encoding="utf-8") == html


def watchdog_pid(world: Any) -> int:
    directory = Path(tempfile.gettempdir()) / f"darklaunch-watchdog-{os.getuid()}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in directory.glob(f"{world.namespace}.{world.route}.*.pid"):
            text = path.read_text(encoding="utf-8").strip()
            if text:
                return int(json.loads(text)["watchdog"]["pid"])
        time.sleep(0.2)
    raise AssertionError(f"no watchdog pid file in {directory}")


def test_the_reaper_restores_a_launch_whose_controller_and_watchdog_were_killed(
    seed_world: Callable[..., Any], kube: Any, tmp_path: Path
) -> None:
    world = seed_world(app="report-reap")
    before = route_as_written(kube, world)
    output = tmp_path / "launch.out"
    launch = launch_vars(world, steps=[20], bake_seconds=300, lease_seconds=3, anomaly_gate=False, report=False)
    process = start_playbook("shadow_launch", launch, output)
    deadline = time.monotonic() + 90
    while not routes_through_mirror(kube, world):
        assert process.poll() is None and time.monotonic() < deadline, output.read_text(errors="replace")[-4000:]
        time.sleep(0.2)
    watchdog = watchdog_pid(world)
    os.kill(watchdog, signal.SIGKILL)  # the watchdog first, so it cannot roll back when the controller goes
    process.send_signal(signal.SIGKILL)
    finish_playbook(process, output, timeout=30)
    time.sleep(5)  # past the 3 s lease
    assert routes_through_mirror(kube, world), "nothing may have restored the route by itself"

    reap = run_playbook("shadow_reap", {"route_namespace": world.namespace}, timeout=120)
    said = reap.stdout + reap.stderr
    assert reap.returncode == 0, said
    assert "Rolled back launch" in said, said
    assert route_as_written(kube, world) == before
    assert not mirror_exists(kube, world)

    again = run_playbook("shadow_reap", {"route_namespace": world.namespace}, timeout=120)
    said = again.stdout + again.stderr
    assert again.returncode == 0 and "No abandoned launch" in said, said
    assert "changed=0" in said, said
