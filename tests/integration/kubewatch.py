"""Record every version of a namespace's IngressRoutes, TraefikServices and Services with the API's own
watch (``?watch=1``, one streaming request per kind), then replay them in resourceVersion order to check
that no recorded moment had a route pointing at nothing.

A route "dangles" when an IngressRoute targets a Service or TraefikService that does not exist, or a
TraefikService reachable from it (weighted split, mirror main or mirror) names one that does not. Deleting
a mirror while an IngressRoute still routes through it is the same fault, seen at the deletion's version.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KINDS = {
    "IngressRoute": "/apis/{group}/v1alpha1/namespaces/{ns}/ingressroutes",
    "TraefikService": "/apis/{group}/v1alpha1/namespaces/{ns}/traefikservices",
    "Service": "/api/v1/namespaces/{ns}/services",
}


@dataclass
class Event:
    at: float
    type: str  # LISTED (the initial list), ADDED, MODIFIED, DELETED
    kind: str
    name: str
    version: int
    obj: dict[str, Any]


class NamespaceWatch:
    def __init__(self, kubeconfig: Path, namespace: str, group: str = "traefik.io") -> None:
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = doc["clusters"][0]["cluster"]
        server = urllib.parse.urlsplit(cluster["server"])
        assert server.hostname in ("127.0.0.1", "localhost")
        self._address = (server.hostname, server.port or 443)
        self._token = doc["users"][0]["user"]["token"]
        self._ssl = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        self.namespace = namespace
        self._paths = {kind: path.format(group=group, ns=namespace) for kind, path in KINDS.items()}
        self.events: list[Event] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPSConnection] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def __enter__(self) -> NamespaceWatch:
        for kind in KINDS:
            version = self._list(kind)
            thread = threading.Thread(target=self._watch, args=(kind, version), name=f"watch-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
        time.sleep(0.5)  # the streams are open before anything is changed
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(1.0)  # the last events of the cycle reach us
        self._stopping = True
        for connection in self._connections:
            try:
                if connection.sock is not None:
                    connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _connection(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(*self._address, context=self._ssl, timeout=30)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    def _list(self, kind: str) -> str:
        connection = self._connection()
        try:
            connection.request("GET", self._paths[kind], headers=self._headers())
            response = connection.getresponse()
            body = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 200, body
        now = time.monotonic()
        for item in body.get("items", []):
            item.setdefault("kind", kind)
            self._record(Event(now, "LISTED", kind, item["metadata"]["name"], _version(item), item))
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, kind: str, version: str) -> None:
        connection = self._connection()
        self._connections.append(connection)
        query = urllib.parse.urlencode({"watch": "1", "resourceVersion": version, "timeoutSeconds": "900"})
        try:
            connection.request("GET", f"{self._paths[kind]}?{query}", headers=self._headers())
            connection.sock.settimeout(None)  # a quiet stream is not an error
            response = connection.getresponse()
            if response.status != 200:
                self.errors.append(f"watch {kind}: HTTP {response.status} {response.read()[:200]!r}")
                return
            while True:
                line = response.readline()
                if not line:
                    if not self._stopping:
                        self.errors.append(f"watch {kind}: the stream ended early")
                    return
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ERROR":
                    self.errors.append(f"watch {kind}: {obj.get('message')}")
                    return
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    obj.setdefault("kind", kind)
                    name = obj["metadata"]["name"]
                    self._record(Event(time.monotonic(), event["type"], kind, name, _version(obj), obj))
        except (OSError, http.client.HTTPException, ValueError, AttributeError) as err:
            # AttributeError: http.client reading a chunk from a connection closed under it (our stop).
            if not self._stopping:
                self.errors.append(f"watch {kind}: {err}")

    def _record(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    # --- replay -----------------------------------------------------------------------------------

    def versions(self, kind: str | None = None) -> int:
        """Versions the watch delivered (the initial list excluded)."""
        return sum(1 for e in self.events if e.type != "LISTED" and (kind is None or e.kind == kind))

    def ordered(self) -> list[Event]:
        with self._lock:
            return sorted(self.events, key=lambda e: e.version)

    def dangling_moments(self) -> list[str]:
        """Every recorded moment at which some IngressRoute's traffic would reach a missing object."""
        state: dict[tuple[str, str], dict[str, Any]] = {}
        problems: list[str] = []
        for event in self.ordered():
            key = (event.kind, event.name)
            if event.type == "DELETED":
                state.pop(key, None)
            else:
                state[key] = event.obj
            for missing in _missing_targets(state, self.namespace):
                problems.append(f"after {event.type} {event.kind} {event.name} (version {event.version}): {missing}")
        return problems

    def timeline(self) -> list[str]:
        return [f"{e.version} {e.type} {e.kind}/{e.name}" for e in self.ordered()]


def _version(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _missing_targets(state: dict[tuple[str, str], dict[str, Any]], namespace: str) -> list[str]:
    missing: list[str] = []
    for (kind, name), obj in state.items():
        if kind != "IngressRoute":
            continue
        for index, route in enumerate(obj.get("spec", {}).get("routes", [])):
            for ref in route.get("services", []):
                trail = f"IngressRoute {name} route {index}"
                missing.extend(_check_ref(state, namespace, ref, trail, depth=0))
    return missing


def _check_ref(
    state: dict[tuple[str, str], dict[str, Any]], namespace: str, ref: dict[str, Any], trail: str, depth: int
) -> list[str]:
    name = ref.get("name", "")
    kind = ref.get("kind") or "Service"
    if "@" in name or ref.get("namespace", namespace) != namespace:
        return []  # another provider or namespace: not ours to follow
    here = f"{trail} -> {kind} {name}"
    target = state.get((kind, name))
    if target is None:
        return [f"{here} does not exist"]
    if kind != "TraefikService" or depth > 5:
        return []
    spec = target.get("spec", {})
    refs: list[dict[str, Any]] = list((spec.get("weighted") or {}).get("services") or [])
    mirroring = spec.get("mirroring")
    if mirroring:
        refs.append({key: value for key, value in mirroring.items() if key in ("name", "kind", "namespace")})
        refs.extend(mirroring.get("mirrors") or [])
    problems: list[str] = []
    for inner in refs:
        problems.extend(_check_ref(state, namespace, inner, here, depth + 1))
    return problems
