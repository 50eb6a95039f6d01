"""A fault-injecting HTTP relay on loopback, for the fault tests.

It stands in front of one upstream: the kube-apiserver (reached over TLS with the cluster's CA) or
Prometheus. Clients talk plain HTTP to it on 127.0.0.1, so it sees every request's method and can count
the writes of a module run; the upstream, Traefik and every other client keep running untouched, so the
fault is seen only by whoever was pointed at the relay.

Faults, switched on by hand or armed to start right after the N-th answered write:

- ``down``: the port is closed (new connections are refused) and open connections are cut, as when the
  API server process stops;
- ``slow``: each request is still forwarded (so a write is applied upstream) but its answer is held back
  for ``delay`` seconds, longer than the client waits, as when the API server is overloaded.

``heal()`` ends either fault (the same port listens again). Every request is logged with its outcome.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)
PASS, DOWN, SLOW = "pass", "down", "slow"


@dataclass
class Relayed:
    at: float
    method: str
    path: str
    outcome: str  # the upstream status, "held" (answered late, slow) or "cut" (down)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    relay: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # cut connections are the point of the exercise


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.relay._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.relay._connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _relay(self) -> None:
        relay = self.server.relay
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if relay.mode == DOWN:
            relay._log(self.command, self.path, "cut")
            self.close_connection = True
            return
        mode_now = relay.mode
        status, reason, headers, data = relay._forward(self.command, self.path, self.headers, body)
        is_write = self.command in WRITE_METHODS
        going_down = is_write and relay._count_write() == DOWN
        if mode_now == SLOW:
            relay._log(self.command, self.path, "held")
            relay._released.wait(relay.delay)
        else:
            relay._log(self.command, self.path, str(status))
        if going_down:
            # Close the port before this answer leaves, so the client's next request is refused, never
            # accepted and cut (which would look like a request the API may have acted on).
            relay._stop_listening(keep=self.connection)
            self.close_connection = True
        try:
            self.send_response(status, reason)
            for key, value in headers:
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up waiting (slow)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay


class FaultProxy:
    def __init__(self, upstream: str, ca_pem: str | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        assert parsed.hostname in ("127.0.0.1", "localhost"), "the fault proxy relays to loopback only"
        self._upstream = parsed
        self._ssl = ssl.create_default_context(cadata=ca_pem) if parsed.scheme == "https" else None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._released = threading.Event()
        self._armed: tuple[int, str] | None = None
        self.port = 0
        self.mode = PASS
        self.delay = 0.0
        self.writes_answered = 0
        self.log: list[Relayed] = []
        self.faulted_at: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._listen()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._stop_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.relay = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fault-proxy", daemon=True
        )
        self._thread.start()

    def _stop_listening(self, keep: socket.socket | None = None) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for connection in list(self._connections):
            if connection is not keep:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    # --- faults ------------------------------------------------------------------------------------

    def fail_after_writes(self, writes: int, mode: str, delay: float = 0.0) -> None:
        """Start ``mode`` right after ``writes`` more write requests have been answered (0: now)."""
        self.delay = delay
        if writes == 0:
            self._start(mode)
        else:
            self._armed = (self.writes_answered + writes, mode)

    def _count_write(self) -> str:
        """Count an answered write; the fault it starts, if it was the armed one."""
        with self._lock:
            self.writes_answered += 1
            armed = self._armed
            if armed is None or self.writes_answered < armed[0]:
                return PASS
            self._armed = None
        if armed[1] == SLOW:
            self._start(SLOW)
            return PASS
        self.mode = DOWN
        self.faulted_at = time.monotonic()
        return DOWN

    def _start(self, mode: str) -> None:
        self.faulted_at = time.monotonic()
        self._released.clear()
        self.mode = mode
        if mode == DOWN:
            self._stop_listening()

    def heal(self) -> None:
        """End the fault: answer held requests and listen again on the same port."""
        self._armed = None
        self.mode = PASS
        self._released.set()
        if self._server is None:
            self._listen()

    # --- relaying ----------------------------------------------------------------------------------

    def _forward(
        self, method: str, path: str, headers: Any, body: bytes | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        host = self._upstream.hostname or "127.0.0.1"
        connection: http.client.HTTPConnection
        if self._ssl is not None:
            connection = http.client.HTTPSConnection(host, self._upstream.port, context=self._ssl, timeout=60)
        else:
            connection = http.client.HTTPConnection(host, self._upstream.port, timeout=60)
        try:
            forwarded = {key: value for key, value in headers.items() if key.lower() not in HOP_BY_HOP}
            connection.request(method, path, body=body, headers=forwarded)
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        except OSError as err:
            message = f"fault proxy: upstream unreachable: {err}".encode()
            return 502, "Bad Gateway", [("Content-Type", "text/plain")], message
        finally:
            connection.close()

    def _log(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.log.append(Relayed(time.monotonic(), method, path, outcome))

    def writes(self) -> list[Relayed]:
        return [entry for entry in self.log if entry.method in WRITE_METHODS]


def kubeconfig_through(proxy: FaultProxy, kubeconfig: Path, destination: Path) -> Path:
    """A copy of ``kubeconfig`` whose server is the proxy (plain HTTP on loopback, same token)."""
    doc = yaml.safe_load(kubeconfig.read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"] = {"server": proxy.url}
    destination.write_text(yaml.safe_dump(doc))
    destination.chmod(0o600)
    return destination


def cluster_ca(kubeconfig: Path) -> str:
    import base64

    doc = yaml.safe_load(kubeconfig.read_text())
    return base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()


def cluster_server(kubeconfig: Path) -> str:
    doc = yaml.safe_load(kubeconfig.read_text())
    return str(doc["clusters"][0]["cluster"]["server"])
