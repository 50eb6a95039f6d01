"""HTTP backends for the test cluster: one process, many named backends on loopback ports.

Each backend answers every request with its own name (plain text, header ``X-Backend``), counts
requests per method and path, and takes runtime knobs for errors and latency:

- ``GET  /__backend/counters`` -> ``{"name", "total", "errors", "slow", "hung", "hanging",
  "by_method_path": {"GET /": n}}``
- ``POST /__backend/knobs``    <- ``{"error_rate": 0.2, "latency_ms": 50, "error_status": 500,
  "slow_rate": 0.05, "slow_ms": 500, "hang": false}`` (any subset; the others stay)
- ``POST /__backend/reset``    zero the counters (knobs stay)

Knobs:

- ``error_rate`` / ``error_status``: that share of the requests is answered with ``error_status``
  (500 by default; any status, e.g. 404 for a build whose routing is broken);
- ``latency_ms``: added to every request;
- ``slow_rate`` / ``slow_ms``: ``slow_ms`` more on that share of the requests (a slow tail);
- ``hang``: requests are accepted and read but never answered while it is on: each is held until the
  client disconnects, the knob is turned off (the request is then answered as usual) or HANG_CAP_SECONDS
  pass (the connection is then closed without an answer). Each connection has its own thread, so held
  requests block neither other requests nor the control endpoints (which never hang).

Errors and slow requests are deterministic, so tests are reproducible: with rate r, request number k
(counted from 1 since the last reset) is picked when floor(k*r) > floor((k-1)*r); exactly r of any run
is picked, spread evenly. Errors and slow requests use the same counter: with equal rates they are the
same requests.

The manager listens on its own control port:

- ``GET    /backends``         -> ``{"<id>": {"name", "port"}}``
- ``POST   /backends``         <- ``{"id", "name", "port"?}`` (port 0 / missing: any free port)
- ``DELETE /backends/<id>``
- ``GET    /healthz``

Backends are remembered in a JSON file and recreated on the same ports if the manager restarts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import select
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CONTROL_PREFIX = "/__backend/"
# The longest a request is held while ``hang`` is on; then its connection is closed without an answer.
HANG_CAP_SECONDS = 300.0
# How often a held request looks at its client's connection (gone?) and at the cap.
_HANG_POLL_SECONDS = 0.5


def _picked(k: int, rate: float) -> bool:
    """Request number ``k`` (from 1) is one of the deterministic share ``rate``, spread evenly."""
    return math.floor(k * rate + 1e-9) > math.floor((k - 1) * rate + 1e-9)


def _client_gone(connection: socket.socket) -> bool:
    """The client closed (or reset) its side of the connection; pipelined data is not a close."""
    try:
        readable, _w, _x = select.select([connection], [], [], 0)
        return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Backend:
    def __init__(self, name: str, port: int, also_on: str = "") -> None:
        self.name = name
        # A second address the same port listens on (an HTTPRoute's backend: see gateway.py).
        self.also_on = also_on
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.errors = 0
        self.error_rate = 0.0
        self.error_status = 500
        self.latency_ms = 0.0
        self.slow_rate = 0.0
        self.slow_ms = 0.0
        self.hang = False
        self.slow = 0  # requests given slow_ms since the last reset
        self.hung = 0  # requests held by ``hang`` since the last reset
        self.hanging = 0  # requests held right now
        # Notified when ``hang`` is turned off or the backend stops: held requests wake up at once.
        self.hang_changed = threading.Condition(self.lock)
        self.stopping = False
        self.server = _Server(("127.0.0.1", port), self._handler_class())
        self.port = self.server.server_address[1]
        self.servers = [self.server]
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"backend-{name}", daemon=True)
        self.thread.start()
        if also_on:
            try:
                extra = _Server((also_on, self.port), self._handler_class())
            except OSError:
                self.stop()
                raise
            self.servers.append(extra)
            threading.Thread(target=extra.serve_forever, name=f"backend-{name}-{also_on}", daemon=True).start()

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.hang_changed.notify_all()
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def counters(self) -> dict[str, Any]:
        with self.lock:
            return {
                "name": self.name,
                "port": self.port,
                "total": self.total,
                "errors": self.errors,
                "slow": self.slow,
                "hung": self.hung,
                "hanging": self.hanging,
                "by_method_path": dict(self.counts),
            }

    def knobs(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "error_status": self.error_status,
            "slow_rate": self.slow_rate,
            "slow_ms": self.slow_ms,
            "hang": self.hang,
        }

    def set_knobs(self, data: dict[str, Any]) -> None:
        rates = {}
        for key in ("error_rate", "slow_rate"):
            rates[key] = float(data.get(key, getattr(self, key)))
            if not 0.0 <= rates[key] <= 1.0:
                raise ValueError(f"{key} must be within 0..1")
        hang = data.get("hang", self.hang)
        if not isinstance(hang, bool):
            raise ValueError("hang must be true or false")
        latency_ms = max(0.0, float(data.get("latency_ms", self.latency_ms)))
        slow_ms = max(0.0, float(data.get("slow_ms", self.slow_ms)))
        error_status = int(data.get("error_status", self.error_status))
        if not 100 <= error_status <= 599:
            raise ValueError("error_status must be an HTTP status (100..599)")
        with self.lock:
            self.error_rate = rates["error_rate"]
            self.slow_rate = rates["slow_rate"]
            self.latency_ms = latency_ms
            self.slow_ms = slow_ms
            self.error_status = error_status
            self.hang = hang
            if not hang:
                self.hang_changed.notify_all()

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.total = 0
            self.errors = 0
            self.slow = 0
            self.hung = 0

    def _count(self, method: str, path: str) -> tuple[bool, float, bool]:
        """Record one request; return (fail it?, latency to add, hold it?)."""
        with self.lock:
            self.total += 1
            self.counts[f"{method} {path}"] += 1
            k = self.total
            fail = _picked(k, self.error_rate)
            if fail:
                self.errors += 1
            latency_ms = self.latency_ms
            if self.slow_ms and _picked(k, self.slow_rate):
                self.slow += 1
                latency_ms += self.slow_ms
            if self.hang:
                self.hung += 1
            return fail, latency_ms, self.hang

    def _hold(self, connection: socket.socket) -> bool:
        """Hold a request while ``hang`` is on. True: released (answer it as usual); False: the client is
        gone, the cap is reached or the backend stops (close the connection without an answer)."""
        deadline = time.monotonic() + HANG_CAP_SECONDS
        with self.lock:
            self.hanging += 1
        try:
            while True:
                with self.lock:
                    if self.stopping:
                        return False
                    if not self.hang:
                        return True
                    self.hang_changed.wait(_HANG_POLL_SECONDS)
                    if not self.hang and not self.stopping:
                        return True
                if time.monotonic() >= deadline or _client_gone(connection):
                    return False
        finally:
            with self.lock:
                self.hanging -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "darklaunch-backend"
            # Headers and body go out in two writes; with Nagle on, the second waits for the client's
            # delayed ACK (~40 ms) on keep-alive connections, which would swamp the latency knob.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests send thousands
                pass

            def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Backend", backend.name)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, data: Any) -> None:
                self._reply(status, json.dumps(data).encode(), "application/json")

            def _read_body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _control(self) -> None:
                what = self.path[len(CONTROL_PREFIX) :].split("?")[0]
                body = self._read_body()
                if what == "counters" and self.command == "GET":
                    self._json(200, backend.counters())
                elif what == "knobs" and self.command == "GET":
                    self._json(200, backend.knobs())
                elif what == "knobs" and self.command in ("POST", "PUT"):
                    try:
                        backend.set_knobs(json.loads(body or b"{}"))
                    except (ValueError, TypeError) as err:
                        self._json(400, {"error": str(err)})
                        return
                    self._json(200, backend.knobs())
                elif what == "reset" and self.command == "POST":
                    backend.reset()
                    self._json(200, backend.counters())
                else:
                    self._json(404, {"error": f"unknown control endpoint {self.command} {self.path}"})

            def _serve(self) -> None:
                if self.path.startswith(CONTROL_PREFIX):
                    self._control()
                    return
                self._read_body()  # mirrored POSTs carry bodies; drain them before answering
                fail, latency_ms, hang = backend._count(self.command, self.path.split("?")[0])
                if hang and not backend._hold(self.connection):
                    self.close_connection = True
                    return
                if latency_ms:
                    time.sleep(latency_ms / 1000.0)
                if fail:
                    self._reply(backend.error_status, f"{backend.name} error\n".encode())
                else:
                    self._reply(200, f"{backend.name}\n".encode())

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        return Handler


class Manager:
    def __init__(self, registry: Path) -> None:
        self.registry = registry
        self.lock = threading.Lock()
        self.backends: dict[str, Backend] = {}

    def restore(self) -> None:
        if not self.registry.is_file():
            return
        for backend_id, spec in json.loads(self.registry.read_text()).items():
            # A port taken meanwhile loses that backend: its Service must be recreated anyway.
            with contextlib.suppress(OSError):
                self.backends[backend_id] = Backend(spec["name"], spec["port"], spec.get("also_on", ""))
        self._save()

    def _save(self) -> None:
        data = {bid: {"name": b.name, "port": b.port, "also_on": b.also_on} for bid, b in self.backends.items()}
        tmp = self.registry.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.registry)

    def listing(self) -> dict[str, Any]:
        with self.lock:
            return {bid: {"name": b.name, "port": b.port} for bid, b in self.backends.items()}

    def add(self, backend_id: str, name: str, port: int, also_on: str = "") -> dict[str, Any]:
        with self.lock:
            existing = self.backends.get(backend_id)
            if existing is None:
                existing = self.backends[backend_id] = Backend(name, port, also_on)
                self._save()
            return {"id": backend_id, "name": existing.name, "port": existing.port}

    def remove(self, backend_id: str) -> bool:
        with self.lock:
            backend = self.backends.pop(backend_id, None)
            if backend:
                self._save()
        if backend:
            # shutdown() waits for the serve loop's next poll (up to 0.5 s); a test's teardown removes
            # dozens of backends, so the caller gets its answer at once and the port closes just after.
            threading.Thread(target=backend.stop, name=f"stop-{backend.name}", daemon=True).start()
        return backend is not None

    def control_handler(self) -> type[BaseHTTPRequestHandler]:
        manager = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._json(200, {"ok": True, "backends": len(manager.backends)})
                elif self.path == "/backends":
                    self._json(200, manager.listing())
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                if self.path != "/backends":
                    self._json(404, {"error": "not found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    spec = json.loads(self.rfile.read(length) or b"{}")
                    result = manager.add(
                        str(spec["id"]),
                        str(spec.get("name") or spec["id"]),
                        int(spec.get("port") or 0),
                        str(spec.get("also_on") or ""),
                    )
                except (KeyError, ValueError, OSError) as err:
                    self._json(400, {"error": str(err)})
                    return
                self._json(200, result)

            def do_DELETE(self) -> None:
                prefix = "/backends/"
                if not self.path.startswith(prefix):
                    self._json(404, {"error": "not found"})
                    return
                removed = manager.remove(urllib.parse.unquote(self.path[len(prefix) :]))
                self._json(200 if removed else 404, {"removed": removed})

        return Handler


def serve(control_port: int, registry: Path) -> None:
    manager = Manager(registry)
    manager.restore()
    server = _Server(("127.0.0.1", control_port), manager.control_handler())
    server.serve_forever()


# --- client side (harness and tests) ---------------------------------------------------------


def _call(url: str, method: str = "GET", data: Any = None, timeout: float = 10.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{method} {url}: HTTP {err.code}: {err.read().decode(errors='replace')}") from None


class BackendHandle:
    """One backend as tests see it: who it is, where it listens, its counters and knobs."""

    def __init__(self, backend_id: str, name: str, port: int) -> None:
        self.id = backend_id
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def __repr__(self) -> str:
        return f"BackendHandle({self.id!r}, name={self.name!r}, port={self.port})"

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = _call(self.url + CONTROL_PREFIX + "counters")
        return result

    @property
    def total(self) -> int:
        return int(self.counters()["total"])

    def set_knobs(
        self,
        error_rate: float | None = None,
        latency_ms: float | None = None,
        error_status: int | None = None,
        slow_rate: float | None = None,
        slow_ms: float | None = None,
        hang: bool | None = None,
    ) -> dict[str, Any]:
        """Change the given knobs (None: leave as is); see the module's docstring."""
        data = {
            key: value
            for key, value in (
                ("error_rate", error_rate),
                ("latency_ms", latency_ms),
                ("error_status", error_status),
                ("slow_rate", slow_rate),
                ("slow_ms", slow_ms),
                ("hang", hang),
            )
            if value is not None
        }
        result: dict[str, Any] = _call(self.url + CONTROL_PREFIX + "knobs", "POST", data)
        return result

    def reset(self) -> dict[str, Any]:
        result: dict[str, Any] = _call(self.url + CONTROL_PREFIX + "reset", "POST", {})
        return result


class BackendsClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def healthy(self) -> bool:
        try:
            return bool(_call(self.url + "/healthz", timeout=2)["ok"])
        except Exception:
            return False

    def add(self, backend_id: str, name: str | None = None, port: int = 0, also_on: str = "") -> BackendHandle:
        """``also_on``: a second address the backend listens on, same port (an HTTPRoute's backend)."""
        spec = {"id": backend_id, "name": name or backend_id, "port": port, "also_on": also_on}
        data = _call(self.url + "/backends", "POST", spec)
        return BackendHandle(data["id"], data["name"], int(data["port"]))

    def remove(self, backend_id: str) -> None:
        with contextlib.suppress(RuntimeError):
            _call(self.url + "/backends/" + urllib.parse.quote(backend_id, safe=""), "DELETE")

    def list(self) -> dict[str, BackendHandle]:
        return {
            bid: BackendHandle(bid, spec["name"], int(spec["port"]))
            for bid, spec in _call(self.url + "/backends").items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--registry", type=Path, required=True)
    args = parser.parse_args()
    serve(args.control_port, args.registry)


if __name__ == "__main__":
    main()
