"""A world for judging answers (docs/comparator.md) on the local cluster, which has no kubelet.

Two JSON services on loopback (``<app>-stable`` and the shadow ``<app>-canary``: ``{"item", "price",
"timestamp"}``, the timestamp differs per call, and the canary can change the price of every n-th GET) and
the comparator (roles/shadow_launch/files/darklaunch_compare.py) as a loopback process on the port the local
Prometheus scrapes (job darklaunch-compare), each behind an ExternalName Service like the harness backends;
a one-service weighted split (every user on stable) and the IngressRoute.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .config import InstanceConfig
from .kube import Kube
from .prometheus import comparator_port
from .world import manifests

PROGRAM = Path(__file__).resolve().parents[3] / "roles" / "shadow_launch" / "files" / "darklaunch_compare.py"


class JsonApp:
    """A JSON service on loopback. ``wrong_every`` > 0 changes the price of every n-th GET (20: 5%)."""

    def __init__(self, name: str, wrong_every: int = 0) -> None:
        self.name = name
        self.wrong_every = wrong_every
        self.by_method: Counter[str] = Counter()
        self.gets = 0
        self.lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with app.lock:
                    app.by_method[self.command] += 1
                    if self.command == "GET":
                        app.gets += 1
                    wrong = app.wrong_every and self.command == "GET" and app.gets % app.wrong_every == 0
                answer = {"item": "book", "price": 11 if wrong else 10, "timestamp": time.time_ns(), "by": "app"}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, name=f"json-{name}", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_comparator(port: int, primary: int, candidate: int, route: str) -> subprocess.Popen[str]:
    """The comparator on 127.0.0.1:``port``, the stable app as primary and secondary."""
    return subprocess.Popen(
        [
            sys.executable, str(PROGRAM), "--listen", f"127.0.0.1:{port}",
            "--primary", f"http://127.0.0.1:{primary}", "--secondary", f"http://127.0.0.1:{primary}",
            "--candidate", f"http://127.0.0.1:{candidate}", "--route", route, "--timeout", "2",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def compare_world_manifests(namespace: str, app: str, route: str, host: str, ports: dict[str, int]) -> list[dict]:
    """The seed world's objects for stable, canary and ``{route}-compare``, every user on stable."""
    objects = manifests(namespace, app, route, host, ports, {"stable": 100})
    for obj in objects:
        if obj["kind"] == "Service" and obj["metadata"]["name"] == f"{app}-compare":
            obj["metadata"]["name"] = f"{route}-compare"
    return objects


def run_compare_world(
    cfg: InstanceConfig, kube: Kube, namespace: str, app: str, route: str, host: str, wrong_every: int, seconds: float
) -> None:
    """Start the apps and the comparator, apply the objects, print the world as JSON, and keep running until
    SIGTERM or ``seconds``; then print the apps' counts by method."""
    stable, canary = JsonApp("stable"), JsonApp("canary", wrong_every)
    port = comparator_port(cfg)
    comparator = start_comparator(port, stable.port, canary.port, f"{namespace}/{route}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        kube.ensure_namespace(namespace)
        ports = {"stable": stable.port, "canary": canary.port, "compare": port}
        kube.apply_all(compare_world_manifests(namespace, app, route, host, ports))
        world = {
            "namespace": namespace, "route": route, "host": host, "main_service": f"{app}-stable",
            "shadow_service": f"{app}-canary", "compare_service": f"{route}-compare", "compare_port": port,
            "wrong_every": wrong_every,
        }  # fmt: skip
        print(json.dumps(world), flush=True)
        stop.wait(seconds)
    finally:
        comparator.terminate()
        comparator.wait(timeout=10)
        stable.close()
        canary.close()
        print(json.dumps({"stable": dict(stable.by_method), "canary": dict(canary.by_method)}), flush=True)
