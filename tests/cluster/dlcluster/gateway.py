"""Kubernetes Gateway API on the local cluster (Traefik 3.x): CRDs, Traefik's RBAC, a GatewayClass, a Gateway.

The CRDs are the standard channel of the gateway-api release the Traefik release is built against (its
go.mod names it), taken from that Go module (never hand-copied). Traefik's Gateway provider cannot reach
ExternalName Services (it refuses them), and the apiserver refuses loopback endpoints; so a backend an
HTTPRoute reaches also listens on this host's own address, behind a selector-less Service with an
Endpoints and an EndpointSlice written here (no controller-manager runs to write them).
"""

from __future__ import annotations

import functools
import os
import re
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import InstanceConfig
from .crds import module_dir, traefik_reference_dir
from .kube import Kube, load_yaml_docs

GROUP = "gateway.networking.k8s.io"
CLASS_NAME = "traefik"
CONTROLLER_NAME = "traefik.io/gateway-controller"
GATEWAY_NAME = "traefik-gateway"
GATEWAY_NAMESPACE = "darklaunch-system"
LISTENER = "web"
RBAC = "rbac.authorization.k8s.io"


def enabled(cfg: InstanceConfig) -> bool:
    """Traefik 3.x only: 2.11's Gateway provider is an experimental one of an older API."""
    return cfg.traefik and cfg.traefik_major == 3


def serves(config: InstanceConfig | None, env: Mapping[str, str]) -> bool:
    """Whether a running instance has the Gateway: from its saved settings, else from its exports."""
    if config is not None:
        return enabled(config)
    return bool(env.get("DARKLAUNCH_GATEWAY_NAME"))


def gateway_api_version(go_mod: str) -> str:
    """The sigs.k8s.io/gateway-api version a Traefik go.mod requires ("v1.2.1")."""
    match = re.search(r"^\s*sigs\.k8s\.io/gateway-api\s+(v\S+)", go_mod, re.M)
    if not match:
        raise RuntimeError("sigs.k8s.io/gateway-api is not required in Traefik's go.mod")
    return match.group(1)


def release_gateway_api_version(traefik_version: str) -> str:
    traefik_dir = module_dir("github.com/traefik/traefik/v3", traefik_version)
    return gateway_api_version((traefik_dir / "go.mod").read_text())


def crd_documents(gateway_api: str) -> list[dict[str, Any]]:
    """The standard channel's CRDs of that gateway-api release (its ValidatingAdmissionPolicies left out)."""
    standard = module_dir("sigs.k8s.io/gateway-api", gateway_api.lstrip("v")) / "config" / "crd" / "standard"
    docs: list[dict[str, Any]] = []
    for path in sorted(Path(standard).glob("*.yaml")):
        docs += [doc for doc in load_yaml_docs(path) if doc.get("kind") == "CustomResourceDefinition"]
    if not docs:
        raise RuntimeError(f"no CRD in {standard}")
    return docs


def rbac_documents(traefik_version: str) -> list[dict[str, Any]]:
    """The release's ClusterRole for the Gateway provider, bound to the static-token user ``traefik``."""
    docs = load_yaml_docs(traefik_reference_dir(3, traefik_version) / "kubernetes-gateway-rbac.yml")
    role = next(doc for doc in docs if doc["kind"] == "ClusterRole")
    role["metadata"] = {"name": "darklaunch-traefik-gateway"}
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "darklaunch-traefik-gateway"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "darklaunch-traefik-gateway"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "traefik"}],
    }
    return [role, binding]


