"""A world for judging answers (docs/comparator.md) on the local cluster, which has no kubelet.

Two JSON services on loopback (``<app>-stable`` and the shadow ``<app>-canary``: ``{"item", "price",
"timestamp"}``, the timestamp differs per call, and the canary can change the price of every n-th GET) and
the comparator (roles/shadow_launch/files/darklaunch_compare.py) as a process on the port the local
Prometheus scrapes (job darklaunch-compare). The apps are behind ExternalName Services like the harness
backends; the comparator also listens on the host's own address, behind a Service whose endpoint the
apiserver's service proxy accepts (``expose_comparator``); a one-service weighted split (every user on
stable) and the IngressRoute.
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
from .gateway import host_address, service_documents
from .kube import Kube, object_path
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
    """The comparator on ``port`` of every address (loopback for the local Prometheus, the host's own for the
    apiserver's service proxy), the stable app as primary and secondary."""
    return subprocess.Popen(
        [
            sys.executable, str(PROGRAM), "--listen", f"0.0.0.0:{port}",
            "--primary", f"http://127.0.0.1:{primary}", "--secondary", f"http://127.0.0.1:{primary}",
            "--candidate", f"http://127.0.0.1:{candidate}", "--route", route, "--timeout", "2",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def compare_world_manifests(namespace: str, app: str, route: str, host: str, ports: dict[str, int]) -> list[dict]:
    """The seed world's objects for stable and canary, every user on stable (the comparator's Service comes
    from ``expose_comparator``)."""
    return manifests(namespace, app, route, host, {k: v for k, v in ports.items() if k != "compare"}, {"stable": 100})


def expose_comparator(kube: Kube, namespace: str, name: str, port: int) -> str:
    """The Service ``name`` of the comparator listening on this host's own address, reachable through the
    apiserver's service proxy (the role reads the samples that way): the proxy takes only an endpoint whose
    targetRef names a Pod with that IP, so a stand-in Pod (never run: no kubelet) gets the host's address in its
    status. Traefik reaches it through the same Endpoints / EndpointSlice. Returns the address."""
    address = host_address()
    pod = f"{name}-harness"
    kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "namespace": namespace},
                "spec": {"containers": [{"name": "comparator", "image": "python:3.12-slim"}]}})  # fmt: skip
    kube.request(
        "PATCH", object_path("v1", "Pod", namespace, pod) + "/status",
        {"status": {"podIP": address, "podIPs": [{"ip": address}]}}, content_type="application/merge-patch+json",
    )  # fmt: skip
    docs = service_documents(namespace, name, port, address)
    target = {"kind": "Pod", "name": pod, "namespace": namespace}
    for doc in docs:
        if doc["kind"] == "Endpoints":
            doc["subsets"][0]["addresses"][0]["targetRef"] = target
        elif doc["kind"] == "EndpointSlice":
            doc["endpoints"][0]["targetRef"] = target
    kube.apply_all(docs)
    return address


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
        expose_comparator(kube, namespace, f"{route}-compare", port)
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
