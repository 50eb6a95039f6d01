"""What pytest fixtures need to find and describe a running instance (no pytest import here)."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .config import CLUSTER_DIR, REPO_ROOT, InstanceConfig
from .kube import Kube

UP = CLUSTER_DIR / "up"
DOWN = CLUSTER_DIR / "down"
# The second control plane some module tests need: only traefik.containo.us CRDs, no Traefik.
CONTAINO_STATE_DIR = REPO_ROOT / ".state" / "cluster-containo"
# DARKLAUNCH_CONTAINO_PORT_OFFSET moves it, so parallel sessions can each run their own.
CONTAINO_PORT_OFFSET = int(os.environ.get("DARKLAUNCH_CONTAINO_PORT_OFFSET") or 100)


@dataclass
class Cluster:
    """One running instance, as the tests see it."""

    kubeconfigs: dict[str, Path]
    env: dict[str, str]
    state_dir: Path | None = None
    config: InstanceConfig | None = None
    crds: str = "v3"
    operator_namespace: str = "shadow-ops"
    traefik_url: str | None = None
    traefik_api_url: str | None = None
    prometheus_url: str | None = None
    backends_url: str | None = None
    _clients: dict[str, Kube] = field(default_factory=dict, repr=False)

    def kube(self, user: str = "admin") -> Kube:
        """REST client authenticated as ``admin``, ``shadow-operator`` or ``viewer``."""
        if user not in self._clients:
            self._clients[user] = Kube.from_kubeconfig(self.kubeconfigs[user])
        return self._clients[user]

    @property
    def audit_log(self) -> Path | None:
        return self.config.audit_log if self.config else None


def parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


def cluster_from_env(env: dict[str, str]) -> Cluster:
    admin = Path(env["K8S_AUTH_KUBECONFIG"])
    state_dir = Path(env["DARKLAUNCH_STATE_DIR"]) if env.get("DARKLAUNCH_STATE_DIR") else admin.parent.parent
    config = InstanceConfig.load(state_dir)
    kubeconfigs = {"admin": admin}
    for user, key in (
        ("shadow-operator", "DARKLAUNCH_OPERATOR_KUBECONFIG"),
        ("viewer", "DARKLAUNCH_VIEWER_KUBECONFIG"),
    ):
        if env.get(key):
            kubeconfigs[user] = Path(env[key])
        elif config:
            kubeconfigs[user] = config.kubeconfig(user)
    return Cluster(
        kubeconfigs=kubeconfigs,
        env={
            key: value
            for key, value in env.items()
            if key == "K8S_AUTH_KUBECONFIG" or key.endswith("_URL") or key.startswith("DARKLAUNCH_")
        },
        state_dir=state_dir if config else None,
        config=config,
        crds=env.get("DARKLAUNCH_CRDS") or (config.crds if config else "v3"),
        operator_namespace=env.get("DARKLAUNCH_OPERATOR_NAMESPACE")
        or (config.operator_namespace if config else "shadow-ops"),
        traefik_url=env.get("TRAEFIK_URL"),
        traefik_api_url=env.get("TRAEFIK_API_URL"),
        prometheus_url=env.get("PROMETHEUS_URL"),
        backends_url=env.get("DARKLAUNCH_BACKENDS_URL")
        or (config.backends_url if config and config.backends else None),
    )


def run_up(*args: str) -> dict[str, str]:
    result = subprocess.run([str(UP), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tests/cluster/up {' '.join(args)} failed:\n{result.stderr}")
    return parse_exports(result.stdout)