def gateway_documents(web_port: int) -> list[dict[str, Any]]:
    """A GatewayClass of Traefik's controller and a Gateway whose listener is the web entry point
    (Traefik maps a listener to the entry point of the same port)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GATEWAY_NAMESPACE}},
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "GatewayClass",
            "metadata": {"name": CLASS_NAME},
            "spec": {"controllerName": CONTROLLER_NAME},
        },
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Gateway",
            "metadata": {"name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE},
            "spec": {
                "gatewayClassName": CLASS_NAME,
                "listeners": [
                    {
                        "name": LISTENER,
                        "port": web_port,
                        "protocol": "HTTP",
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        },
    ]


def install(cfg: InstanceConfig, kube: Kube) -> None:
    crds = crd_documents(release_gateway_api_version(cfg.crd_version))
    kube.apply_all(crds)
    kube.wait_crds_established([doc["metadata"]["name"] for doc in crds])
    kube.apply_all(rbac_documents(cfg.crd_version))
    kube.apply_all(gateway_documents(cfg.ports["traefik_web"]))


def _condition(obj: dict[str, Any] | None, kind: str) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def wait_ready(kube: Kube, timeout: float = 60.0) -> None:
    """Until Traefik has accepted the GatewayClass and the Gateway (it writes their status)."""
    deadline = time.monotonic() + timeout
    while True:
        klass = kube.get(f"{GROUP}/v1", "GatewayClass", CLASS_NAME)
        gateway = kube.get(f"{GROUP}/v1", "Gateway", GATEWAY_NAME, GATEWAY_NAMESPACE)
        if _condition(klass, "Accepted") and _condition(gateway, "Accepted"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Traefik did not accept GatewayClass {CLASS_NAME} / Gateway {GATEWAY_NAMESPACE}/{GATEWAY_NAME} "
                f"within {timeout:.0f}s: {(gateway or {}).get('status')}"
            )
        time.sleep(0.2)


def host_address() -> str:
    """This host's own non-loopback IPv4 address (the source of its default route); the apiserver
    takes it as an endpoint, and traffic to it never leaves the host. DARKLAUNCH_HOST_IP overrides."""
    override = os.environ.get("DARKLAUNCH_HOST_IP")
    if override:
        return override
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.123", 9))  # UDP: no packet is sent, the kernel only picks a route
            address = str(probe.getsockname()[0])
    except OSError as error:  # no route at all: say what to set rather than fail somewhere deeper
        raise RuntimeError(
            f"no IPv4 route to pick an address for HTTPRoute backends ({error}): set DARKLAUNCH_HOST_IP"
        ) from None
    if address.startswith("127.") or address == "0.0.0.0":
        raise RuntimeError("no non-loopback IPv4 address for HTTPRoute backends: set DARKLAUNCH_HOST_IP")
    return address


def service_documents(
    namespace: str, name: str, port: int, address: str, labels: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """A selector-less Service ``name`` (port named http) with the Endpoints (Traefik 3.0 reads them)
    and the EndpointSlice (3.1 and later) pointing at ``address:port``."""
    labels = dict(labels or {})
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}],
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-harness",
                "namespace": namespace,
                "labels": {**labels, "kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    ]


def httproute_manifests(
    namespace: str,
    app: str,
    route: str,
    host: str,
    ports: dict[str, int],
    weights: dict[str, int],
    address: str,
) -> list[dict[str, Any]]:
    """Pure: the Services of ``ports`` and an HTTPRoute on the harness Gateway with two rules: ``/`` split
    by ``weights`` (with a header filter), and ``/static`` to ``<app>-stable`` alone. It carries the
    seed world's label and annotation, so tests can check that changes keep them."""
    from .world import REQUEST_HEADER, route_metadata

    docs: list[dict[str, Any]] = []
    for role, port in ports.items():
        docs += service_documents(namespace, f"{app}-{role}", port, address, {"app": app, "track": role})
    docs.append(
        {
            "apiVersion": f"{GROUP}/v1",
            "kind": "HTTPRoute",
            "metadata": route_metadata(namespace, app, route),
            "spec": {
                "parentRefs": [
                    {"group": GROUP, "kind": "Gateway", "name": GATEWAY_NAME, "namespace": GATEWAY_NAMESPACE}
                ],
                "hostnames": [host],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/static"}}],
                        "backendRefs": [{"name": f"{app}-stable", "port": ports["stable"]}],
                    },
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "filters": [
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {
                                    "add": [{"name": REQUEST_HEADER[0], "value": REQUEST_HEADER[1]}]
                                },
                            }
                        ],
                        "backendRefs": [
                            {"name": f"{app}-{role}", "port": ports[role], "weight": weight}
                            for role, weight in weights.items()
                        ],
                    },
                ],
            },
        }
    )
    return docs


def create_httproute_world(
    kube: Kube,
    backends: Any,
    namespace: str,
    app: str = "api-service",
    route: str | None = None,
    host: str | None = None,
    weights: dict[str, int] | None = None,
) -> Any:
    """The seed world on an HTTPRoute (SeedWorld's fields; ``api_group`` is the Gateway API's)."""
    from .world import seed_world

    address = host_address()
    objects = functools.partial(httproute_manifests, namespace, app, address=address)
    return seed_world(
        kube, backends, namespace, app, route, host, weights, api_group=GROUP, objects=objects, also_on=address
    )


def route_accepted(kube: Kube, namespace: str, route: str) -> bool:
    """Traefik accepted the HTTPRoute on the harness Gateway."""
    obj = kube.get(f"{GROUP}/v1", "HTTPRoute", route, namespace)
    parents = ((obj or {}).get("status") or {}).get("parents") or []
    return any(_condition({"status": parent}, "Accepted") for parent in parents)
