#!/usr/bin/env python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the response comparator (roles/shadow_launch/files/darklaunch_compare.py) on one core.

Question (issue 20): does the comparator sustain at least 200 copies per second on one core, add less than
5 ms at p50 to a copy's answer, and how much memory does it take under load?

Everything runs on 127.0.0.1. The comparator is pinned to core 0 (``taskset -c 0``); the upstream (one JSON
service answering as primary, secondary and candidate, on three ports, like a main and its shadow) and the
load generator are pinned to the other cores, so the comparator's core is its own. Side by side:

1. latency at a light load (``--light-rate`` copies per second, one at a time): a GET straight to the
   upstream vs the same GET through the comparator (which waits for its three calls); p50 and p99, the p50
   difference is what the comparator adds;
2. throughput, closed loop with ``--clients`` keep-alive clients for ``--seconds``: copies per second through
   the comparator, the comparator's CPU seconds (``/proc/<pid>/stat``) per copy and so the copies one core
   sustains (1 / CPU per copy), and its peak RSS (``VmHWM``) under that load, next to its RSS when idle.

Every copy is checked: its result header must be ``noise`` (the upstream's timestamp differs per call), so a
broken comparison cannot look fast. Prints a markdown table; ``--json PATH`` writes the numbers.

    python bench/comparator.py                      # 300 light copies, 8 clients for 20 s
    python bench/comparator.py --clients 16 --seconds 30 --json /tmp/compare.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
PROGRAM = REPO_ROOT / "roles" / "shadow_launch" / "files" / "darklaunch_compare.py"
# A typical small JSON API answer: a few fields and a list of ten items (about 1 KiB).
ITEMS = [{"id": index, "name": f"item {index}", "price": 10 + index, "tags": ["a", "b"]} for index in range(10)]


def serve_upstream(ports: list[int]) -> None:
    """The upstream (run as its own process): a JSON answer with a per-call timestamp, on each port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            body = json.dumps({"items": ITEMS, "total": len(ITEMS), "timestamp": time.time_ns()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    servers = []
    for port in ports:
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        server.request_queue_size = 256
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") and os.cpu_count() and core else argv


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed_gets(port: int, count: int, rate: float) -> tuple[list[float], Counter[str]]:
    """``count`` GETs one at a time on one keep-alive connection, at most ``rate`` per second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, results = [], Counter[str]()
    for index in range(count):
        start = time.perf_counter()
        conn.request("GET", f"/items?page={index}")
        answer = conn.getresponse()
        answer.read()
        latencies.append(time.perf_counter() - start)
        results[answer.getheader("X-Darklaunch-Compare") or str(answer.status)] += 1
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - start)))
    conn.close()
    return latencies, results


