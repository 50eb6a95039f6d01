"""Judging the answers on the real apiserver, Traefik and Prometheus with live users (issue 20's "done when").

The route's stable and shadow are JSON services run here on loopback behind ExternalName Services, like the
harness backends; the comparator (roles/shadow_launch/files/darklaunch_compare.py) runs as a loopback process
behind a ``{route}-compare`` Service, on the port the local Prometheus scrapes (job darklaunch-compare). The
launch runs with ``compare=true`` and ``compare_service={route}-compare``. The comparator also listens on the
host's own address, so the role reads its samples through the apiserver's service proxy:

- a shadow whose answers differ from stable's only in a timestamp (noise) passes, and is torn down;
- a shadow that answers 200 with a changed price on 5% of its answers is rolled back by the difference check
  within two intervals, and its report shows the differing path with one redacted sample (users' credentials
  appear nowhere);
- POSTs go through the mirror to the comparator, which forwards them to the shadow only: the main service
  counts exactly the users' POSTs; users get 0 errors, every answer from stable.

Then the comparator the role deploys (no kubelet here, so its objects are created and checked, never run):
the comparator module writes exactly the ConfigMap, Deployment and Service, a rerun writes nothing, and the
role's rollback entry point removes exactly them, never a user's object.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dlcluster.compare import PROGRAM, JsonApp, compare_world_manifests, expose_comparator, start_comparator
from dlcluster.prometheus import COMPARATOR_OFFSET
from dlcluster.world import SeedWorld, manifests
from modrun import run_module
from routes import launch_vars, mirror_exists, route_as_written
from shadow import REPO_ROOT, finish_playbook, playbook_env, start_playbook, wait_mirror_live
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

RATE = 20.0  # user requests per second
INTERVAL = 5
COMPARE_LABELS = ("app.kubernetes.io/managed-by", "darklaunch.traefik")
USER_SECRETS = {"Authorization": "Bearer s3cr3t-user-token", "Cookie": "session=c00kie-value"}


def comparator_port() -> int:
    return int(os.environ["PROMETHEUS_URL"].rsplit(":", 1)[1]) + COMPARATOR_OFFSET


@pytest.fixture
def json_world(kube: Any, make_namespace: Callable[[str], str], wait_for_router: Any) -> Iterator[dict[str, Any]]:
    """stable and canary JSON apps behind the route (users all on stable), and the comparator between the
    mirror and the canary behind {route}-compare."""
    namespace = make_namespace("compare")
    stable, canary = JsonApp("stable"), JsonApp("canary")
    port = comparator_port()
    app, route = "shop", "shop-route"
    ports = {"stable": stable.port, "canary": canary.port, "compare": port}
    kube.apply_all(compare_world_manifests(namespace, app, route, f"{route}.{namespace}.test", ports))
    expose_comparator(kube, namespace, f"{route}-compare", port)
    world = SeedWorld(namespace, app, route, f"{route}.{namespace}.test", "traefik.io", {}, {"stable": 100})
    comparator = start_comparator(port, stable.port, canary.port, f"{namespace}/{route}")
    try:
        wait_for_router(namespace, route)
        yield {"world": world, "stable": stable, "canary": canary, "port": port, "comparator": comparator}
    finally:
        comparator.terminate()
        comparator.wait(timeout=10)
        stable.close()
        canary.close()


def compare_launch(world: SeedWorld, port: int, bake: int) -> dict[str, Any]:
    return launch_vars(
        world,
        bake_seconds=bake,
        interval=INTERVAL,
        compare=True,
        compare_service=f"{world.route}-compare",
        compare_port=port,
        compare_max_diff_rate=0.01,
    )


def checks(out: str) -> list[tuple[int, str, str]]:
    return [
        (int(number), verdict, rest)
        for number, verdict, rest in re.findall(r"50% step, \d+/\d+ s, check (\d+)/\d+: (\w+) \|([^\n\"]*)", out)
    ]


def test_the_difference_check_passes_noise_and_rolls_back_a_wrong_field(
    json_world: dict[str, Any], kube: Any, traffic: Callable[..., Any], traefik_api_get: Callable[[str], Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    world, stable, canary, port = (json_world[key] for key in ("world", "stable", "canary", "port"))
    before = route_as_written(kube, world)
    # Users send credentials: Traefik copies them to the comparator, whose samples must never keep them.
    users = SteadyTraffic(os.environ["TRAEFIK_URL"], world.host, RATE, limit=240, headers=USER_SECRETS).start()
    time.sleep(12)  # the main's history, at the usual rate

    # 1. Only a timestamp differs (noise): every check is ok, the launch passes and is torn down.
    output = tmp_path / "noise.out"
    process = start_playbook("shadow_launch", compare_launch(world, port, bake=20), output)
    posts = post_while_mirrored(kube, world, traffic, traefik_api_get, process)
    noise_out = finish_playbook(process, output, timeout=120)
    noise_checks = checks(noise_out)
    print(f"\n[noise] checks: {[(n, v, rest.split('|')[-1].strip()) for n, v, rest in noise_checks]}")
    assert process.returncode == 0, noise_out[-6000:]
    assert noise_checks and all(verdict == "ok" for _n, verdict, _rest in noise_checks), noise_checks
    assert all("answers 0.0% different" in rest for _n, _v, rest in noise_checks), noise_checks
    assert route_as_written(kube, world) == before and not mirror_exists(kube, world)

    # 2. A changed price on 5% of the answers: the difference check rolls back within two intervals.
    canary.wrong_every = 20
    output = tmp_path / "wrong.out"
    process = start_playbook("shadow_launch", compare_launch(world, port, bake=40), output)
    wrong_out = finish_playbook(process, output, timeout=120)
    wrong_checks = checks(wrong_out)
    print(f"[wrong] checks: {[(n, v, rest.split('|')[-1].strip()) for n, v, rest in wrong_checks]}")
    assert process.returncode != 0, wrong_out[-6000:]
    assert "ROLLED BACK" in wrong_out and "Difference check: difference_rate is" in wrong_out, wrong_out[-6000:]
    assert "most at /price" in wrong_out
    failed = [number for number, verdict, _rest in wrong_checks if verdict == "anomalous"]
    assert failed and failed[0] <= 2, wrong_checks
    assert route_as_written(kube, world) == before and not mirror_exists(kube, world)
    # The report shows the differing path with one redacted sample, read through the apiserver's service proxy
    # before the rollback finished; the users' credentials appear nowhere.
    report = Path(re.findall(r"Launch report: (\S+\.html)", wrong_out)[-1]).read_text(encoding="utf-8")
    assert "read at the end of the launch: Service" in report, re.findall(r'<p class="samples">.*?</p>', report)
    assert '<code class="sample-request">GET / HTTP/1.1</code><br>status primary 200, candidate 200; ' in report
    assert "<code>/price</code>: primary <code>10</code>, candidate <code>11</code>" in report
    for secret in ("s3cr3t-user-token", "c00kie-value"):
        assert all(secret not in text for text in (report, noise_out, wrong_out)), secret

    users.stop()
    # POSTs reached the shadow through the comparator, never the main beyond the users' own.
    print(f"[posts] users sent {posts}; stable by method {dict(stable.by_method)}; canary {dict(canary.by_method)}")
    assert stable.by_method["POST"] == posts and canary.by_method["POST"] >= 1
    assert users.errors() == 0 and users.sent > 0
    assert json_world["comparator"].poll() is None, "the comparator must never crash"
    # The timestamps were cancelled as noise, the prices counted as differences, the POSTs skipped.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__darklaunch/metrics", timeout=5) as answer:
        metrics = dict(re.findall(r'requests_total\{result="(\w+)"[^}]*\} (\d+)', answer.read().decode()))
    print(f"[comparator] {metrics}")
    assert int(metrics["noise"]) > 100 and int(metrics["different"]) >= 1 and int(metrics["skipped"]) >= 1


def post_while_mirrored(
    kube: Any, world: SeedWorld, traffic: Callable[..., Any], traefik_api_get: Callable[[str], Any], process: Any
) -> int:
    """Once Traefik mirrors the route, 20 user POSTs through it (answered by stable); returns how many."""
    deadline = time.monotonic() + 60
    while not mirror_exists(kube, world):
        assert process.poll() is None and time.monotonic() < deadline, "the launch never created the mirror"
        time.sleep(0.2)
    wait_mirror_live(traefik_api_get, world, percent=50)
    sent = traffic(world.host, n=20, method="POST", body=b'{"order": 1}')
    assert sent.by_status == {200: 20}
    return 20


def test_the_deployed_comparator_is_written_checked_and_removed_exactly(
    kube: Any, make_namespace: Callable[[str], str], audit: Any, tmp_path: Path
) -> None:
    namespace = make_namespace("compare-deploy")
    route = "cart"
    services = manifests(namespace, "cart", route, "cart.test", {"stable": 18000, "staging": 18001}, {"stable": 100})
    kube.apply_all(services)
    # A user's ConfigMap and a Service of another name stay untouched throughout.
    kube.apply_all(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cart-settings", "namespace": namespace},
                "data": {"a": "b"},
            }
        ]
    )
    args = {
        "route_name": route,
        "namespace": namespace,
        "candidate_service": "cart-staging",
        "primary_service": "cart-stable",
        "program": PROGRAM.read_text(encoding="utf-8"),
        "ignore_json_pointers": ["/timestamp"],
        "labels": {"team": "cart"},
        "wait_seconds": 0,  # no kubelet here: no pod ever becomes available
    }
    deployed = run_module("comparator", args)
    assert deployed["changed"] and [a["action"] for a in deployed["actions"]] == ["created"] * 3, deployed
    config_map = kube.get("v1", "ConfigMap", f"{route}-compare", namespace)
    deployment = kube.get("apps/v1", "Deployment", f"{route}-compare", namespace)
    service = kube.get("v1", "Service", f"{route}-compare", namespace)
    assert config_map["data"]["darklaunch_compare.py"].startswith("#!/usr/bin/env python")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "python:3.12-slim"
    assert container["resources"] == {
        "requests": {"cpu": "50m", "memory": "48Mi"},
        "limits": {"cpu": "500m", "memory": "128Mi"},
    }
    argv = container["args"]
    assert argv[argv.index("--candidate") + 1] == f"http://cart-staging.{namespace}.svc:18001"
    assert argv[argv.index("--primary") + 1] == argv[argv.index("--secondary") + 1]
    assert argv[argv.index("--route") + 1] == f"{namespace}/{route}"
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert (
        pod["metadata"]["labels"]["team"] == "cart"
        and deployment["metadata"]["labels"][COMPARE_LABELS[0]] == COMPARE_LABELS[1]
    )
    assert service["spec"]["ports"][0]["port"] == 8099
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]

    mark = audit.mark()
    again = run_module("comparator", args)
    assert not again["changed"] and audit.writes_since(mark, namespace=namespace) == []
    waited = run_module("comparator", {**args, "wait_seconds": 2})
    assert waited.get("failed") and f"Deployment {namespace}/{route}-compare has no available pod" in waited["msg"]

    removed = run_rollback_entry_point(namespace, route, tmp_path)
    assert removed.returncode == 0, removed.stdout[-4000:]
    assert "Comparator: Service, Deployment, ConfigMap" in removed.stdout
    for kind, api in (("ConfigMap", "v1"), ("Deployment", "apps/v1"), ("Service", "v1")):
        assert kube.get(api, kind, f"{route}-compare", namespace) is None, kind
    assert kube.get("v1", "ConfigMap", "cart-settings", namespace)["data"] == {"a": "b"}
    assert kube.get("v1", "Service", "cart-stable", namespace) is not None


def run_rollback_entry_point(namespace: str, route: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The role's rollback entry point (the route has no mirror here): it removes the comparator it deployed."""
    play = tmp_path / "rollback.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": "Roll back",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Rollback entry point",
                            "ansible.builtin.include_role": {
                                "name": "darklaunch.traefik.shadow_launch",
                                "tasks_from": "rollback",
                            },
                            "vars": {
                                "shadow_launch_route_name": route,
                                "shadow_launch_namespace": namespace,
                                "shadow_launch_report": False,
                            },
                        }
                    ],
                }
            ]
        )
    )
    return subprocess.run(
        ["ansible-playbook", str(play)], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False,
        env=playbook_env(),
    )  # fmt: skip


