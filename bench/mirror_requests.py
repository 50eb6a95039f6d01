#!/usr/bin/env python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: API requests per traefik_mirror operation, in an empty namespace and in a crowded one.

Runs enable, attach, an idempotent rerun, a ramp, the launch's status (traefik_traffic_info with route_name)
and teardown on the local cluster (``eval "$(tests/cluster/up)"`` first) as a fresh user bound to the shipped
operator Role, and counts that user's requests in the apiserver's audit log (every request the Role is asked
about, refused ones included; the group discovery document is not audited). The crowded namespace also holds
``--services`` Services, ``--traefik-services`` TraefikServices and ``--ingress-routes`` IngressRoutes. Prints
one markdown table.

    python bench/mirror_requests.py
    python bench/mirror_requests.py --collections /tmp/old --role /tmp/old-role.yaml   # another version
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(REPO_ROOT / "tests" / "cluster"),
    str(REPO_ROOT / "tests" / "integration"),
    str(REPO_ROOT / ".state" / "collections"),
    str(REPO_ROOT / "bench"),
]

from _bench_cluster import filler_objects  # noqa: E402
from dlcluster.audit import AuditLog  # noqa: E402
from dlcluster.kube import Kube  # noqa: E402
from test_traefik_mirror_safety import build_static_world  # noqa: E402

RBAC = "rbac.authorization.k8s.io"
API = "traefik.io/v1alpha1"


def run_module(collections: Path, args: dict[str, Any], module_name: str = "traefik_mirror") -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=str(collections))
    module = (
        collections / "ansible_collections" / "darklaunch" / "traefik" / "plugins" / "modules" / f"{module_name}.py"
    )
    try:
        done = subprocess.run(
            [sys.executable, str(module), handle.name], capture_output=True, text=True, env=env, check=False
        )
    finally:
        os.unlink(handle.name)
    result: dict[str, Any] = json.loads(done.stdout)
    if result.get("failed"):
        raise SystemExit(f"{module_name} failed: {result.get('msg')}")
    return result


def crowd(
    kube: Kube, namespace: str, services: int, traefik_services: int, ingress_routes: int
) -> list[dict[str, Any]]:
    objects = filler_objects(namespace, services, traefik_services, ingress_routes)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda obj: kube.create(obj, namespace), objects))
    return objects


def uncrowd(kube: Kube, namespace: str, objects: list[dict[str, Any]]) -> None:
    """Remove the fillers: the cluster is shared, and a namespace is never deleted (see the tests' conftest)."""
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda obj: kube.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], namespace), objects
            )
        )


def bind_operator_role(kube: Kube, namespace: str, user: str, role_file: Path) -> None:
    (role,) = [doc for doc in yaml.safe_load_all(role_file.read_text()) if doc]
    role = copy.deepcopy(role)
    role["metadata"]["namespace"] = namespace
    kube.apply(role, namespace)
    name = role["metadata"]["name"]
    kube.apply(
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}],
        }
    )


OPERATIONS: dict[str, dict[str, Any]] = {
    "enable": {"mirror_percent": 20},
    "attach": {"mirror_percent": 20, "attach_to_ingress": True, "confirm_end_weighted_split": True},
    "rerun": {"mirror_percent": 20, "attach_to_ingress": True, "confirm_end_weighted_split": True},
    "rerun, api_group set": {
        "mirror_percent": 20,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        "api_group": "traefik.io",
    },
    "ramp": {"mirror_percent": 50, "attach_to_ingress": True, "confirm_end_weighted_split": True},
    # Status of the launch: traefik_traffic_info with route_name (the module's own options only).
    "status (traefik_traffic_info, route_name)": {"module": "traefik_traffic_info"},
    # As mirror_disable runs it: route_name only, so main_service / mirror_service take their default names.
    "teardown (route_name only)": {"state": "absent", "main_service": None, "mirror_service": None},
}
INFO_OPTIONS = ("route_name", "namespace", "kubeconfig", "impersonate_user")


def measure(
    kube: Kube, audit: AuditLog, collections: Path, role_file: Path, kubeconfig: str, extra: tuple[int, int, int]
) -> dict[str, tuple[int, int, Any]]:
    namespace = f"bench-req-{secrets.token_hex(3)}"
    world = build_static_world(kube, namespace, "bench")
    fillers = crowd(kube, namespace, *extra) if any(extra) else []
    try:
        return _count_requests(kube, audit, collections, role_file, kubeconfig, namespace, world)
    finally:
        uncrowd(kube, namespace, fillers)


def _count_requests(
    kube: Kube, audit: AuditLog, collections: Path, role_file: Path, kubeconfig: str, namespace: str, world: Any
) -> dict[str, tuple[int, int, Any]]:
    user = f"bench-{secrets.token_hex(4)}"
    bind_operator_role(kube, namespace, user, role_file)
    base = {
        "route_name": world.route,
        "namespace": namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "kubeconfig": kubeconfig,
        "impersonate_user": user,
    }
    counts: dict[str, tuple[int, int, Any]] = {}
    for name, options in OPERATIONS.items():
        mark = audit.mark()
        module_name = options.get("module", "traefik_mirror")
        if module_name == "traefik_mirror":
            result = run_module(collections, {**base, **options})
        else:
            result = run_module(collections, {key: base[key] for key in INFO_OPTIONS}, module_name)
        events = [e for e in audit.events_since(mark) if (e.get("impersonatedUser") or {}).get("username") == user]
        verbs = Counter("write" if e["verb"] in ("create", "patch", "update", "delete") else "read" for e in events)
        counts[name] = (verbs["read"], verbs["write"], result.get("changed"))
        if os.environ.get("BENCH_SHOW_REQUESTS"):
            for event in events:
                print(f"  {name}: {event['verb']} {event.get('requestURI', '')}", file=sys.stderr)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", type=Path, default=REPO_ROOT / ".state" / "collections")
    parser.add_argument("--role", type=Path, default=REPO_ROOT / "docs" / "rbac" / "shadow-operator-role.yaml")
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--traefik-services", type=int, default=1000)
    parser.add_argument("--ingress-routes", type=int, default=1000)
    args = parser.parse_args()
    kubeconfig = os.environ.get("K8S_AUTH_KUBECONFIG")
    state = os.environ.get("DARKLAUNCH_STATE_DIR")
    if not kubeconfig or not state:
        raise SystemExit('start the local cluster first: eval "$(tests/cluster/up)"')
    kube = Kube.from_kubeconfig(kubeconfig)
    audit = AuditLog(Path(state) / "logs" / "audit.log")
    extra = (args.services, args.traefik_services, args.ingress_routes)
    empty = measure(kube, audit, args.collections, args.role, kubeconfig, (0, 0, 0))
    crowded = measure(kube, audit, args.collections, args.role, kubeconfig, extra)
    size = f"+{extra[0]:,} Services, {extra[1]:,} TraefikServices, {extra[2]:,} IngressRoutes"
    print(f"| operation | empty namespace: reads / writes | {size}: reads / writes |")
    print("|---|---|---|")
    for name in OPERATIONS:
        (r0, w0, _c0), (r1, w1, _c1) = empty[name], crowded[name]
        print(f"| {name} | {r0} / {w0} | {r1} / {w1} |")


if __name__ == "__main__":
    main()