def closed_loop(port: int, clients: int, seconds: float) -> tuple[int, Counter[str], list[float]]:
    stop = time.monotonic() + seconds
    results: Counter[str] = Counter()
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, own = Counter[str](), []
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                conn.request("GET", "/items")
                answer = conn.getresponse()
                answer.read()
                mine[answer.getheader("X-Darklaunch-Compare") or str(answer.status)] += 1
            except (OSError, http.client.HTTPException):
                mine["client error"] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            own.append(time.perf_counter() - start)
        with lock:
            results.update(mine)
            latencies.extend(own)

    threads = [threading.Thread(target=client, daemon=True) for _n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(results.values()), results, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--light", type=int, default=300, help="copies timed one at a time (default 300)")
    parser.add_argument("--light-rate", type=float, default=50, help="their rate per second (default 50)")
    parser.add_argument("--clients", type=int, default=8, help="closed-loop clients (default 8)")
    parser.add_argument("--seconds", type=float, default=20, help="closed-loop duration (default 20)")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    parser.add_argument("--serve-upstream", nargs="+", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    cores = os.cpu_count() or 1
    others = f"1-{cores - 1}" if cores > 1 else "0"
    ports = [free_port() for _n in range(3)]
    listen = free_port()
    upstream = subprocess.Popen(
        pinned(others, [sys.executable, __file__, "--serve-upstream", *map(str, ports)]),
        stdout=subprocess.PIPE,
        text=True,
    )
    comparator = None
    try:
        assert upstream.stdout is not None and upstream.stdout.readline().strip() == "ready"
        comparator = subprocess.Popen(
            pinned("0", [
                sys.executable, str(PROGRAM), "--listen", f"127.0.0.1:{listen}",
                "--primary", f"http://127.0.0.1:{ports[0]}", "--secondary", f"http://127.0.0.1:{ports[1]}",
                "--candidate", f"http://127.0.0.1:{ports[2]}", "--max-inflight", "256",
            ]),
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(listen)
        # The load generator's own threads stay off the comparator's core.
        if hasattr(os, "sched_setaffinity") and cores > 1:
            os.sched_setaffinity(0, set(range(1, cores)))
        timed_gets(listen, 20, 1000)  # warm-up
        idle_rss = memory_kib(comparator.pid, "VmRSS")
        direct, _direct_results = timed_gets(ports[0], args.light, args.light_rate)
        through, light_results = timed_gets(listen, args.light, args.light_rate)
        cpu_before = cpu_seconds(comparator.pid)
        started = time.monotonic()
        copies, load_results, load_latencies = closed_loop(listen, args.clients, args.seconds)
        elapsed = time.monotonic() - started
        cpu_used = cpu_seconds(comparator.pid) - cpu_before
        peak_rss = memory_kib(comparator.pid, "VmHWM")
    finally:
        for process in (comparator, upstream):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
    numbers = {
        "machine": f"{platform.python_version()}, {cores} cores, load {os.getloadavg()[0]:.1f}",
        "direct_p50_ms": 1000 * statistics.median(direct),
        "direct_p99_ms": 1000 * percentile(direct, 0.99),
        "through_p50_ms": 1000 * statistics.median(through),
        "through_p99_ms": 1000 * percentile(through, 0.99),
        "added_p50_ms": 1000 * (statistics.median(through) - statistics.median(direct)),
        "light_results": dict(light_results),
        "copies": copies,
        "copies_per_second": copies / elapsed,
        "loaded_p50_ms": 1000 * statistics.median(load_latencies) if load_latencies else None,
        "cpu_seconds_per_copy": cpu_used / copies if copies else None,
        "copies_per_cpu_second": copies / cpu_used if cpu_used else None,
        "load_results": dict(load_results),
        "idle_rss_mib": idle_rss / 1024,
        "peak_rss_mib": peak_rss / 1024,
    }
    print(f"\nComparator on core 0 ({numbers['machine']}); every copy replayed to 3 upstreams, answers compared\n")
    print("| measure | direct to the upstream | through the comparator | ratio |")
    print("|---|---|---|---|")
    ratio = numbers["through_p50_ms"] / numbers["direct_p50_ms"]
    print(
        f"| p50 latency, {args.light} GETs at {args.light_rate:g}/s | {numbers['direct_p50_ms']:.2f} ms | "
        f"{numbers['through_p50_ms']:.2f} ms (+{numbers['added_p50_ms']:.2f} ms) | {ratio:.1f}x |"
    )
    print(
        f"| p99 latency, same | {numbers['direct_p99_ms']:.2f} ms | {numbers['through_p99_ms']:.2f} ms | "
        f"{numbers['through_p99_ms'] / numbers['direct_p99_ms']:.1f}x |"
    )
    print(
        f"\n| closed loop, {args.clients} clients, {args.seconds:g} s | value |\n|---|---|\n"
        f"| copies per second (wall) | {numbers['copies_per_second']:.0f} |\n"
        f"| comparator CPU per copy | {1000 * (numbers['cpu_seconds_per_copy'] or 0):.2f} ms |\n"
        f"| copies one core sustains (1 / CPU per copy) | {numbers['copies_per_cpu_second'] or 0:.0f} |\n"
        f"| p50 latency under that load | {numbers['loaded_p50_ms'] or 0:.1f} ms |\n"
        f"| RSS idle / peak under load | {numbers['idle_rss_mib']:.1f} MiB / {numbers['peak_rss_mib']:.1f} MiB |\n"
        f"| results (light / load) | {dict(light_results)} / {dict(load_results)} |"
    )
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=1))
    bad = set(light_results) | set(load_results)
    return 0 if bad <= {"noise"} else 1


if __name__ == "__main__":
    sys.exit(main())
