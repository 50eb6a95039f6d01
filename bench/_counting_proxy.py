# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A counting reverse proxy in front of the local cluster's kube-apiserver (bench helper).

It terminates TLS on 127.0.0.1 with the apiserver's own serving certificate (its SANs include
127.0.0.1, and the kubeconfigs trust the instance's CA), records every request (method, path,
query) and forwards it unchanged, bearer token included, to the real apiserver. The apiserver's audit
log cannot replace it: the harness's audit policy leaves out discovery (non-resource URLs) and most
resources, and discovery is what kubernetes.core spends many of its requests on.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business; the body is re-sent with a length.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    status: int  # the apiserver's answer; 0 when it could not be reached

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def is_discovery(self) -> bool:
        """Group/version documents, OpenAPI and /version: reads that name no resource."""
        parts = [part for part in self.path.split("/") if part]
        if not parts or parts[0] in ("openapi", "version"):
            return True
        if parts[0] == "api":
            return len(parts) <= 2  # /api, /api/v1
        if parts[0] == "apis":
            return len(parts) <= 3  # /apis, /apis/<group>, /apis/<group>/<version>
        return False

    def __str__(self) -> str:
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "") + f" -> {self.status}"


class CountingProxy:
    """``with CountingProxy(upstream, cert, key, ca).running() as proxy:`` then ``proxy.url``, ``proxy.take()``."""

    def __init__(self, upstream: str, cert: Path, key: Path, ca: Path) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream_host = parsed.hostname or "127.0.0.1"
        self._upstream_port = parsed.port or 443
        self._client_tls = ssl.create_default_context(cafile=str(ca))
        self._server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_tls.load_cert_chain(str(cert), str(key))
        self._lock = threading.Lock()
        self._seen: list[Request] = []
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the proxy is not running"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def take(self) -> list[Request]:
        """The requests seen since the last call, and forget them."""
        with self._lock:
            seen, self._seen = self._seen, []
        return seen

    def _record(self, request: Request) -> None:
        with self._lock:
            self._seen.append(request)

    def _upstream(self) -> http.client.HTTPSConnection:
        # One kept-alive upstream connection per handler thread, so the proxy adds no TLS handshake of its own.
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(
                self._upstream_host, self._upstream_port, context=self._client_tls, timeout=60
            )
            self._local.connection = connection
        return connection

    def _forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):
            connection = self._upstream()
            try:
                connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                connection.putheader("Host", f"{self._upstream_host}:{self._upstream_port}")
                for name, value in headers:
                    connection.putheader(name, value)
                connection.putheader("Content-Length", str(len(body or b"")))
                connection.endheaders(body)
                response = connection.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def running(self) -> Iterator[CountingProxy]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the bench prints its own table

            def _handle(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"content-length"}]
                status = 0
                try:
                    status, reason, response_headers, data = proxy._forward(self.command, self.path, headers, body)
                finally:
                    proxy._record(Request(self.command, split.path, split.query, status))
                self.send_response(status, reason)
                for name, value in response_headers:
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = self._server_tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        thread = threading.Thread(target=server.serve_forever, name="counting-proxy", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            self._server = None
