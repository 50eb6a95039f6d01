"""The whole shadow launch on a Gateway API HTTPRoute, as an operator runs it (``playbooks/shadow_launch.yml``
with ``route_kind`` / ``rule_index`` extra vars, the role, the engine, its watchdog), on Traefik 3.0.x, a
3.2-3.7.5 release and the newest 3.x, so that each of the Gateway provider's metric label forms is met.

The route has a 50/50 backendRefs split on ``/`` and a second rule (``/static``). With live users:

1. a healthy shadow: 20% then 50% of the split rule copied, the gate on, short bakes, teardown. Users are all
   answered 200 by the two main services (counted at the client and at the backends), the shadow's copies are
   counted at its backend step by step, the gate passes, and the HTTPRoute is restored exactly;
2. a shadow that fails half its copies once the rule is on the mirror: the gate rolls the launch back within
   about one interval, users never see an error, and the HTTPRoute is restored exactly.

One instance per release (``tests/cluster/up --traefik-version``), shared by both cases, on the matrix port
offset (DARKLAUNCH_MATRIX_PORT_OFFSET); DARKLAUNCH_MATRIX_RELEASES narrows the releases as for the matrix.
Marked ``traefik_matrix``: ``bash scripts/test matrix`` runs it beside the release matrix.
"""

from __future__ import annotations

import copy
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from polling import Poller
from shadow import run_playbook
from steady import SteadyTraffic
from terminal import report_line

CLUSTER_DIR = Path(__file__).resolve().parents[1] / "cluster"
if str(CLUSTER_DIR) not in sys.path:
    sys.path.insert(0, str(CLUSTER_DIR))

from dlcluster import gateway  # noqa: E402
from dlcluster.backends import BackendsClient  # noqa: E402
from dlcluster.config import STATE_ROOT, TRAEFIK_MATRIX, TraefikRelease  # noqa: E402
from dlcluster.kube import Kube  # noqa: E402
from dlcluster.testing import DOWN, Cluster, cluster_from_env, run_up  # noqa: E402
from dlcluster.traffic import send  # noqa: E402
from dlcluster.world import SeedWorld  # noqa: E402

# Instances of its own per release, like the release matrix: run once, in the matrix step (not the main run).
pytestmark = [pytest.mark.integration, pytest.mark.traefik_matrix]

GW = f"{gateway.GROUP}/v1"
TS = "traefik.io/v1alpha1"
PORT_OFFSET = int(os.environ.get("DARKLAUNCH_MATRIX_PORT_OFFSET") or 300)
STATE = Path(os.environ.get("DARKLAUNCH_MATRIX_STATE_ROOT") or STATE_ROOT)
_ONLY = {name.strip() for name in (os.environ.get("DARKLAUNCH_MATRIX_RELEASES") or "").split(",") if name.strip()}
# Traefik 2.11's Gateway provider is another API: 3.x only.
RELEASES = tuple(r for r in TRAEFIK_MATRIX if r.version.startswith("3.") and (not _ONLY or r.version in _ONLY))
RATE = 40.0  # user requests per second: 20 per second at each main backend
INTERVAL = 8  # the gate's interval and window: Prometheus scrapes every second on the local cluster
BAKE = 8  # one check per step, at its end


@dataclass
class Stand:
    release: TraefikRelease
    cluster: Cluster
    kube: Kube
    backends: BackendsClient
    namespace: str
    env: dict[str, str]


@pytest.fixture(scope="module", params=RELEASES, ids=lambda release: release.version)
def stand(request: pytest.FixtureRequest) -> Iterator[Stand]:
    release: TraefikRelease = request.param
    state_dir = STATE / f"cluster-httproute-launch-{release.version}"
    started = time.monotonic()
    up = float("nan")
    args = ["--state-dir", str(state_dir), "--port-offset", str(PORT_OFFSET), "--traefik-version", release.version]
    args += ["--traefik-crd-version", release.crd_version]
    try:
        cluster = cluster_from_env(run_up(*args))
        up = time.monotonic() - started
        assert cluster.backends_url and cluster.prometheus_url
        env = {"K8S_AUTH_KUBECONFIG": str(cluster.kubeconfigs["admin"]), "PROMETHEUS_URL": cluster.prometheus_url}
        namespace = f"t-hrlaunch-{release.version.replace('.', '-')}-{secrets.token_hex(3)}"
        yield Stand(release, cluster, cluster.kube("admin"), BackendsClient(cluster.backends_url), namespace, env)
    finally:
        subprocess.run([str(DOWN), "--state-dir", str(state_dir)], capture_output=True, check=False)
        report_line(
            request,
            f"[httproute_launch] Traefik {release.version}: {time.monotonic() - started:.0f}s in all, instance up in "
            f"{up:.1f}s",
        )


