"""Steady user traffic through Traefik for integration tests: a fixed rate from a few background threads,
every response counted at the client (status codes, and connection failures apart)."""

from __future__ import annotations

from dlcluster.traffic import ScheduledTraffic


class SteadyTraffic(ScheduledTraffic):
    """``rate`` requests per second with one Host header through Traefik's web entrypoint, from a few
    background threads (keep-alive connections), until ``stop()`` or ``limit`` seconds (see ScheduledTraffic)."""

    def __init__(
        self, base_url: str, host: str, rate: float, limit: float, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(base_url, host, limit, headers)
        self.rate = rate
        self._next = 0

    def start(self) -> SteadyTraffic:
        super().start()
        return self

    def _slot(self) -> float:
        with self._lock:
            self._next += 1
            return (self._next - 1) / self.rate
