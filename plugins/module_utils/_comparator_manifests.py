# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The comparator the role deploys between the mirror and the shadow: its ConfigMap (the program), Deployment
and Service, as API objects. Pure: no I/O; the module ``comparator`` writes and removes them.

Every object carries the labels that make it the launch's own (``app.kubernetes.io/managed-by``,
``app.kubernetes.io/component=comparator``, ``darklaunch.traefik/route``): removal deletes only objects with
those labels, so a user's object of the same name is never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

MANAGED_BY = "darklaunch.traefik"
COMPONENT = "comparator"
ROUTE_LABEL = "darklaunch.traefik/route"
HASH_ANNOTATION = "darklaunch.traefik/comparator-hash"
PROGRAM_KEY = "darklaunch_compare.py"
PROGRAM_DIR = "/opt/darklaunch"
METRICS_PATH = "/__darklaunch/metrics"
CONTAINER_PORT = 8099
KINDS = ("ConfigMap", "Deployment", "Service")
DEFAULT_IMAGE = "python:3.12-slim"
DEFAULT_RESOURCES: Mapping[str, Any] = {
    "requests": {"cpu": "50m", "memory": "48Mi"},
    "limits": {"cpu": "500m", "memory": "128Mi"},
}


@dataclass(frozen=True)
class ComparatorSpec:
    """What the comparator of one route is: where it listens, whom it calls, how it runs."""

    name: str
    namespace: str
    route: str
    port: int
    program: str
    candidate: str  # URLs: http://service.namespace.svc:port
    primary: str
    secondary: str
    image: str = DEFAULT_IMAGE
    resources: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    ignore_json_pointers: Sequence[str] = ()
    ignore_headers: Sequence[str] = ()
    safe_methods: Sequence[str] = ()
    timeout: float = 5.0
    extra_labels: Mapping[str, str] = field(default_factory=dict)


def service_url(name: str, namespace: str, port: int) -> str:
    return f"http://{name}.{namespace}.svc:{port}"


def labels(spec: ComparatorSpec) -> dict[str, str]:
    return {
        **{str(key): str(value) for key, value in spec.extra_labels.items()},
        "app.kubernetes.io/name": "darklaunch-compare",
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": COMPONENT,
        ROUTE_LABEL: spec.route,
    }


def selector(spec: ComparatorSpec) -> dict[str, str]:
    return {"app.kubernetes.io/instance": spec.name, "app.kubernetes.io/component": COMPONENT, ROUTE_LABEL: spec.route}


def is_ours(obj: Mapping[str, Any] | None, route: str) -> bool:
    """Whether an object in the cluster is a comparator this collection deployed for ``route``."""
    found = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return (
        found.get("app.kubernetes.io/managed-by") == MANAGED_BY
        and found.get("app.kubernetes.io/component") == COMPONENT
        and found.get(ROUTE_LABEL) == route
    )


def args(spec: ComparatorSpec) -> list[str]:
    """The program's command line (docs/comparator.md)."""
    words = [
        "--listen", f"0.0.0.0:{CONTAINER_PORT}",
        "--primary", spec.primary,
        "--secondary", spec.secondary,
        "--candidate", spec.candidate,
        "--route", f"{spec.namespace}/{spec.route}",
        "--timeout", f"{spec.timeout:g}",
    ]  # fmt: skip
    for pointer in spec.ignore_json_pointers:
        words += ["--ignore-json-pointer", pointer]
    for header in spec.ignore_headers:
        words += ["--ignore-header", header]
    if spec.safe_methods:
        words += ["--safe-methods", ",".join(spec.safe_methods)]
    return words


def check_spec(spec: ComparatorSpec) -> None:
    """Refuse what cannot work, naming the option."""
    if not 1 <= spec.port <= 65535:
        raise DarklaunchError(f"port must be from 1 to 65535, got {spec.port}.", field="port")
    if not spec.program.strip():
        raise DarklaunchError("program is empty: give the text of darklaunch_compare.py.", field="program")
    if not spec.image.strip():
        raise DarklaunchError("image is empty: give a stock Python 3.10+ image (python:3.12-slim).", field="image")
    for pointer in spec.ignore_json_pointers:
        if not pointer.startswith("/"):
            raise DarklaunchError(
                f"ignore_json_pointers: {pointer!r} is not a JSON pointer; write it as /timestamp or /items/*/id.",
                field="ignore_json_pointers",
            )
    if spec.timeout <= 0:
        raise DarklaunchError(f"timeout must be above 0 seconds, got {spec.timeout:g}.", field="timeout")


def manifests(spec: ComparatorSpec) -> list[dict[str, Any]]:
    """ConfigMap, Deployment and Service, in the order they are created (removed in reverse)."""
    check_spec(spec)
    common = labels(spec)
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": common},
        "data": {PROGRAM_KEY: spec.program},
    }
    pod_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(CONTAINER_PORT),
        "prometheus.io/path": METRICS_PATH,
        # A new program or new arguments roll the pods.
        HASH_ANNOTATION: _digest({"program": spec.program, "args": args(spec)}),
    }
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": common},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(spec)},
            "template": {
                "metadata": {"labels": common, "annotations": pod_annotations},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
                    "containers": [
                        {
                            "name": "compare",
                            "image": spec.image,
                            "command": ["python3", f"{PROGRAM_DIR}/{PROGRAM_KEY}"],
                            "args": args(spec),
                            "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
                            "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/__darklaunch/healthz", "port": "http"},
                                "periodSeconds": 5,
                            },
                            "resources": dict(spec.resources),
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "program", "mountPath": PROGRAM_DIR, "readOnly": True}],
                        }
                    ],
                    "volumes": [{"name": "program", "configMap": {"name": spec.name}}],
                },
            },
        },
    }
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": common,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(CONTAINER_PORT),
                "prometheus.io/path": METRICS_PATH,
            },
        },
        "spec": {
            "selector": selector(spec),
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    for obj in (config_map, deployment, service):
        obj["metadata"]["annotations"] = {
            **obj["metadata"].get("annotations", {}),
            HASH_ANNOTATION: _digest({key: obj[key] for key in obj if key not in ("metadata",)}),
        }
    return [config_map, deployment, service]


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:16]
