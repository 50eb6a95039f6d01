"""What the benchmarks share: an instance of the local cluster (control plane only unless asked), the
checkout linked as an installed collection, and the filler objects that crowd a namespace.

Private to bench/ (the leading underscore): imported by the scripts beside it, never run on its own.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"
COLLECTIONS = REPO_ROOT / ".state" / "collections"
API = "traefik.io/v1alpha1"


def cluster_up(state_dir: str, port_offset: int, traefik: bool = False) -> dict[str, str]:
    """Start (or reuse) an instance without Traefik, which would rebuild its configuration on each of
    thousands of new objects; the modules only need the apiserver and the CRDs. ``traefik=True`` starts
    the whole instance instead (Traefik, Prometheus, the test backends). Returns its exports."""
    argv = [str(CLUSTER_DIR / "up"), "--state-dir", state_dir, "--port-offset", str(port_offset)]
    if not traefik:
        argv.append("--no-traefik")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{shlex.join(argv)} failed:\n{done.stderr}")
    env = {}
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            key, _sep, value = words[1].partition("=")
            env[key] = value
    return env


def cluster_down(state_dir: str) -> None:
    subprocess.run([str(CLUSTER_DIR / "down"), "--state-dir", state_dir], capture_output=True, check=False)


def link_collection() -> None:
    """tests/conftest.py does this for pytest: the repository as ansible_collections/darklaunch/traefik."""
    link = COLLECTIONS / "ansible_collections" / "darklaunch" / "traefik"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)


def filler_objects(namespace: str, services: int, traefik_services: int, ingress_routes: int) -> list[dict[str, Any]]:
    """Objects that crowd ``namespace`` without touching the benchmark's own route."""

    def service(i: int) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"filler-{i}", "namespace": namespace},
            # Headless: a ClusterIP each would exhaust the test cluster's service IP range (~256 addresses).
            "spec": {"clusterIP": "None", "ports": [{"port": 80}], "selector": {"app": f"filler-{i}"}},
        }

    def traefik_service(i: int) -> dict[str, Any]:
        spec = {"weighted": {"services": [{"name": f"filler-{i}", "port": 80, "weight": 1}]}}
        return {"apiVersion": API, "kind": "TraefikService", "metadata": {"name": f"filler-{i}"}, "spec": spec}

    def ingress_route(i: int) -> dict[str, Any]:
        route = {"match": f"Host(`filler-{i}.test`)", "kind": "Rule", "services": [{"name": f"filler-{i}", "port": 80}]}
        return {
            "apiVersion": API,
            "kind": "IngressRoute",
            "metadata": {"name": f"filler-{i}"},
            "spec": {"routes": [route]},
        }

    return (
        [service(i) for i in range(services)]
        + [traefik_service(i) for i in range(traefik_services)]
        + [ingress_route(i) for i in range(ingress_routes)]
    )
