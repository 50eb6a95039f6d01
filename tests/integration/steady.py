"""Steady user traffic through Traefik for integration tests: a fixed rate from a few background threads,
every response counted at the client (status codes, and connection failures apart)."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter


class SteadyTraffic:
    """``rate`` requests per second with one Host header through Traefik's web entrypoint, from a few
    background threads (keep-alive connections), until ``stop()`` or ``limit`` seconds. The schedule
    is absolute (a slow moment is caught up), so every window gets about the same number of requests
    even on a busy machine."""

    WORKERS = 4

    def __init__(
        self, base_url: str, host: str, rate: float, limit: float, headers: dict[str, str] | None = None
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        assert url.hostname in ("127.0.0.1", "localhost"), "test traffic stays on loopback"
        self.address = (url.hostname, url.port or 80)
        self.host = host
        self.headers = {**(headers or {}), "Host": host}  # sent with every request
        self.rate = rate
        self.limit = limit
        self.statuses: Counter[int] = Counter()
        self.answered_by: Counter[str] = Counter()
        self.failures = 0
        self._lock = threading.Lock()
        self._next = 0
        self._started = 0.0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"steady-traffic-{n}", daemon=True) for n in range(self.WORKERS)
        ]

    def start(self) -> SteadyTraffic:
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
        return sum(self.statuses.values()) + self.failures

    def errors(self) -> int:
        """Responses a user would count as failed: connection failures and every non-2xx status."""
        return self.failures + sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def running(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def _slot(self) -> float:
        """The due time of the next request, relative to the start."""
        with self._lock:
            self._next += 1
            return (self._next - 1) / self.rate

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            due = self._slot()
            if due > self.limit:
                break
            wait = due - (time.monotonic() - self._started)
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
