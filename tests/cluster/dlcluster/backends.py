"""HTTP backends for the test cluster: one process, many named backends on loopback ports.

Each backend answers every request with its own name (plain text, header ``X-Backend``), counts
requests per method and path, and takes runtime knobs for errors and latency:

- ``GET  /__backend/counters`` -> ``{"name", "total", "errors", "by_method_path": {"GET /": n}}``
- ``POST /__backend/knobs``    <- ``{"error_rate": 0.2, "latency_ms": 50, "error_status": 500}``
- ``POST /__backend/reset``    zero the counters (knobs stay)

Errors are deterministic, so tests are reproducible: with rate r, request number k (counted from 1
since the last reset) fails when floor(k*r) > floor((k-1)*r); exactly r of any run fails.

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


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Backend:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.errors = 0
        self.error_rate = 0.0
        self.error_status = 500
        self.latency_ms = 0.0
        self.server = _Server(("127.0.0.1", port), self._handler_class())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"backend-{name}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def counters(self) -> dict[str, Any]:
        with self.lock:
            return {
                "name": self.name,
                "port": self.port,
                "total": self.total,
                "errors": self.errors,
                "by_method_path": dict(self.counts),
            }

    def knobs(self) -> dict[str, Any]:
        return {"error_rate": self.error_rate, "latency_ms": self.latency_ms, "error_status": self.error_status}

    def set_knobs(self, data: dict[str, Any]) -> None:
        rate = float(data.get("error_rate", self.error_rate))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("error_rate must be within 0..1")
        with self.lock:
            self.error_rate = rate
            self.latency_ms = max(0.0, float(data.get("latency_ms", self.latency_ms)))
            self.error_status = int(data.get("error_status", self.error_status))

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.total = 0
            self.errors = 0

    def _count(self, method: str, path: str) -> tuple[bool, float]:
        """Record one request; return (fail it?, latency to add)."""
        with self.lock:
            self.total += 1
            self.counts[f"{method} {path}"] += 1
            k = self.total
            fail = math.floor(k * self.error_rate + 1e-9) > math.floor((k - 1) * self.error_rate + 1e-9)
            if fail:
                self.errors += 1
            return fail, self.latency_ms

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
                fail, latency_ms = backend._count(self.command, self.path.split("?")[0])
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
                self.backends[backend_id] = Backend(spec["name"], spec["port"])
        self._save()

    def _save(self) -> None:
        data = {bid: {"name": b.name, "port": b.port} for bid, b in self.backends.items()}
        tmp = self.registry.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.registry)

    def listing(self) -> dict[str, Any]:
        with self.lock:
            return {bid: {"name": b.name, "port": b.port} for bid, b in self.backends.items()}

    def add(self, backend_id: str, name: str, port: int) -> dict[str, Any]:
        with self.lock:
            existing = self.backends.get(backend_id)
            if existing is None:
                existing = self.backends[backend_id] = Backend(name, port)
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
                        str(spec["id"]), str(spec.get("name") or spec["id"]), int(spec.get("port") or 0)
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
        self, error_rate: float | None = None, latency_ms: float | None = None, error_status: int | None = None
    ) -> dict[str, Any]:
        data = {
            key: value
            for key, value in (("error_rate", error_rate), ("latency_ms", latency_ms), ("error_status", error_status))
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

    def add(self, backend_id: str, name: str | None = None, port: int = 0) -> BackendHandle:
        data = _call(self.url + "/backends", "POST", {"id": backend_id, "name": name or backend_id, "port": port})
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
