"""Send bounded bursts of requests through Traefik's web entrypoint (loopback only)."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class TrafficResult:
    """Responses in order: ``statuses[i]`` and ``bodies[i]`` (the answering backend's name)."""

    statuses: list[int] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.bodies)

    @property
    def by_body(self) -> Counter[str]:
        return Counter(self.bodies)

    @property
    def by_status(self) -> Counter[int]:
        return Counter(self.statuses)

    def count(self, body: str) -> int:
        return self.by_body[body]


def send(
    base_url: str,
    host: str,
    n: int = 1,
    path: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> TrafficResult:
    """Send ``n`` requests (sequentially, one keep-alive connection) with the given Host header."""
    if n > 100_000:
        raise ValueError("refusing more than 100000 requests in one burst")
    parsed = urllib.parse.urlparse(base_url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"test traffic goes to loopback only, not {parsed.hostname}")
    result = TrafficResult()
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        for _request in range(n):
            all_headers = {"Host": host, **(headers or {})}
            try:
                conn.request(method, path, body=body, headers=all_headers)
                resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException):
                # Traefik closed an idle keep-alive connection: retry once on a new one.
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
                conn.request(method, path, body=body, headers=all_headers)
                resp = conn.getresponse()
            result.statuses.append(resp.status)
            result.bodies.append(resp.read().decode(errors="replace").strip())
    finally:
        conn.close()
    return result


class ScheduledTraffic:
    """Users' GET / requests through Traefik's web entrypoint with one Host header, from ``WORKERS`` keep-alive
    threads, each request sent when ``_slot`` says it is due, until ``stop()`` or ``limit`` seconds. The schedule
    is absolute (a slow moment is caught up), so every window gets the planned number of requests even on a busy
    machine. Every response is counted at the client: its status, the backend that answered (``X-Backend``), and
    connection failures apart. The integration tests' SteadyTraffic and the bench's LiveTraffic differ only in
    their schedule."""

    WORKERS = 4

    def __init__(self, base_url: str, host: str, limit: float, headers: dict[str, str] | None = None) -> None:
        url = urllib.parse.urlsplit(base_url)
        assert url.hostname in ("127.0.0.1", "localhost"), "test traffic stays on loopback"
        self.address = (url.hostname, url.port or 80)
        self.host = host
        self.headers = {**(headers or {}), "Host": host}  # sent with every request
        self.limit = limit
        self.statuses: Counter[int] = Counter()
        self.answered_by: Counter[str] = Counter()
        self.failures = 0
        self._lock = threading.Lock()
        self._started = 0.0
        self._stop = threading.Event()
        name = type(self).__name__
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True) for n in range(self.WORKERS)
        ]

    def start(self) -> ScheduledTraffic:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    @property
    def sent(self) -> int:
        with self._lock:
            return sum(self.statuses.values()) + self.failures

    def errors(self) -> int:
        """Responses a user would count as failed: connection failures and every non-2xx status."""
        with self._lock:
            return self._errors()

    def snapshot(self) -> tuple[Counter[str], int]:
        """A consistent copy of who answered and of errors() (one moment; ``_lock`` is not reentrant)."""
        with self._lock:
            return Counter(self.answered_by), self._errors()

    def _errors(self) -> int:
        return self.failures + sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def running(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _slot(self) -> float:
        """The due time of the next request, in seconds from the start (under ``_lock`` where it needs it)."""
        raise NotImplementedError

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            due = self._slot()
            if due > self.limit:
                break
            wait = due - self._elapsed()
            if wait > 0 and self._stop.wait(wait):
                break
            if conn is None:
                conn = http.client.HTTPConnection(*self.address, timeout=10)
            try:
                conn.request("GET", "/", headers=self.headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                backend = response.getheader("X-Backend") or "?"
            except (OSError, http.client.HTTPException):
                status = 0
                backend = ""
                conn.close()
                conn = None
            with self._lock:
                if status:
                    self.statuses[status] += 1
                    self.answered_by[backend] += 1
                else:
                    self.failures += 1
        if conn is not None:
            conn.close()
