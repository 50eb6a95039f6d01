"""A tiny Kubernetes REST client for the harness (urllib, bearer token, CA-verified TLS).

The harness only handles a known, small set of kinds, so paths are derived statically: no API
discovery. Tests may use it too, e.g. to assert what a given user may or may not do.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "GatewayClass"}
FIELD_MANAGER = "darklaunch-test-harness"


class KubeError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.body = body
        try:
            self.reason = json.loads(body).get("message", body)
        except ValueError:
            self.reason = body
        super().__init__(f"{method} {path}: HTTP {status}: {self.reason}")


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower == "endpoints":  # already plural
        return lower
    return lower + ("es" if lower.endswith("s") else "s")


def object_path(apiversion: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
    base = f"/api/{apiversion}" if "/" not in apiversion else f"/apis/{apiversion}"
    parts = [base]
    if kind not in CLUSTER_SCOPED:
        if namespace is None:
            raise ValueError(f"{kind} is namespaced: a namespace is required")
        parts.append(f"namespaces/{namespace}")
    parts.append(plural(kind))
    if name:
        parts.append(name)
    return "/".join(parts)


class Kube:
    def __init__(self, server: str, token: str, ca_pem: str, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._ssl = ssl.create_default_context(cadata=ca_pem)

    @classmethod
    def from_kubeconfig(cls, path: Path | str) -> Kube:
        """Build a client from one of the harness kubeconfigs (token + embedded CA)."""
        doc = yaml.safe_load(Path(path).read_text())
        cluster = doc["clusters"][0]["cluster"]
        user = doc["users"][0]["user"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        return cls(cluster["server"], user["token"], ca_pem)

    # --- raw requests ------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
    ) -> Any:
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise KubeError(err.code, method, path, err.read().decode(errors="replace")) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def get_raw(self, path: str) -> Any:
        return self.request("GET", path)

    # --- objects -----------------------------------------------------------------------------
    def get(self, apiversion: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.request("GET", object_path(apiversion, kind, namespace, name))
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return result

    def list(self, apiversion: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        result = self.request("GET", object_path(apiversion, kind, namespace))
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        ns = namespace or obj.get("metadata", {}).get("namespace")
        result: dict[str, Any] = self.request("POST", object_path(obj["apiVersion"], obj["kind"], ns), obj)
        return result

    def delete(self, apiversion: str, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            self.request("DELETE", object_path(apiversion, kind, namespace, name))
        except KubeError as err:
            if err.status != 404:
                raise

    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Server-side apply (idempotent create-or-update)."""
        meta = obj.setdefault("metadata", {})
        ns = None
        if obj["kind"] not in CLUSTER_SCOPED:
            ns = namespace or meta.get("namespace") or "default"
            meta["namespace"] = ns
        path = object_path(obj["apiVersion"], obj["kind"], ns, meta["name"])
        result: dict[str, Any] = self.request(
            "PATCH",
            path,
            json.dumps(obj).encode(),
            content_type="application/apply-patch+yaml",
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
        )
        return result

    def apply_all(self, objs: Iterable[dict[str, Any]], namespace: str | None = None) -> None:
        for obj in objs:
            if obj:
                self.apply(obj, namespace)

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        meta: dict[str, Any] = {"name": name}
        if labels:
            meta["labels"] = labels
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})

    def wait_crds_established(self, names: Iterable[str], timeout: float = 60.0) -> None:
        pending = set(names)
        deadline = time.monotonic() + timeout
        while pending:
            for name in sorted(pending):
                crd = self.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                # A CRD just created has "conditions": null until the apiserver's controller gets to it.
                conditions = ((crd or {}).get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"CRDs not Established after {timeout:.0f}s: {sorted(pending)}")
            if pending:
                time.sleep(0.2)


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the big CRD files ~10x faster


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_Loader) if doc]
