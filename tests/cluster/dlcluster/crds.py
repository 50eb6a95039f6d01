"""Traefik CRDs and RBAC taken from the Go module of the Traefik release (never hand-copied)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from .build import go_env
from .config import TRAEFIK_V2_VERSION, TRAEFIK_VERSION, InstanceConfig
from .kube import load_yaml_docs

DYNAMIC_CONFIG = Path("docs/content/reference/dynamic-configuration")


def module_dir(module: str, version: str) -> Path:
    """Download (or find in the module cache) a module version; return its source directory."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@v{version}"],
        capture_output=True,
        text=True,
        env=go_env(),
        check=False,
        cwd="/",
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"go mod download {module}@v{version} failed: {info.get('Error') or result.stderr}")
    return Path(info["Dir"])


def traefik_reference_dir(major: int = 3, version: str | None = None) -> Path:
    """The release's reference directory; ``version`` defaults to the pinned release of that major."""
    if major == 3:
        return module_dir("github.com/traefik/traefik/v3", version or TRAEFIK_VERSION) / DYNAMIC_CONFIG
    return module_dir("github.com/traefik/traefik/v2", version or TRAEFIK_V2_VERSION) / DYNAMIC_CONFIG


def crd_documents(mode: str, v3_version: str | None = None, v2_version: str | None = None) -> list[dict[str, Any]]:
    """The CRDs an instance installs (``v3_version``/``v2_version``: the releases to take them from,
    by default the pinned ones).

    - ``v3``: every CRD of the Traefik release the binary comes from (traefik.io only);
    - ``v2.11``: Traefik v2.11's CRDs, both traefik.io and traefik.containo.us, plus the traefik.io
      CRDs that only v3 has (Traefik v3 waits for all of its CRDs before it routes anything);
    - ``containo-only``: only the traefik.containo.us CRDs of v2.11 (a pre-2.10 style cluster).
    """
    v3 = load_yaml_docs(traefik_reference_dir(3, v3_version) / "kubernetes-crd-definition-v1.yml")
    if mode == "v3":
        return v3
    v2 = load_yaml_docs(traefik_reference_dir(2, v2_version) / "kubernetes-crd-definition-v1.yml")
    if mode == "containo-only":
        return [doc for doc in v2 if doc["spec"]["group"] == "traefik.containo.us"]
    if mode == "v2.11":
        names = {doc["metadata"]["name"] for doc in v2}
        return v2 + [doc for doc in v3 if doc["metadata"]["name"] not in names]
    raise ValueError(f"unknown CRD mode {mode!r}")


def instance_crd_documents(cfg: InstanceConfig) -> list[dict[str, Any]]:
    """The CRDs of ``cfg``: those of the release its Traefik comes from (``cfg.crd_version``)."""
    if cfg.traefik_major == 2:
        return crd_documents(cfg.crds, v2_version=cfg.crd_version)
    return crd_documents(cfg.crds, v3_version=cfg.crd_version)


def traefik_rbac_documents(major: int = 3, version: str | None = None) -> list[dict[str, Any]]:
    """The release's ClusterRole for the CRD provider, bound to the static-token user ``traefik``."""
    docs = load_yaml_docs(traefik_reference_dir(major, version) / "kubernetes-crd-rbac.yml")
    role = next(doc for doc in docs if doc["kind"] == "ClusterRole")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": role["metadata"]["name"]},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "traefik"}],
    }
    return [role, binding]
