"""User load for the reliability tests: at least 100 requests per second through Traefik, counted at the
client (status, and which backend answered: the ``X-Backend`` header) and at the backends, sampled over
time so the counts of any time window can be told; and asking Traefik itself what it routes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubewatch import NamespaceWatch
from routes import route_as_written
from steady import SteadyTraffic

RATE = 120.0  # requests per second asked for; the test fails as void if fewer than MIN_RATE were sent
MIN_RATE = 100.0


@dataclass
class Sample:
    at: float
    answered_by: Counter[str]
    errors: int


@dataclass
class UserLoad:
    """SteadyTraffic plus a sampler of its counters every 0.1 s."""

    traffic: SteadyTraffic
    started: float = 0.0
    stopped: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def start(cls, traefik_url: str, host: str, limit: float = 600) -> UserLoad:
        load = cls(SteadyTraffic(traefik_url, host, RATE, limit=limit))
        load.started = time.monotonic()
        load.traffic.start()
        load._thread = threading.Thread(target=load._sample, name="user-load-sampler", daemon=True)
        load._thread.start()
        return load

    def stop(self) -> None:
        if self.stopped:
            return
        self.traffic.stop()
        self.stopped = time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._take()

    def _take(self) -> None:
        answered, errors = self.traffic.snapshot()
        self.samples.append(Sample(time.monotonic(), answered, errors))

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self._take()

    @property
    def seconds(self) -> float:
        return (self.stopped or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        return float(self.traffic.sent) / self.seconds

    def between(self, start: float, end: float) -> tuple[Counter[str], int]:
        """Responses by backend and errors between two moments (from the samples just before each)."""
        before = self._at(start)
        after = self._at(end)
        answered = Counter(after.answered_by)
        answered.subtract(before.answered_by)
        return +answered, after.errors - before.errors

    def _at(self, moment: float) -> Sample:
        earlier = [sample for sample in self.samples if sample.at <= moment]
        return earlier[-1] if earlier else Sample(self.started, Counter(), 0)


@dataclass
class LoadBench:
    """What a test under user load works with (the ``load_bench`` fixture): the admin client, Traefik's API,
    a scratch directory, fresh worlds, their users and a watch on their namespace."""

    kube: Any
    traefik_api_get: Callable[[str], Any]
    admin_kubeconfig: Path
    tmp_path: Path
    seed_world: Callable[..., Any]
    user_load: Callable[[Any], UserLoad]

    def seed(self, app: str) -> tuple[Any, dict[str, Any]]:
        """A fresh world for ``app``, and its route as its user wrote it (what the test must leave)."""
        world = self.seed_world(app=app)
        return world, route_as_written(self.kube, world)

    def watch(self, world: Any) -> NamespaceWatch:
        """The API's watch on the world's namespace (a context manager)."""
        return NamespaceWatch(self.admin_kubeconfig, world.namespace)


def check_users(load: UserLoad, world: Any, shadow_role: str, label: str) -> dict[str, Any]:
    """The counts at the client and at the backends, printed; the assertions every cycle shares."""
    load.stop()
    traffic = load.traffic
    counts = world.counts()
    shadow = world.service(shadow_role)
    user_backends = {role: n for role, n in counts.items() if role != shadow_role}
    figures = {
        "seconds": round(load.seconds, 1),
        "sent": traffic.sent,
        "rate": round(load.rate, 1),
        "statuses": dict(traffic.statuses),
        "connection_failures": traffic.failures,
        "answered_by": dict(traffic.answered_by),
        "backends": counts,
    }
    print(
        f"\n[{label}] {traffic.sent} user requests in {load.seconds:.1f} s ({load.rate:.1f}/s); statuses "
        f"{dict(traffic.statuses)}, connection failures {traffic.failures}; answered by {dict(traffic.answered_by)}; "
        f"counted at the backends {counts} (the shadow {shadow} got only copies)"
    )
    assert load.rate >= MIN_RATE, f"only {load.rate:.1f} requests/s were sent: the machine did not keep up"
    assert traffic.errors() == 0, f"users saw errors: {figures}"
    assert traffic.answered_by.get(shadow, 0) == 0, f"the shadow answered users: {figures}"
    # Every user request reached exactly one user-facing backend; the shadow's count is copies only.
    assert sum(user_backends.values()) == sum(traffic.statuses.values()), figures
    return figures


# --- Traefik's own view ----------------------------------------------------------------------------------


def traefik_routes(
    traefik_api_get: Callable[[str], Any], world: Any, target: str, percent: int | None = None, timeout: float = 30
) -> float:
    """Wait until Traefik's router for the world's IngressRoute is enabled, without errors, and uses the
    TraefikService ``target``, loaded and enabled (mirroring ``percent``, if given); seconds waited."""
    started = time.monotonic()
    prefix = f"{world.namespace}-{world.route}-"
    wanted = f"{world.namespace}-{target}"
    last: Any = None
    while time.monotonic() - started < timeout:
        try:
            routers = [
                r
                for r in traefik_api_get("/api/http/routers?per_page=1000")
                if r.get("provider") == "kubernetescrd" and r["name"].startswith(prefix)
            ]
            service = traefik_api_get(f"/api/http/services/{wanted}@kubernetescrd")
        except Exception as err:  # 404 until Traefik has built the new configuration
            last = err
            time.sleep(0.1)
            continue
        last = (routers, service)
        router_ok = (
            len(routers) == 1
            and routers[0].get("status") == "enabled"
            and not routers[0].get("error")
            and routers[0].get("service") in (wanted, f"{wanted}@kubernetescrd")
        )
        service_ok = service.get("status") == "enabled" and not service.get("error")
        mirrors = (service.get("mirroring") or {}).get("mirrors") or []
        percent_ok = percent is None or (len(mirrors) == 1 and mirrors[0].get("percent") == percent)
        if router_ok and service_ok and percent_ok:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"Traefik never routed {world.route} through {target} ({percent}%): last seen {last}")


def traefik_loaded(traefik_api_get: Callable[[str], Any], world: Any, target: str, timeout: float = 30) -> None:
    """Wait until Traefik has the TraefikService ``target`` loaded, enabled and without errors."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = traefik_api_get(f"/api/http/services/{world.namespace}-{target}@kubernetescrd")
        except Exception as err:  # 404 until loaded
            last = err
        else:
            if last.get("status") == "enabled" and not last.get("error"):
                return
        time.sleep(0.1)
    raise AssertionError(f"Traefik never loaded {target}: {last}")


def traefik_forgot(traefik_api_get: Callable[[str], Any], world: Any, target: str, timeout: float = 30) -> None:
    """Wait until Traefik no longer has the TraefikService ``target`` (a deleted mirror)."""
    deadline = time.monotonic() + timeout
    name = f"{world.namespace}-{target}@kubernetescrd"
    while time.monotonic() < deadline:
        names = {s["name"] for s in traefik_api_get("/api/http/services?per_page=1000")}
        if name not in names:
            return
        time.sleep(0.1)
    raise AssertionError(f"Traefik still has {name}")


def traefik_back_on_the_split(traefik_api_get: Callable[[str], Any], world: Any, timeout: float = 30) -> None:
    """Wait until Traefik routes the world through its weighted split again and has forgotten the mirror."""
    traefik_routes(traefik_api_get, world, world.wrr, timeout=timeout)
    traefik_forgot(traefik_api_get, world, f"{world.route}-mirror", timeout=timeout)