def _world(stand: Stand, app: str) -> SeedWorld:
    world = gateway.create_httproute_world(stand.kube, stand.backends, stand.namespace, app)
    deadline = time.monotonic() + 30
    while send(stand.cluster.traefik_url or "", world.host, 1, path="/__darklaunch_probe").statuses != [200]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"HTTPRoute {world.host} not routed after 30s")
        time.sleep(0.1)
    world.reset_backends()
    return world


def _route(stand: Stand, world: SeedWorld) -> dict[str, Any]:
    obj = stand.kube.get(GW, "HTTPRoute", world.route, world.namespace)
    assert obj is not None
    return obj


def _as_written(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"spec": copy.deepcopy(obj["spec"]), "labels": meta.get("labels"), "annotations": meta.get("annotations")}


def _on_mirror(obj: dict[str, Any], world: SeedWorld) -> bool:
    refs = obj["spec"]["rules"][1].get("backendRefs") or []
    return any(ref.get("kind") == "TraefikService" and ref.get("name") == f"{world.route}-mirror" for ref in refs)


class Sampler(Poller):
    """Every 0.3 s: the mirror's percentage (None: no mirror), whether rule 1 is on it, and the backends' counts."""

    period = 0.3

    def __init__(self, stand: Stand, world: SeedWorld) -> None:
        super().__init__("hr-sampler")
        self.stand, self.world = stand, world
        self.samples: list[tuple[float, int | None, bool, dict[str, int]]] = []

    def sample(self) -> None:
        mirror = self.stand.kube.get(TS, "TraefikService", f"{self.world.route}-mirror", self.world.namespace)
        mirrors = ((mirror or {}).get("spec") or {}).get("mirroring", {}).get("mirrors") or [{}]
        percent = mirrors[0].get("percent") if mirror else None
        attached = _on_mirror(_route(self.stand, self.world), self.world)
        counts = {role: self.world.backends[role].total for role in ("stable", "canary", "staging")}
        self.samples.append((time.monotonic(), percent, attached, counts))

    def first(self, predicate: Callable[[int | None, bool], bool], after: float = 0.0) -> float | None:
        return next((t for t, p, a, _c in self.samples if t >= after and predicate(p, a)), None)

    def copy_ratio(self, percent: int, settle: float = 2.5) -> tuple[float, int]:
        """Copies at the shadow per user request at the mains while the attached mirror copied ``percent``,
        leaving out the first ``settle`` seconds (Traefik applies the change); and the copies counted."""
        span = [(t, c) for t, p, a, c in self.samples if p == percent and a]
        assert span, f"no sample at {percent}%"
        start = span[0][0] + settle
        kept = [c for t, c in span if t >= start]
        assert len(kept) >= 2, f"the {percent}% step was too short to measure"
        first, last = kept[0], kept[-1]
        copies = last["staging"] - first["staging"]
        users = (last["stable"] - first["stable"]) + (last["canary"] - first["canary"])
        return copies / max(users, 1), copies


def _launch_vars(stand: Stand, world: SeedWorld, steps: list[int]) -> dict[str, Any]:
    return {
        "route_name": world.route,
        "route_namespace": world.namespace,
        "route_kind": "HTTPRoute",
        "rule_index": 1,
        "mirror_service": world.service("staging"),
        "steps": steps,
        "bake_seconds": BAKE,
        "interval": INTERVAL,
        "window": f"{INTERVAL}s",
        "history_windows": 3,
        "min_requests": 20,
        "attach_to_ingress": True,
        "teardown": True,
        "prometheus_url": stand.cluster.prometheus_url,
        "report": False,
    }


def _users_only_on_mains(users: SteadyTraffic, world: SeedWorld) -> None:
    assert users.sent > 100 and users.errors() == 0, (users.sent, users.statuses, users.failures)
    assert set(users.answered_by) == {world.service("stable"), world.service("canary")}, users.answered_by


