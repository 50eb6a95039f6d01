"""RBAC of the test users: Traefik's provider, the read-only viewer and the namespaced operator."""

from __future__ import annotations

from typing import Any

from .config import OPERATOR_ROLE_FILE
from .crds import traefik_rbac_documents
from .kube import Kube, load_yaml_docs

RBAC = "rbac.authorization.k8s.io"
VIEWER_ROLE = "darklaunch-viewer"


def _user(name: str) -> dict[str, str]:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def viewer_documents() -> list[dict[str, Any]]:
    # The built-in `view` role is filled by the aggregation controller, which this
    # controller-manager-less cluster does not run; so the viewer gets an explicit role.
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": VIEWER_ROLE},
        "rules": [
            {"apiGroups": ["traefik.io", "traefik.containo.us"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
            {
                "apiGroups": [""],
                "resources": ["services", "namespaces", "endpoints", "configmaps"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
            {
                "apiGroups": ["apiextensions.k8s.io"],
                "resources": ["customresourcedefinitions"],
                "verbs": ["get", "list", "watch"],
            },
        ],
    }
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": VIEWER_ROLE},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": VIEWER_ROLE},
        "subjects": [_user("viewer")],
    }
    return [role, binding]


def operator_role() -> dict[str, Any]:
    """Exactly the Role the collection ships in docs/rbac/shadow-operator-role.yaml."""
    (role,) = load_yaml_docs(OPERATOR_ROLE_FILE)
    return role


def bind_operator(kube: Kube, namespace: str, user: str = "shadow-operator") -> None:
    """Install the shipped Role in ``namespace`` and bind it to ``user`` (idempotent)."""
    role = operator_role()
    kube.apply(role, namespace)
    kube.apply(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role["metadata"]["name"], "namespace": namespace},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role["metadata"]["name"]},
            "subjects": [_user(user)],
        }
    )


def install_cluster_rbac(
    kube: Kube, with_traefik: bool, traefik_major: int = 3, traefik_version: str | None = None
) -> None:
    kube.apply_all(viewer_documents())
    if with_traefik:
        kube.apply_all(traefik_rbac_documents(traefik_major, traefik_version))