def test_the_role_refuses_the_launch_while_its_comparator_has_no_ready_pod(
    seed_world: Callable[..., Any], kube: Any, audit: Any, traffic_for: Callable[..., Any], tmp_path: Path
) -> None:
    """compare=true without compare_service: the role deploys {route}-compare and waits for a ready pod before
    the mirror points at it (Traefik takes a route whose mirror has no ready endpoint down: users got 404 in
    a first version). With no kubelet here none comes: the launch is refused, the route never changed, the
    comparator removed exactly, users unharmed."""
    world = seed_world(app="cmp-deploy", weights={"stable": 100})
    before = route_as_written(kube, world)
    users = traffic_for(world, 10.0)
    name = f"{world.route}-compare"
    launch = launch_vars(world, steps=[10], bake_seconds=6, interval=3, compare=True, compare_wait_seconds=3)
    mark = audit.mark()
    output = tmp_path / "deploy.out"
    out = finish_playbook(start_playbook("shadow_launch", launch, output), output, timeout=120)
    time.sleep(1)
    users.stop()
    assert "REFUSED, the route was not changed and the comparator was removed" in out, out[-6000:]
    assert f"Deployment {world.namespace}/{name} has no available pod after 3 s" in out
    events = audit.writes_since(mark, namespace=world.namespace)
    written = sorted((e["verb"], e["objectRef"]["resource"]) for e in events)
    print(f"\n[deploy] writes {written}; users {dict(users.statuses)}")
    resources = ("configmaps", "deployments", "services")
    # The route and its TraefikServices were never written; what was created was deleted (the local audit
    # policy records the core group's writes, not the apps group's: the Deployment is checked by reading it).
    assert {resource for _verb, resource in written} <= set(resources), written
    assert sorted(r for v, r in written if v == "create") == sorted(r for v, r in written if v == "delete"), written
    assert ("create", "services") in written and ("create", "configmaps") in written
    for kind, api in (("ConfigMap", "v1"), ("Deployment", "apps/v1"), ("Service", "v1")):
        assert kube.get(api, kind, name, world.namespace) is None, kind
    assert route_as_written(kube, world) == before and not mirror_exists(kube, world)
    assert users.errors() == 0