def _restored_exactly(stand: Stand, world: SeedWorld, original: dict[str, Any]) -> None:
    assert _as_written(_route(stand, world)) == original
    for name in (f"{world.route}-mirror", f"{world.route}-split"):
        assert stand.kube.get(TS, "TraefikService", name, world.namespace) is None, name


def test_a_healthy_shadow_passes_the_gate_at_20_then_50_percent(stand: Stand, request: pytest.FixtureRequest) -> None:
    world = _world(stand, "hrlaunch")
    original = _as_written(_route(stand, world))
    users = SteadyTraffic(stand.cluster.traefik_url or "", world.host, RATE, 150.0).start()
    started = time.monotonic()
    try:
        with Sampler(stand, world) as sampler:
            run = run_playbook("shadow_launch", _launch_vars(stand, world, [20, 50]), timeout=150, env=stand.env)
    finally:
        users.stop()
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    for line in (
        "Step 20%: ok",
        "Step 50%: ok",
        f"Before: User responses come 50% from {world.service('stable')}, 50% from {world.service('canary')}; "
        "nothing is mirrored.",
        "Real users keep their weighted split",
        f"patch HTTPRoute {world.route}: rule(s) 1 back on their original backendRefs",
        f"HTTPRoute {world.route} targets exactly what it targeted before the launch",
    ):
        assert line in out, f"{line!r} not in the output:\n{out[-6000:]}"
    _users_only_on_mains(users, world)
    _restored_exactly(stand, world, original)
    ratios = {percent: sampler.copy_ratio(percent) for percent in (20, 50)}
    assert 0.12 <= ratios[20][0] <= 0.28, ratios
    assert 0.40 <= ratios[50][0] <= 0.60, ratios
    # Users at the backends: only the two mains, about half each (the shadow's count is copies only).
    served = {role: world.backends[role].total for role in ("stable", "canary")}
    assert min(served.values()) >= 0.35 * sum(served.values()), served
    report_line(
        request,
        f"[httproute_launch] Traefik {stand.release.version} healthy: users {dict(users.statuses)} by "
        f"{dict(users.answered_by)}; copies/user request at 20%: {ratios[20][0]:.3f} ({ratios[20][1]} copies), "
        f"at 50%: {ratios[50][0]:.3f} ({ratios[50][1]} copies); launch {time.monotonic() - started:.0f}s",
    )


def test_a_failing_shadow_is_rolled_back_by_the_gate(stand: Stand, request: pytest.FixtureRequest) -> None:
    world = _world(stand, "hrfail")
    original = _as_written(_route(stand, world))
    staging = world.backends["staging"]
    users = SteadyTraffic(stand.cluster.traefik_url or "", world.host, RATE, 120.0).start()
    started = time.monotonic()
    failing_at: list[float] = []

    def fail_once_attached(sampler: Sampler) -> None:
        deadline = time.monotonic() + 90
        while sampler.first(lambda _p, attached: attached) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        staging.set_knobs(error_rate=0.5)
        failing_at.append(time.monotonic())

    try:
        with Sampler(stand, world) as sampler:
            breaker = threading.Thread(target=fail_once_attached, args=(sampler,), daemon=True)
            breaker.start()
            run = run_playbook("shadow_launch", _launch_vars(stand, world, [20, 50]), timeout=150, env=stand.env)
            breaker.join(timeout=5)
    finally:
        staging.set_knobs(error_rate=0)
        users.stop()
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-6000:]
    assert "anomalous" in out and "rolled back" in out, out[-6000:]
    assert failing_at, "the rule never went on the mirror"
    restored = sampler.first(lambda _p, attached: not attached, after=failing_at[0])
    assert restored is not None, out[-6000:]
    delay = restored - failing_at[0]
    # One interval for the check that sees the failure (its window must hold enough failed copies), plus the
    # rollback; generous under load.
    assert delay < 2 * INTERVAL + 15, f"rolled back {delay:.1f}s after the shadow started failing\n{out[-6000:]}"
    _users_only_on_mains(users, world)
    _restored_exactly(stand, world, original)
    report_line(
        request,
        f"[httproute_launch] Traefik {stand.release.version} failing shadow: rolled back {delay:.1f}s after it "
        f"started failing; users {dict(users.statuses)} by {dict(users.answered_by)}; staging counted "
        f"{staging.total} copies; launch {time.monotonic() - started:.0f}s",
    )
