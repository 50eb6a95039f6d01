"""The seed's world in one namespace: three backends, a 50/50 weighted split and an IngressRoute.

    <app>-stable, <app>-canary, <app>-staging   ExternalName Services -> localhost:<backend port>
    <route>-wrr                                  TraefikService, weighted stable 50 / canary 50
    <route>-headers                              Middleware (headers) used by the route
    <route>                                      IngressRoute, Host rule -> <route>-wrr

The IngressRoute carries ANNOTATION and LABEL so tests can check that changes preserve them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .backends import BackendHandle, BackendsClient
from .kube import Kube

ROLES = ("stable", "canary", "staging")
ANNOTATION = ("darklaunch.test/owner", "seed-world")
LABEL = ("app.kubernetes.io/part-of", "seed-world")
REQUEST_HEADER = ("X-Darklaunch-Seed", "true")


@dataclass
class SeedWorld:
    namespace: str
    app: str
    route: str
    host: str
    api_group: str
    backends: dict[str, BackendHandle]
    weights: dict[str, int] = field(default_factory=dict)

    @property
    def wrr(self) -> str:
        return f"{self.route}-wrr"

    @property
    def middleware(self) -> str:
        return f"{self.route}-headers"

    @property
    def annotation(self) -> tuple[str, str]:
        return ANNOTATION

    @property
    def label(self) -> tuple[str, str]:
        return LABEL

    def service(self, role: str) -> str:
        return f"{self.app}-{role}"

    def port(self, role: str) -> int:
        return self.backends[role].port

    def metrics_label(self, role: str) -> str:
        """Traefik's `service` label for this backend when reached through a TraefikService."""
        return f"{self.namespace}-{self.service(role)}-{self.port(role)}@kubernetescrd"

    def reset_backends(self) -> None:
        for backend in self.backends.values():
            backend.reset()
            backend.set_knobs(error_rate=0, latency_ms=0)

    def counts(self) -> dict[str, int]:
        return {role: backend.total for role, backend in self.backends.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "app": self.app,
            "route": self.route,
            "wrr": self.wrr,
            "middleware": self.middleware,
            "host": self.host,
            "api_group": self.api_group,
            "annotation": dict([ANNOTATION]),
            "weights": self.weights,
            "services": {
                role: {
                    "name": self.service(role),
                    "port": self.port(role),
                    "backend_url": self.backends[role].url,
                    "metrics_label": self.metrics_label(role),
                }
                for role in self.backends
            },
        }


def route_metadata(namespace: str, app: str, route: str) -> dict[str, Any]:
    """The seed route's metadata (an IngressRoute's or an HTTPRoute's): its label and owner annotation."""
    return {
        "name": route,
        "namespace": namespace,
        "labels": {"app": app, LABEL[0]: LABEL[1]},
        "annotations": {ANNOTATION[0]: ANNOTATION[1]},
    }


def manifests(
    namespace: str,
    app: str,
    route: str,
    host: str,
    ports: dict[str, int],
    weights: dict[str, int],
    api_group: str = "traefik.io",
) -> list[dict[str, Any]]:
    """Pure: the objects of the seed world (Services first, the IngressRoute last)."""
    version = f"{api_group}/v1alpha1"
    docs: list[dict[str, Any]] = []
    for role, port in ports.items():
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{app}-{role}", "namespace": namespace, "labels": {"app": app, "track": role}},
                # A real apiserver refuses 127.0.0.0/8 endpoints, so Traefik reaches the loopback
                # backend through an ExternalName Service (allowExternalNameServices).
                "spec": {
                    "type": "ExternalName",
                    "externalName": "localhost",
                    "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
                },
            }
        )
    docs.append(
        {
            "apiVersion": version,
            "kind": "Middleware",
            "metadata": {"name": f"{route}-headers", "namespace": namespace},
            "spec": {"headers": {"customRequestHeaders": dict([REQUEST_HEADER])}},
        }
    )
    docs.append(
        {
            "apiVersion": version,
            "kind": "TraefikService",
            "metadata": {"name": f"{route}-wrr", "namespace": namespace, "labels": {"app": app}},
            "spec": {
                "weighted": {
                    "services": [
                        {"name": f"{app}-{role}", "port": ports[role], "weight": weight}
                        for role, weight in weights.items()
                    ]
                }
            },
        }
    )
    docs.append(
        {
            "apiVersion": version,
            "kind": "IngressRoute",
            "metadata": route_metadata(namespace, app, route),
            "spec": {
                "entryPoints": ["web"],
                "routes": [
                    {
                        "match": f"Host(`{host}`)",
                        "kind": "Rule",
                        "middlewares": [{"name": f"{route}-headers"}],
                        "services": [{"name": f"{route}-wrr", "kind": "TraefikService"}],
                    }
                ],
            },
        }
    )
    return docs


# What a seed world's objects are made from: (route, host, ports by role, weights by role) -> manifests.
ObjectsOf = Callable[[str, str, dict[str, int], dict[str, int]], list[dict[str, Any]]]


def create_world(
    kube: Kube,
    backends: BackendsClient,
    namespace: str,
    app: str = "api-service",
    route: str | None = None,
    host: str | None = None,
    weights: dict[str, int] | None = None,
    api_group: str = "traefik.io",
) -> SeedWorld:
    """Start fresh backends (ids ``<namespace>/<service>``) and apply the seed objects."""
    objects = functools.partial(manifests, namespace, app, api_group=api_group)
    return seed_world(kube, backends, namespace, app, route, host, weights, api_group=api_group, objects=objects)


def seed_world(
    kube: Kube,
    backends: BackendsClient,
    namespace: str,
    app: str,
    route: str | None,
    host: str | None,
    weights: dict[str, int] | None,
    *,
    api_group: str,
    objects: ObjectsOf,
    also_on: str = "",
) -> SeedWorld:
    """A seed world whose route is made by ``objects`` (an IngressRoute, an HTTPRoute): fresh backends, one a
    role (``also_on``: a second address each listens on), its namespace and its objects applied."""
    route = route or f"{app}-route"
    host = host or f"{route}.{namespace}.test"
    weights = weights or {"stable": 50, "canary": 50}
    handles = {role: backends.add(f"{namespace}/{app}-{role}", name=f"{app}-{role}", also_on=also_on) for role in ROLES}
    kube.ensure_namespace(namespace)
    ports = {role: handle.port for role, handle in handles.items()}
    kube.apply_all(objects(route, host, ports, weights))
    return SeedWorld(
        namespace=namespace,
        app=app,
        route=route,
        host=host,
        api_group=api_group,
        backends=handles,
        weights=dict(weights),
    )


def remove_world_backends(backends: BackendsClient, world: SeedWorld) -> None:
    for handle in world.backends.values():
        backends.remove(handle.id)
