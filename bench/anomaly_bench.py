#!/usr/bin/env python
"""Benchmark: the cluster-wide anomaly check over 1,000 services' Traefik metrics.

A synthetic exporter (standard library HTTP server on loopback) serves Traefik-shaped series
(``traefik_service_requests_total{code,method,protocol,service}`` and the
``traefik_service_request_duration_seconds`` histogram) for N services; a Prometheus started here
(Debian's ``prometheus`` binary, own data directory, 1 s scrapes) scrapes it. Once enough history
exists, a few services are degraded, and ``lookup('darklaunch.traefik.traffic', 'anomalies')`` runs
cluster-wide several times. The table shows how many PromQL queries each check sent and how its wall
time splits between Prometheus' HTTP round trips and the lookup's own work (JSON decoding, parsing,
statistics).

    python bench/anomaly_bench.py                  # 1000 services, window 5s, 6 history windows
    python bench/anomaly_bench.py --services 200 --runs 3

Everything runs on 127.0.0.1 and is removed at the end (Prometheus is stopped, its data deleted).
``SyntheticTraefik`` and ``PrometheusProcess`` are also used by tests/integration/test_anomalies.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_ROOT = REPO_ROOT / ".state" / "collections"

# The local cluster's Traefik buckets (tests/cluster/dlcluster/traefik.py).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0)
CODES = ("200", "500")
LOOKUP_MODULE = "ansible_collections.darklaunch.traefik.plugins.lookup.traffic"


# --------------------------------------------------------------------------------------------------
# The synthetic exporter
# --------------------------------------------------------------------------------------------------


@dataclass
class _Service:
    label: str
    rate: float  # requests per second
    error_ratio: float
    median_latency: float  # seconds; latencies are log-normal around it
    spread: float  # log-normal sigma
    requests: list[float]  # per code, cumulative
    buckets: list[list[float]]  # per code, cumulative per bucket (without +Inf)
    sums: list[float]  # per code, cumulative seconds

    def cdf(self, bound: float) -> float:
        """Share of requests at most ``bound`` seconds (log-normal)."""
        z = (math.log(bound) - math.log(self.median_latency)) / self.spread
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    @property
    def mean_latency(self) -> float:
        return self.median_latency * math.exp(self.spread**2 / 2)


class SyntheticTraefik:
    """Traefik-shaped counters for ``services`` services that advance with wall time at every scrape.

    Each service has its own steady request rate (5-40 req/s), 5xx share (0.5-2%) and log-normal
    latency (median 20-150 ms); per scrape the request count is Poisson-like and the errors binomial-like,
    so windows differ the way real ones do. ``degrade()`` changes services on the fly. A
    ``dashboard@internal`` service is included, as Traefik has one, and must be ignored by the check.
    """

    def __init__(self, services: int, *, seed: int = 7, namespace: str = "bench") -> None:
        self._random = random.Random(seed)
        self._namespace = namespace
        self._lock = threading.Lock()
        self._services: list[_Service] = []
        self._last = time.time()
        self._server: ThreadingHTTPServer | None = None
        self._internal = self._new_service("dashboard@internal")
        self.scrapes = 0
        self.set_services(services)

    # -- services -----------------------------------------------------------------------------

    def label(self, index: int) -> str:
        return f"{self._namespace}-svc-{index:04d}-80@kubernetescrd"

    def _new_service(self, label: str) -> _Service:
        rnd = self._random
        return _Service(
            label=label,
            rate=rnd.uniform(5, 40),
            error_ratio=rnd.uniform(0.005, 0.02),
            median_latency=rnd.uniform(0.02, 0.15),
            spread=rnd.uniform(0.3, 0.8),
            requests=[0.0 for _code in CODES],
            buckets=[[0.0 for _bucket in BUCKETS] for _code in CODES],
            sums=[0.0 for _code in CODES],
        )

    def set_services(self, count: int) -> None:
        """Serve ``count`` services (adding new ones, or dropping the last ones)."""
        with self._lock:
            while len(self._services) < count:
                self._services.append(self._new_service(self.label(len(self._services))))
            del self._services[count:]

    @property
    def service_count(self) -> int:
        return len(self._services)

    def degrade(self, indices: Sequence[int], *, error_ratio: float | None = None, slower: float = 1.0) -> None:
        """From now on, the given services fail ``error_ratio`` of requests and/or are ``slower`` x slower."""
        with self._lock:
            for index in indices:
                service = self._services[index]
                if error_ratio is not None:
                    service.error_ratio = error_ratio
                service.median_latency *= slower

    # -- counters -----------------------------------------------------------------------------

    def _advance(self, seconds: float) -> None:
        rnd = self._random
        for service in [self._internal, *self._services]:
            expected = service.rate * seconds
            total = max(0, round(rnd.gauss(expected, math.sqrt(expected)))) if expected > 0 else 0
            mean_errors = total * service.error_ratio
            spread = math.sqrt(max(mean_errors * (1 - service.error_ratio), 0.0))
            errors = min(total, max(0, round(rnd.gauss(mean_errors, spread)))) if total else 0
            shares = [service.cdf(bound) for bound in BUCKETS]
            for code_index, count in enumerate((total - errors, errors)):
                if not count:
                    continue
                service.requests[code_index] += count
                counts = service.buckets[code_index]
                for bucket_index, share in enumerate(shares):
                    counts[bucket_index] += round(count * share)
                service.sums[code_index] += count * service.mean_latency * rnd.uniform(0.97, 1.03)

    def render(self) -> bytes:
        """Advance the counters to now and return the exposition text."""
        with self._lock:
            now = time.time()
            self._advance(max(0.0, now - self._last))
            self._last = now
            self.scrapes += 1
            # Every (service, status code) series: its labels, as Traefik writes them.
            series = [
                (service, code_index, f'code="{code}",method="GET",protocol="http",service="{service.label}"')
                for service in (self._internal, *self._services)
                for code_index, code in enumerate(CODES)
            ]
            lines = [
                "# HELP traefik_service_requests_total How many HTTP requests processed on a service, "
                "partitioned by status code, protocol, and method.",
                "# TYPE traefik_service_requests_total counter",
            ]
            for service, code_index, labels in series:
                lines.append(f"traefik_service_requests_total{{{labels}}} {service.requests[code_index]:.0f}")
            lines += [
                "# HELP traefik_service_request_duration_seconds How long it took to process the request on a "
                "service, partitioned by status code, protocol, and method.",
                "# TYPE traefik_service_request_duration_seconds histogram",
            ]
            name = "traefik_service_request_duration_seconds"
            for service, code_index, labels in series:
                for bound, count in zip(BUCKETS, service.buckets[code_index], strict=True):
                    lines.append(f'{name}_bucket{{{labels},le="{bound:g}"}} {count:.0f}')
                total = service.requests[code_index]
                lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {total:.0f}')
                lines.append(f"{name}_sum{{{labels}}} {service.sums[code_index]:.6f}")
                lines.append(f"{name}_count{{{labels}}} {total:.0f}")
        return ("\n".join(lines) + "\n").encode()

    # -- HTTP ---------------------------------------------------------------------------------

    def start(self) -> SyntheticTraefik:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="synthetic-traefik", daemon=True).start()
        return self

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("the exporter is not started")
        return f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


# --------------------------------------------------------------------------------------------------
# A throwaway Prometheus
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrometheusProcess:
    """Debian's ``prometheus`` on 127.0.0.1 with its own data directory, scraping ``targets`` every
    ``scrape_interval``. ``stop()`` ends the process this object started and deletes the data."""

    def __init__(self, targets: Sequence[str], *, scrape_interval: str = "1s", job: str = "traefik") -> None:
        self.targets = list(targets)
        self.scrape_interval = scrape_interval
        self.job = job
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PrometheusProcess:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not os.path.exists(binary):
            raise RuntimeError("prometheus not found: apt-get install -y --no-install-recommends prometheus")
        self._dir = Path(tempfile.mkdtemp(prefix="darklaunch-prometheus-"))
        config = {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval},
            "scrape_configs": [{"job_name": self.job, "static_configs": [{"targets": self.targets}]}],
        }
        (self._dir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={self._dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self._dir / "prometheus.log").open("wb"),
        )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None:
                log = (self._dir / "prometheus.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"prometheus exited at start:\n{log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus at {self.url} not ready after {timeout:.0f}s")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = urllib.parse.urlencode({"query": promql}).encode()
        with urllib.request.urlopen(self.url + "/api/v1/query", data=data, timeout=10) as response:
            result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
            return result

    def api_requests(self) -> dict[str, float]:
        """Prometheus' own count of HTTP API calls per handler (from its /metrics): server-side proof
        of how many queries a check sent."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        counts: dict[str, float] = {}
        for line in text.splitlines():
            if not line.startswith("prometheus_http_requests_total{"):
                continue
            labels, _sep, value = line.rpartition(" ")
            handler = labels.split('handler="', 1)[1].split('"', 1)[0]
            counts[handler] = counts.get(handler, 0.0) + float(value)
        return counts

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def wait_for(what: str, condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------------
# The lookup, instrumented
# --------------------------------------------------------------------------------------------------


def load_lookup() -> Any:
    """The collection's lookup plugin, loaded by Ansible's plugin loader (as a playbook would)."""
    link = COLLECTIONS_ROOT / "ansible_collections" / "darklaunch" / "traefik"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    from ansible.plugins.loader import init_plugin_loader, lookup_loader

    init_plugin_loader([str(COLLECTIONS_ROOT)])
    lookup = lookup_loader.get("darklaunch.traefik.traffic")
    if lookup is None:
        raise RuntimeError(f"Ansible does not find darklaunch.traefik.traffic under {COLLECTIONS_ROOT}")
    return lookup


@dataclass
class CallStats:
    queries: int = 0
    http_seconds: float = 0.0


@contextmanager
def instrumented_prometheus_client(lookup: Any = None) -> Iterator[CallStats]:
    """Make the lookup's PrometheusClient count its queries and time its HTTP round trips (request
    sent -> whole response read: Prometheus' evaluation plus the transfer on loopback).

    ``lookup`` (an instance) names the module to patch through its own globals: Ansible's plugin loader
    caches plugin classes, so the module may no longer be in ``sys.modules`` under its name."""
    namespace: dict[str, Any] = type(lookup).run.__globals__ if lookup is not None else vars(sys.modules[LOOKUP_MODULE])
    original: Any = namespace["PrometheusClient"]
    stats = CallStats()

    class TimedClient(original):  # type: ignore[misc]
        def _send(self, path: str, data: bytes) -> tuple[int, bytes]:
            started = time.perf_counter()
            try:
                result: tuple[int, bytes] = super()._send(path, data)
                return result
            finally:
                stats.http_seconds += time.perf_counter() - started
                stats.queries += 1

    namespace["PrometheusClient"] = TimedClient
    try:
        yield stats
    finally:
        namespace["PrometheusClient"] = original


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    http: float
    queries: int
    judged: int
    listed: int
    verdict: str
    anomalies: list[dict[str, Any]]


def run_checks(lookup: Any, url: str, runs: int, window: str, history_windows: int, min_requests: int) -> list[Run]:
    results = []
    for _run in range(runs):
        with instrumented_prometheus_client(lookup) as stats:
            started = time.perf_counter()
            report = lookup.run(
                ["anomalies"],
                variables={},
                prometheus_url=url,
                window=window,
                history_windows=history_windows,
                min_requests=min_requests,
                sigma=2,
            )[0]
            wall = time.perf_counter() - started
        judged = sum(1 for row in report["services"] if row["checks"].get("history") != "insufficient_data")
        results.append(
            Run(
                wall,
                stats.http_seconds,
                stats.queries,
                judged,
                len(report["services"]),
                report["verdict"],
                report["anomalies"],
            )
        )
    return results


def replay_seconds(url: str, window: str, history_windows: int, min_requests: int, repeat: int = 3) -> float:
    """Parsing + statistics alone: the same four answers fetched once, then replayed from memory."""
    from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_check import check_anomalies
    from ansible_collections.darklaunch.traefik.plugins.plugin_utils._prometheus import PrometheusClient

    client = PrometheusClient(url)
    answers: dict[str, list[dict[str, Any]]] = {}

    class Recorder:
        def query(self, promql: str, time: Any = None) -> list[dict[str, Any]]:
            answers[promql] = client.query(promql, time)
            return answers[promql]

        def query_range(self, promql: str, start: Any, end: Any, step: Any) -> list[dict[str, Any]]:
            answers[promql] = client.query_range(promql, start, end, step)
            return answers[promql]

    class Replayer:
        def query(self, promql: str, time: Any = None) -> list[dict[str, Any]]:
            return answers[promql]

        def query_range(self, promql: str, start: Any, end: Any, step: Any) -> list[dict[str, Any]]:
            return answers[promql]

    now = time.time()
    options = {"window": window, "history_windows": history_windows, "min_requests": min_requests}
    check_anomalies(Recorder(), None, now=now, **options)
    timings = []
    for _round in range(repeat):
        started = time.perf_counter()
        check_anomalies(Replayer(), None, now=now, **options)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", maxsplit=1)[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--window", default="5s", help="a Prometheus duration (default 5s)")
    parser.add_argument("--history-windows", type=int, default=6)
    parser.add_argument("--min-requests", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--degrade", type=int, default=3, help="services whose 5xx share jumps to 30%%")
    args = parser.parse_args(argv)
    began = time.monotonic()

    lookup = load_lookup()
    from ansible_collections.darklaunch.traefik.plugins.plugin_utils._anomaly_settings import parse_prometheus_duration

    window_seconds = parse_prometheus_duration(args.window)
    exporter = SyntheticTraefik(args.services).start()
    prometheus: PrometheusProcess | None = None
    try:
        prometheus = PrometheusProcess([exporter.address]).start()
        scraper = prometheus
        wait_for("the first scrape", lambda: bool(scraper.query('up{job="traefik"} == 1')), 30)
        series = scraper.query('count({__name__=~"traefik_service_.*"})')
        history = args.history_windows * window_seconds
        print(
            f"{args.services} services, {series[0]['value'][1]} series, scraped every 1s by {prometheus.url}; "
            f"building {history:.0f}s of history",
            flush=True,
        )
        time.sleep(history + 1)
        step = max(1, args.services // max(1, args.degrade))
        degraded = list(range(0, args.services, step))[: args.degrade]
        exporter.degrade(degraded, error_ratio=0.3)
        time.sleep(window_seconds + 2)  # one whole window with the degraded services, plus scrape lag

        before = prometheus.api_requests()
        runs = run_checks(lookup, prometheus.url, args.runs, args.window, args.history_windows, args.min_requests)
        after = prometheus.api_requests()
        replay = replay_seconds(prometheus.url, args.window, args.history_windows, args.min_requests)
    finally:
        if prometheus is not None:
            prometheus.stop()
        exporter.stop()

    server_side = {
        handler: int(after.get(handler, 0) - before.get(handler, 0))
        for handler in ("/api/v1/query", "/api/v1/query_range")
    }
    print()
    print(
        f"cluster-wide check: window {args.window}, history_windows {args.history_windows}, "
        f"min_requests {args.min_requests}, sigma 2"
    )
    header = ("run", "queries", "wall ms", "Prometheus HTTP ms", "beyond ms", "beyond/wall", "judged", "verdict")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _column in header) + "|")
    for number, run in enumerate(runs, 1):
        beyond = run.wall - run.http
        print(
            f"| {number} | {run.queries} | {run.wall * 1000:.0f} | {run.http * 1000:.0f} | {beyond * 1000:.0f} | "
            f"{beyond / run.wall:.0%} | {run.judged}/{run.listed} | {run.verdict} |"
        )
    walls = [run.wall for run in runs]
    beyonds = [run.wall - run.http for run in runs]
    print(
        f"| median | {runs[0].queries} | {statistics.median(walls) * 1000:.0f} | "
        f"{statistics.median(run.http for run in runs) * 1000:.0f} | {statistics.median(beyonds) * 1000:.0f} | "
        f"{statistics.median(b / w for b, w in zip(beyonds, walls, strict=True)):.0%} | | |"
    )
    print()
    print(
        f"Prometheus' own count of API calls during the {len(runs)} checks: {server_side} "
        f"({sum(server_side.values()) / len(runs):g} per check)"
    )
    print(f"parsing + statistics alone (the same answers replayed from memory): {replay * 1000:.0f} ms")
    flagged = {a["service"] for a in runs[0].anomalies}
    expected = {exporter.label(index) for index in degraded}
    print(
        f"degraded services flagged by the first check: {len(expected & flagged)}/{len(expected)}; "
        f"other services flagged at sigma 2: {len(flagged - expected)} of {args.services}"
    )
    others = Counter(f"{a['check']}/{a['metric']}" for a in runs[0].anomalies if a["service"] not in expected)
    if others:
        print(f"  (their metrics: {dict(others)}; sigma 2 is a one-sided 2.3% chance per metric and service)")
    print(f"benchmark took {time.monotonic() - began:.0f}s")
    return 0 if runs and all(run.queries == runs[0].queries for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