def test_samples_that_cannot_be_read_are_told_never_a_failure(kube: Any, make_namespace: Callable[[str], str]) -> None:
    """comparator_samples on the real apiserver: a Service with no ready endpoint (503) and an account without
    services/proxy (403) give available=false and one message saying why; the module does not fail."""
    namespace = make_namespace("compare-samples")
    kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cart-compare", "namespace": namespace},
                "spec": {"ports": [{"name": "http", "port": 8099}]}})  # fmt: skip
    no_endpoint = run_module("comparator_samples", {"route_name": "cart", "namespace": namespace})
    assert not no_endpoint.get("failed") and no_endpoint["available"] is False, no_endpoint
    # No controller writes Endpoints here, so the proxy answers 404 (a real cluster: 503 while none is ready).
    assert no_endpoint["message"].startswith(
        f"the API server answered 404 to GET /__darklaunch/samples on Service {namespace}/cart-compare:8099 ("
    ), no_endpoint["message"]
    viewer = run_module(
        "comparator_samples",
        {"route_name": "cart", "namespace": namespace, "kubeconfig": os.environ["DARKLAUNCH_VIEWER_KUBECONFIG"]},
    )
    assert not viewer.get("failed") and viewer["available"] is False and viewer["by_path"] == {}, viewer
    assert f'may not get services/proxy "cart-compare:8099" in namespace "{namespace}"' in viewer["message"], viewer
