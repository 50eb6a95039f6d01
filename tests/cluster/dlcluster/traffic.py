"""Send bounded bursts of requests through Traefik's web entrypoint (loopback only)."""

from __future__ import annotations

import http.client
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
