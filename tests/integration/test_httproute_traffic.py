"""traefik_traffic_info and the traffic lookup on a Gateway API HTTPRoute served by Traefik: a mirrored rule is
described in the same sentences as an IngressRoute's (who answers users, what is copied, at what percent), and
the description matches the traffic counted at the backends; the anomaly check finds the rule's shadow and main
services in Traefik's metrics (the CRD provider's label form, said in the answer) and judges them with live
users: a healthy shadow is ok, one failing half its requests is anomalous."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from dlcluster.world import SeedWorld
from modrun import run_module
from shadow import run_playbook
from steady import SteadyTraffic

pytestmark = pytest.mark.integration

WINDOW_SECONDS = 10.0
RATE = 40.0  # user requests per second: ~200 per window at each main backend and, at 50%, ~200 copies


def _attach(world: SeedWorld, percent: int) -> dict[str, Any]:
    result = run_module(
        "traefik_mirror",
        {
            "route_name": world.route,
            "namespace": world.namespace,
            "mirror_service": world.service("staging"),
            "mirror_percent": percent,
            "rule_index": 1,
            "attach_to_ingress": True,
            "propagation_seconds": 1,
        },
    )
    assert result.get("failed") is not True and result["status"] == "active", result
    time.sleep(2)  # Traefik applies the new configuration
    return result


def _detach(world: SeedWorld) -> None:
    result = run_module("traefik_mirror", {"route_name": world.route, "namespace": world.namespace, "state": "absent"})
    assert result.get("failed") is not True, result


def _lookup(new_lookup: Callable[[], Any], term: str, world: SeedWorld, **options: Any) -> Any:
    (answer,) = new_lookup().run([term], variables={}, route_name=world.route, namespace=world.namespace, **options)
    return answer


def test_a_mirrored_httproute_is_described_as_it_serves(
    httproute_world: Callable[..., SeedWorld], traffic: Any, new_lookup: Callable[[], Any]
) -> None:
    world = httproute_world(app="hrinfo")
    stable, canary, staging = (world.service(role) for role in ("stable", "canary", "staging"))

    # Before the launch: the 50/50 split of rule 1, nothing copied; the Gateway provider's labels not guessed.
    before = run_module("traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route})
    assert before.get("failed") is not True, before
    assert before["distribution"]["route_kind"] == "HTTPRoute" and before["ingress_routes"] == []
    split = before["distribution"]["routes"][1]
    assert split["explanation"] == f"User responses come 50% from {stable}, 50% from {canary}; nothing is mirrored."
    assert before["distribution"]["backends"] == [] and "kubernetesgateway" in before["distribution"]["label_form"]

    _attach(world, 20)
    try:
        info = run_module(
            "traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route, "route_kind": "HTTPRoute"}
        )
        assert info.get("failed") is not True, info
        distribution = info["distribution"]
        assert distribution["explanation"] == (
            f"User responses come 50% from {stable}, 50% from {canary}; 20% of requests are copied to {staging} and "
            "its responses are discarded (for rule 1, PathPrefix(`/`); 1 other rule splits differently, see routes)."
        )
        assert (
            distribution["routes"][0]["explanation"] == f"All user responses come from {stable}; nothing is mirrored."
        )
        assert distribution["traffic_split"] == {
            "type": "mirror",
            "wraps_weighted": True,
            "layers": ["mirror", "weighted"],
        }
        assert distribution["broken"] == []
        labels = {(b["role"], b["name"]): b["service_label"] for b in distribution["backends"]}
        assert labels == {
            ("main", stable): f"{world.namespace}-{stable}-{world.backends['stable'].port}@kubernetescrd",
            ("main", canary): f"{world.namespace}-{canary}-{world.backends['canary'].port}@kubernetescrd",
            ("shadow", staging): f"{world.namespace}-{staging}-{world.backends['staging'].port}@kubernetescrd",
        }
        (http_route,) = info["http_routes"]
        assert http_route["attached_by_darklaunch"] is True
        assert [t["target_type"] for t in http_route["rules"][1]["targets"]] == ["mirror"]
        (mirror,) = [m for m in info["mirrors"] if m["name"] == f"{world.route}-mirror"]
        assert mirror["percent"] == 20 and mirror["active"] is True
        assert [(r["route_kind"], r["route_index"]) for r in mirror["referenced_by"]] == [("HTTPRoute", 1)]

        # The namespace listing counts the HTTPRoute's rule among the routes through the mirror.
        listing = run_module("traefik_traffic_info", {"namespace": world.namespace})
        (listed,) = [m for m in listing["mirrors"] if m["name"] == mirror["name"]]
        assert listed["active"] is True and listed["referenced_by"] == mirror["referenced_by"], listed
        assert [r["name"] for r in listing["http_routes"]] == [world.route]

        # The lookup answers the same (route_kind detected: only an HTTPRoute has that name).
        assert _lookup(new_lookup, "distribution", world) == distribution
        routes = _lookup(new_lookup, "routes", world)
        assert [m["name"] for m in routes["mirrors"]] == [mirror["name"]]
        assert _lookup(new_lookup, "ingressroutes", world)["http_routes"] == info["http_routes"]
        # The httproutes term says each rule in the distribution's sentences, by name and in the namespace listing.
        (described,) = _lookup(new_lookup, "httproutes", world)["http_routes"]
        assert [rule["explanation"] for rule in described["rules"]] == [
            r["explanation"] for r in distribution["routes"]
        ]
        (listing_answer,) = new_lookup().run(["httproutes"], variables={}, namespace=world.namespace)
        (listed_route,) = listing_answer["http_routes"]
        assert listed_route == described and described["attached_by_darklaunch"] is True

        # shadow_status.yml finds the HTTPRoute by its name and explains it in the same words.
        status = run_playbook("shadow_status", {"route_name": world.route, "route_namespace": world.namespace})
        assert status.returncode == 0, status.stdout[-3000:] + status.stderr[-2000:]
        assert f"20% of requests are copied to {staging}" in status.stdout, status.stdout[-3000:]
        assert f"{mirror['name']}: main service {world.route}-split (TraefikService)" in status.stdout

        # What the sentence says is what the backends count.
        roles = ("stable", "canary", "staging")
        counted = {role: world.backends[role].total for role in roles}
        result = traffic(world.host, n=400, path="/api")
        assert result.by_status == {200: 400}, result.by_status
        time.sleep(1.5)  # copies are sent after the user's answer, in the background
        delta = {role: world.backends[role].total - counted[role] for role in roles}
        assert set(result.by_body) == {stable, canary} and min(result.by_body.values()) >= 160, result.by_body
        assert 0.14 <= delta["staging"] / 400 <= 0.26, delta
    finally:
        _detach(world)
    after = run_module("traefik_traffic_info", {"namespace": world.namespace, "route_name": world.route})
    assert after["distribution"]["routes"][1]["explanation"] == split["explanation"]


def _label(world: SeedWorld, role: str) -> str:
    return f"{world.namespace}-{world.service(role)}-{world.backends[role].port}@kubernetescrd"


def _anomalies(new_lookup: Callable[[], Any], world: SeedWorld) -> dict[str, Any]:
    report: dict[str, Any] = _lookup(
        new_lookup,
        "anomalies",
        world,
        window=f"{WINDOW_SECONDS:.0f}s",
        history_windows=3,
        min_requests=100,
        sigma=2,
        prometheus_url=os.environ.get("PROMETHEUS_URL"),
    )
    return report


def _brief(report: dict[str, Any]) -> str:
    rows = [
        {k: row.get(k) for k in ("service", "role", "requests", "error_rate", "checks")} for row in report["services"]
    ]
    return json.dumps({"verdict": report["verdict"], "summary": report["summary"], "services": rows}, indent=1)


def _wait_for(
    new_lookup: Callable[[], Any], world: SeedWorld, verdict: str, timeout: float = 6 * WINDOW_SECONDS
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = _anomalies(new_lookup, world)
        if report["verdict"] == verdict:
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"no {verdict} within {timeout:.0f}s; last report:\n{_brief(report)}")
        time.sleep(1.0)


def test_the_anomaly_gate_judges_an_httproute_shadow(
    httproute_world: Callable[..., SeedWorld], cluster: Any, new_lookup: Callable[[], Any]
) -> None:
    world = httproute_world(app="hranom")
    if not cluster.prometheus_url:
        pytest.skip("this cluster runs no Prometheus")
    # Users before the launch: the mains' series then carry the Gateway provider's labels, their history after.
    users = SteadyTraffic(cluster.traefik_url, world.host, RATE, 300.0).start()
    staging = world.backends["staging"]
    try:
        time.sleep(2 * WINDOW_SECONDS + 3)
        _attach(world, 50)
        world.reset_backends()
        time.sleep(WINDOW_SECONDS + 3)  # a whole window of mirrored traffic, scraped
        healthy = _wait_for(new_lookup, world, "ok")
        assert healthy["route"]["route_kind"] == "HTTPRoute"
        assert "@kubernetescrd" in healthy["route"]["label_form"], healthy["route"]
        # The mains' windows before attach were found under the running release's Gateway provider label.
        history = {row["service"]: row for row in healthy.get("history_from") or []}
        assert set(history) == {_label(world, "stable"), _label(world, "canary")}, healthy.get("history_from")
        for row in history.values():
            assert row["windows"] >= 1 and all("kubernetesgateway" in label for label in row["history_labels"]), row
            assert len(row["label_forms"]) == 1 and row["label_forms"][0].startswith("Traefik 3."), row
        print(f"\n[httproute anomalies] history from {sorted({f for r in history.values() for f in r['label_forms']})}")
        rows = {row["service"]: row for row in healthy["services"]}
        shadow = rows[_label(world, "staging")]
        assert shadow["role"] == "shadow" and shadow["checks"]["shadow_vs_main"] == "ok", _brief(healthy)
        assert {rows[_label(world, role)]["role"] for role in ("stable", "canary")} == {"main"}, _brief(healthy)
        # Each main gets half the users, the shadow a copy of half of all requests: about as many as each main.
        assert 100 <= shadow["requests"] <= 2 * RATE * WINDOW_SECONDS, _brief(healthy)

        staging.set_knobs(error_rate=0.5)
        failing = _wait_for(new_lookup, world, "anomalous")
        findings = [a for a in failing["anomalies"] if a["service"] == _label(world, "staging")]
        assert any(a["metric"] == "error_rate" and a["check"] == "shadow_vs_main" for a in findings), _brief(failing)
        assert world.service("staging") in failing["summary"], failing["summary"]
        assert not [a for a in failing["anomalies"] if a["role"] == "main"], _brief(failing)
    finally:
        staging.set_knobs(error_rate=0)
        users.stop()
        _detach(world)
    # The users never saw the shadow's errors: every answer came from a main backend.
    assert users.sent > 100 and users.errors() == 0, (users.sent, users.statuses, users.failures)
    assert set(users.answered_by) == {world.service("stable"), world.service("canary")}, users.answered_by
