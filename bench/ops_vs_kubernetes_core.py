#!/usr/bin/env python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: a shadow-launch cycle with traefik_mirror / traefik_traffic_info vs the kubernetes.core tasks
a user writes instead, as real ansible-playbook runs (issue 12).

The cycle: launch (mirror 20% and attach it to the IngressRoute), an idempotent rerun, ramp to 50%,
status, teardown (IngressRoute restored, mirror deleted). kubernetes.core does the same with ``k8s``
(the mirroring TraefikService), ``k8s_json_patch`` (the IngressRoute's service reference), ``k8s_info``
(status) and ``k8s state=absent`` + a JSON patch back (teardown). Both run alternately ``--runs`` times in
an empty namespace and in one with 8,000 more objects, on a control-plane-only instance of the local
cluster. Task times come from a timing callback (the same definition as ansible.posix.profile_tasks,
which is enabled too); API requests, discovery included, are counted by a TLS-terminating proxy in front
of the apiserver, in separate runs of each operation (``--tags``). Prints one markdown table.

    python bench/ops_vs_kubernetes_core.py                 # 5 runs of each cycle per namespace size
    python bench/ops_vs_kubernetes_core.py --runs 3 --keep # leave the instance (and its objects) running
    python bench/ops_vs_kubernetes_core.py --json /tmp/ops.json
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import yaml
from ansible import release as ansible_release

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"
COLLECTIONS = REPO_ROOT / ".state" / "collections"
BENCH_COLLECTIONS = REPO_ROOT / ".state" / "bench-collections"
WANTED_COLLECTIONS = ("kubernetes/core", "ansible/posix")

sys.path[:0] = [str(CLUSTER_DIR), str(BENCH_DIR)]
from _bench_cluster import cluster_down, cluster_up, filler_objects, link_collection  # noqa: E402
from _counting_proxy import CountingProxy, Request  # noqa: E402
from dlcluster.kube import Kube, KubeError  # noqa: E402
from dlcluster.world import manifests  # noqa: E402

API = "traefik.io/v1alpha1"
APP = "shop"
ROUTE = f"{APP}-route"
MIRROR = f"{ROUTE}-mirror"
WRR = f"{ROUTE}-wrr"
MAIN = f"{APP}-stable"
SHADOW = f"{APP}-staging"
PORTS = {"stable": 8081, "canary": 8082, "staging": 8083}  # the Services' only ports; nothing listens there
OPERATIONS = ("launch", "rerun", "ramp", "status", "teardown")
CYCLES = ("darklaunch", "kubernetes.core")
SIZES = {"empty": (0, 0, 0), "crowded": (4000, 2000, 2000)}  # Services, TraefikServices, IngressRoutes


# --- the instance, the collections, the namespaces --------------------------------------------------


def bundle_version() -> str:
    """The `ansible` package scripts/bootstrap takes community.general from (one pin for both)."""
    found = re.search(r"^ANSIBLE_BUNDLE_VERSION=(\S+)", (REPO_ROOT / "scripts" / "bootstrap").read_text(), re.M)
    if not found:
        sys.exit("ANSIBLE_BUNDLE_VERSION not found in scripts/bootstrap")
    return found.group(1)


def install_collections() -> None:
    """kubernetes.core and ansible.posix from the `ansible` wheel on PyPI, as scripts/bootstrap obtains
    community.general (Galaxy is out of reach), into .state/bench-collections, never ~/.ansible."""
    if all((BENCH_COLLECTIONS / "ansible_collections" / name).is_dir() for name in WANTED_COLLECTIONS):
        return
    version = bundle_version()
    print(f"kubernetes.core and ansible.posix from the ansible {version} wheel into {BENCH_COLLECTIONS}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-ansible-wheel-") as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps"]
        subprocess.run([*pip, "-d", tmp, f"ansible=={version}"], check=True)
        wheel = next(Path(tmp).glob("ansible-*.whl"))
        prefixes = tuple(f"ansible_collections/{name}/" for name in WANTED_COLLECTIONS)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(BENCH_COLLECTIONS, [name for name in archive.namelist() if name.startswith(prefixes)])


def count_in(kube: Kube, path: str) -> int:
    page = kube.request("GET", path, query={"limit": "1"})
    return len(page.get("items") or []) + int((page.get("metadata") or {}).get("remainingItemCount") or 0)


def prepare_namespace(kube: Kube, namespace: str, extra: tuple[int, int, int], workers: int) -> float:
    """The seed world plus the fillers; objects of a kept instance are reused. Returns the seconds spent
    creating fillers."""
    kube.ensure_namespace(namespace)
    kube.apply_all(world(namespace))
    # What an interrupted earlier run may have left: the mirror, and the route pointing at it (applying
    # the world again does not take back fields another field manager owns).
    if kube.get(API, "TraefikService", MIRROR, namespace) is not None:
        kube.delete(API, "TraefikService", MIRROR, namespace)
    route = original_route(namespace)
    if user_part(kube.get(API, "IngressRoute", ROUTE, namespace)) != user_part(route):
        kube.delete(API, "IngressRoute", ROUTE, namespace)
        kube.create(route, namespace)
    wanted = (
        extra[0] + len(PORTS),
        extra[1] + 1,
        extra[2] + 1,
    )
    have = (
        count_in(kube, f"/api/v1/namespaces/{namespace}/services"),
        count_in(kube, f"/apis/{API}/namespaces/{namespace}/traefikservices"),
        count_in(kube, f"/apis/{API}/namespaces/{namespace}/ingressroutes"),
    )
    if have == wanted:
        return 0.0
    started = time.perf_counter()

    def create(doc: dict[str, Any]) -> None:
        try:
            kube.create(doc, namespace)
        except KubeError as err:
            if err.status != 409:
                raise

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, filler_objects(namespace, *extra)))
    return time.perf_counter() - started


def world(namespace: str) -> list[dict[str, Any]]:
    """The seed world: 3 Services, a 50/50 weighted split of stable and canary, the IngressRoute to it."""
    docs: list[dict[str, Any]] = manifests(
        namespace, APP, ROUTE, f"{ROUTE}.{namespace}.test", PORTS, {"stable": 50, "canary": 50}
    )
    return docs


def original_route(namespace: str) -> dict[str, Any]:
    routes: list[dict[str, Any]] = [doc for doc in world(namespace) if doc["kind"] == "IngressRoute"]
    return routes[0]


def user_part(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a user wrote (spec, labels, annotations), without the server's bookkeeping."""
    if obj is None:
        return None
    meta = obj["metadata"]
    return {
        "spec": obj.get("spec"),
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
    }


@dataclass
class Snapshot:
    route: dict[str, Any] | None
    mirror: dict[str, Any] | None
    split: dict[str, Any] | None

    @classmethod
    def take(cls, kube: Kube, namespace: str) -> Snapshot:
        return cls(
            user_part(kube.get(API, "IngressRoute", ROUTE, namespace)),
            user_part(kube.get(API, "TraefikService", MIRROR, namespace)),
            user_part(kube.get(API, "TraefikService", WRR, namespace)),
        )

    def effects(self) -> tuple[Any, ...]:
        """What Traefik acts on: the route's and the mirror's specs (each tool adds its own metadata)."""
        return (
            (self.route or {}).get("spec"),
            (self.mirror or {}).get("spec"),
            (self.split or {}).get("spec"),
        )


# --- the two playbooks ---------------------------------------------------------------------------------


def mirror_definition(namespace: str, percent: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TraefikService",
        "metadata": {"name": MIRROR, "namespace": namespace},
        "spec": {
            "mirroring": {
                "kind": "Service",
                "name": MAIN,
                "port": PORTS["stable"],
                "mirrors": [{"kind": "Service", "name": SHADOW, "port": PORTS["staging"], "percent": percent}],
            }
        },
    }


def darklaunch_tasks(namespace: str) -> list[dict[str, Any]]:
    mirror = {
        "route_name": ROUTE,
        "namespace": namespace,
        "main_service": MAIN,
        "mirror_service": SHADOW,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
    }
    return [
        {
            "name": "launch: mirror 20% and attach",
            "darklaunch.traefik.traefik_mirror": {**mirror, "mirror_percent": 20},
        },
        {"name": "rerun: the same launch", "darklaunch.traefik.traefik_mirror": {**mirror, "mirror_percent": 20}},
        {"name": "ramp: 50%", "darklaunch.traefik.traefik_mirror": {**mirror, "mirror_percent": 50}},
        {
            "name": "status: the route's distribution",
            "darklaunch.traefik.traefik_traffic_info": {"namespace": namespace, "route_name": ROUTE},
        },
        {
            "name": "teardown: restore the route, delete the mirror",
            "darklaunch.traefik.traefik_mirror": {"route_name": ROUTE, "namespace": namespace, "state": "absent"},
        },
    ]


def kubernetes_core_tasks(namespace: str) -> list[dict[str, Any]]:
    """What a user writes with kubernetes.core for the same effects (they know the route's target)."""
    route = {"api_version": API, "kind": "IngressRoute", "name": ROUTE, "namespace": namespace}
    original = original_route(namespace)["spec"]["routes"][0]["services"][0]
    to_mirror = [
        {"op": "replace", "path": "/spec/routes/0/services/0", "value": {"name": MIRROR, "kind": "TraefikService"}}
    ]
    back = [{"op": "replace", "path": "/spec/routes/0/services/0", "value": original}]
    mirror_ref = {"api_version": API, "kind": "TraefikService", "name": MIRROR, "namespace": namespace}
    return [
        {
            "name": "launch: mirror TraefikService 20%",
            "kubernetes.core.k8s": {"definition": mirror_definition(namespace, 20)},
        },
        {
            "name": "launch: point the IngressRoute at the mirror",
            "kubernetes.core.k8s_json_patch": {**route, "patch": to_mirror},
        },
        {
            "name": "rerun: mirror TraefikService 20%",
            "kubernetes.core.k8s": {"definition": mirror_definition(namespace, 20)},
        },
        {
            "name": "rerun: point the IngressRoute at the mirror",
            "kubernetes.core.k8s_json_patch": {**route, "patch": to_mirror},
        },
        {
            "name": "ramp: mirror TraefikService 50%",
            "kubernetes.core.k8s": {"definition": mirror_definition(namespace, 50)},
        },
        {"name": "status: the mirror", "kubernetes.core.k8s_info": mirror_ref},
        {"name": "status: the IngressRoute", "kubernetes.core.k8s_info": route},
        {"name": "teardown: point the IngressRoute back", "kubernetes.core.k8s_json_patch": {**route, "patch": back}},
        {"name": "teardown: delete the mirror", "kubernetes.core.k8s": {**mirror_ref, "state": "absent"}},
    ]


def write_playbook(path: Path, tasks: list[dict[str, Any]]) -> None:
    pings = [
        # The first task of a play pays for things later tasks do not; the second ping is the floor.
        {"name": "warmup: ping", "ansible.builtin.ping": {}, "tags": ["floor"]},
        {"name": "floor: ping", "ansible.builtin.ping": {}, "tags": ["floor"]},
    ]
    tagged = [{**task, "tags": [task["name"].split(":", 1)[0]]} for task in tasks]
    play = {"name": path.stem, "hosts": "localhost", "gather_facts": False, "tasks": pings + tagged}
    path.write_text(yaml.safe_dump([play], sort_keys=False))


# --- running ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One ansible-playbook process: each task's seconds (by operation) and the process' wall time."""

    tasks: list[dict[str, Any]]
    wall: float

    def seconds(self, operation: str) -> float:
        return sum(float(t["end"] - t["start"]) for t in self.tasks if t["name"].split(":", 1)[0] == operation)

    def changed(self, operation: str) -> bool:
        return any(t["changed"] for t in self.tasks if t["name"].split(":", 1)[0] == operation)


@dataclass
class Playbooks:
    work: Path
    env: dict[str, str]
    paths: dict[str, Path] = field(default_factory=dict)
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def run(self, cycle: str, kubeconfig: Path, tags: str | None = None, label: str = "") -> Run:
        out = self.work / "timing.json"
        out.unlink(missing_ok=True)
        argv = [ansible_playbook(), "-i", str(self.work / "inventory.ini"), str(self.paths[cycle])]
        if tags:
            argv += ["--tags", tags]
        env = dict(self.env, K8S_AUTH_KUBECONFIG=str(kubeconfig), BENCH_TIMING_OUT=str(out))
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        log = self.logs / f"{label or 'run'}-{cycle}-{tags or 'all'}.log"
        log.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"{cycle} playbook failed ({done.returncode}); see {log}:\n{done.stdout[-3000:]}")
        timing = json.loads(out.read_text())
        return Run(timing["tasks"], wall)


def ansible_playbook() -> str:
    """The ansible-playbook next to this Python (a virtualenv that is not activated), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.is_file() else (shutil.which("ansible-playbook") or "ansible-playbook")


def ansible_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([str(COLLECTIONS), str(BENCH_COLLECTIONS)]),
            "ANSIBLE_HOME": str(REPO_ROOT / ".state" / "ansible-home"),  # never ~/.ansible
            "ANSIBLE_CALLBACK_PLUGINS": str(BENCH_DIR / "ansible_callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks,bench_timing",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            # kubernetes.core caches discovery in the temporary directory (k8srcp-*.json): keep it ours.
            "TMPDIR": str(work / "tmp"),
        }
    )
    for name in ("K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_CONTEXT", "DARKLAUNCH_STATE_DIR"):
        env.pop(name, None)
    (work / "tmp").mkdir(exist_ok=True)
    (work / "inventory.ini").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={shlex.quote(sys.executable)}\n"
    )
    return env


def proxied_kubeconfig(admin: Path, proxy_url: str, out: Path) -> Path:
    doc = yaml.safe_load(admin.read_text())
    doc["clusters"][0]["cluster"]["server"] = proxy_url
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    out.chmod(0o600)
    return out


@dataclass
class Counts:
    reads: int
    writes: int
    discovery: int
    requests: list[str]

    @classmethod
    def of(cls, seen: Sequence[Request]) -> Counts:
        return cls(
            reads=sum(not r.is_write for r in seen),
            writes=sum(r.is_write for r in seen),
            discovery=sum(r.is_discovery for r in seen),
            requests=[str(r) for r in seen],
        )

    def cell(self) -> str:
        reads = f"{self.reads} ({self.discovery} disc.)" if self.discovery else str(self.reads)
        return f"{reads} / {self.writes}"


def sum_counts(counts: Sequence[Counts]) -> Counts:
    return Counts(
        sum(c.reads for c in counts),
        sum(c.writes for c in counts),
        sum(c.discovery for c in counts),
        [r for c in counts for r in c.requests],
    )


def count_requests(
    playbooks: Playbooks, proxy: CountingProxy, kubeconfig: Path, kube: Kube, namespace: str, cycle: str, label: str
) -> tuple[dict[str, Counts], dict[str, Snapshot], dict[str, bool]]:
    """Each operation as its own ansible-playbook run through the proxy; the cluster after each one."""
    counts: dict[str, Counts] = {}
    snapshots: dict[str, Snapshot] = {"before": Snapshot.take(kube, namespace)}
    changed: dict[str, bool] = {}
    proxy.take()
    for operation in OPERATIONS:
        run = playbooks.run(cycle, kubeconfig, tags=operation, label=label)
        counts[operation] = Counts.of(proxy.take())
        snapshots[operation] = Snapshot.take(kube, namespace)
        changed[operation] = run.changed(operation)
    return counts, snapshots, changed


def compare_effects(namespace: str, snapshots: dict[str, dict[str, Snapshot]]) -> list[str]:
    """Both cycles must have the same effects after every operation, and restore the route exactly."""
    problems = []
    ours, theirs = snapshots["darklaunch"], snapshots["kubernetes.core"]
    for operation in ("before", *OPERATIONS):
        if ours[operation].effects() != theirs[operation].effects():
            problems.append(
                f"{namespace}: after {operation} the cycles differ:\n"
                f"  darklaunch:      {json.dumps(ours[operation].effects())}\n"
                f"  kubernetes.core: {json.dumps(theirs[operation].effects())}"
            )
    for cycle, seen in snapshots.items():
        if seen["teardown"].route != seen["before"].route or seen["teardown"].mirror is not None:
            problems.append(
                f"{namespace}: {cycle} did not restore the IngressRoute exactly or left the mirror: "
                f"{json.dumps(seen['teardown'].route)} / mirror {json.dumps(seen['teardown'].mirror)}"
            )
        if seen["launch"].mirror is None or seen["ramp"].mirror is None:
            problems.append(f"{namespace}: {cycle} did not create the mirror")
    return problems


def check_restored(kube: Kube, namespace: str, before: Snapshot, cycle: str) -> None:
    after = Snapshot.take(kube, namespace)
    if after.route != before.route or after.mirror is not None:
        raise SystemExit(f"{namespace}: {cycle} left the cluster changed: {after}")


# --- the table --------------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def size_rows(size: str, timings: dict[str, list[Run]], counts: dict[str, dict[str, Counts]]) -> list[str]:
    """One size's rows: each operation, the full cycle, the whole process and the ping floor."""
    ping = median([run.seconds("floor") for runs in timings.values() for run in runs])
    rows: list[tuple[str, dict[str, float], dict[str, Counts] | None]] = []
    for operation in OPERATIONS:
        seconds = {cycle: median([run.seconds(operation) for run in timings[cycle]]) for cycle in CYCLES}
        rows.append((operation, seconds, {cycle: counts[cycle][operation] for cycle in CYCLES}))
    cycle_seconds = {
        cycle: median([sum(run.seconds(op) for op in OPERATIONS) for run in timings[cycle]]) for cycle in CYCLES
    }
    cycle_counts = {cycle: sum_counts([counts[cycle][op] for op in OPERATIONS]) for cycle in CYCLES}
    rows.append(("full cycle (5 operations)", cycle_seconds, cycle_counts))
    rows.append(("whole ansible-playbook run", {c: median([run.wall for run in timings[c]]) for c in CYCLES}, None))
    rows.append(
        ("ansible.builtin.ping (floor)", {c: median([r.seconds("floor") for r in timings[c]]) for c in CYCLES}, None)
    )
    lines = []
    for name, seconds, requests in rows:
        ours, theirs = seconds["darklaunch"], seconds["kubernetes.core"]
        ours_requests = requests["darklaunch"].cell() if requests else ""
        their_requests = requests["kubernetes.core"].cell() if requests else ""
        lines.append(
            f"| {name} | {size} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} "
            f"| {ours_requests} | {their_requests} | {ours / ping:.1f} | {theirs / ping:.1f} |"
        )
    return lines


def table(results: dict[str, Any]) -> str:
    lines = [
        "| operation | namespace | darklaunch s | kubernetes.core s | darklaunch / k.core "
        "| darklaunch reads / writes | k.core reads / writes | darklaunch / ping | k.core / ping |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, data in results["sizes"].items():
        lines += size_rows(size, data["runs"], data["counts"])
    return "\n".join(lines)


def machine() -> str:
    cpus = os.cpu_count()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.machine()}, {cpus} CPUs, load average {load}; Python {platform.python_version()}, "
        f"ansible-core {ansible_release.__version__}, kubernetes client {kubernetes.__version__}, "
        + ", ".join(f"{name.replace('/', '.')} {collection_version(name)}" for name in WANTED_COLLECTIONS)
    )


def code_version() -> str:
    """The commit measured and a fingerprint of plugins/ as it is on disk (the bench runs the working tree)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "plugins"], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "plugins").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    changed = len(dirty.stdout.splitlines())
    local = f" + {changed} uncommitted changes in plugins/" if changed else ""
    return f"{head.stdout.strip() or '?'}{local} (plugins/*.py sha256 {digest.hexdigest()[:12]})"


def collection_version(name: str) -> str:
    manifest = BENCH_COLLECTIONS / "ansible_collections" / name / "MANIFEST.json"
    return str(json.loads(manifest.read_text())["collection_info"]["version"])


# --- main ----------------------------------------------------------------------------------------------------


@dataclass
class Bench:
    kube: Kube
    admin: Path  # the admin kubeconfig, straight to the apiserver (timed runs)
    proxied: Path  # the same, through the counting proxy (counted runs)
    proxy: CountingProxy
    playbooks: Playbooks
    runs: int
    workers: int
    cold: dict[str, dict[str, Counts]] = field(default_factory=dict)


def measure_size(bench: Bench, size: str) -> tuple[dict[str, Any], list[str]]:
    namespace = f"ops-{size}"
    extra = SIZES[size]
    seconds = prepare_namespace(bench.kube, namespace, extra, bench.workers)
    print(
        f"namespace {namespace}: +{extra[0]:,} Services, {extra[1]:,} TraefikServices, "
        f"{extra[2]:,} IngressRoutes (created in {seconds:.0f}s)",
        flush=True,
    )
    work = bench.playbooks.work
    bench.playbooks.paths = {
        "darklaunch": work / f"darklaunch-{size}.yml",
        "kubernetes.core": work / f"k-core-{size}.yml",
    }
    write_playbook(bench.playbooks.paths["darklaunch"], darklaunch_tasks(namespace))
    write_playbook(bench.playbooks.paths["kubernetes.core"], kubernetes_core_tasks(namespace))
    before = Snapshot.take(bench.kube, namespace)
    if before.route is None:
        raise SystemExit(f"{namespace}: the IngressRoute is missing")

    # Requests, and the effects of each operation, through the counting proxy. The first pass of the
    # bench is cold (kubernetes.core's discovery cache is empty) and reported apart; the counted one is warm.
    counts: dict[str, dict[str, Counts]] = {}
    snapshots: dict[str, dict[str, Snapshot]] = {}
    changed: dict[str, dict[str, bool]] = {}
    for cycle in CYCLES:
        args = (bench.playbooks, bench.proxy, bench.proxied, bench.kube, namespace, cycle)
        if cycle not in bench.cold:
            bench.cold[cycle], _snapshots, _changed = count_requests(*args, f"{size}-cold")
        counts[cycle], snapshots[cycle], changed[cycle] = count_requests(*args, f"{size}-count")
    problems = compare_effects(namespace, snapshots)
    if changed["darklaunch"]["rerun"]:
        problems.append(f"{namespace}: the darklaunch rerun reported changed")
    print(f"  requests counted; changed: {json.dumps(changed)}", flush=True)

    # Timed: whole playbooks, alternately (the order flips each round), after one warm-up round.
    timings: dict[str, list[Run]] = {cycle: [] for cycle in CYCLES}
    for round_number in range(bench.runs + 1):
        order = CYCLES if round_number % 2 == 0 else tuple(reversed(CYCLES))
        for cycle in order:
            run = bench.playbooks.run(cycle, bench.admin, label=f"{size}-timed")
            check_restored(bench.kube, namespace, before, cycle)
            if round_number:
                timings[cycle].append(run)
        print(f"  round {round_number}/{bench.runs} done", flush=True)
    return {"counts": counts, "runs": timings, "changed": changed, "extra": extra}, problems


def report(results: dict[str, Any], problems: list[str]) -> None:
    print()
    print(table(results))
    print()
    print(f"{results['runs']} timed runs of each cycle per size, alternating, after one warm-up round.")
    print(f"code: {results['code']}")
    if results["code_after"] != results["code"]:
        print(f"WARNING: plugins/ changed during the run ({results['code_after']}): the numbers mix versions")
    print(f"machine before: {results['machine']}")
    print(f"machine after:  {results['machine_after']}")
    for cycle, by_operation in results["cold_counts"].items():
        total = sum_counts(list(by_operation.values()))
        print(f"first (cold) {cycle} cycle of this bench: {total.cell()} requests")
    print("state check: " + ("both cycles had the same effects after every operation" if not problems else ""))
    for problem in problems:
        print("  " + problem)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default="/tmp/bench-ops")
    parser.add_argument("--port-offset", type=int, default=700)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each cycle per namespace size")
    parser.add_argument("--workers", type=int, default=8, help="parallel creates of the filler objects")
    parser.add_argument("--sizes", default=",".join(SIZES), help="namespace sizes to measure: empty,crowded")
    parser.add_argument("--keep", action="store_true", help="leave the instance (and its objects) running")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    options = parser.parse_args(argv)
    sizes = [size.strip() for size in options.sizes.split(",") if size.strip()]
    if unknown := [size for size in sizes if size not in SIZES]:
        parser.error(f"--sizes: unknown {unknown}; choose from {list(SIZES)}")

    link_collection()
    install_collections()
    results: dict[str, Any] = {"machine": machine(), "code": code_version(), "runs": options.runs, "sizes": {}}
    started = time.perf_counter()
    env = cluster_up(options.state_dir, options.port_offset)
    print(f"instance {options.state_dir} up in {time.perf_counter() - started:.1f}s", flush=True)
    problems: list[str] = []
    try:
        admin = Path(env["K8S_AUTH_KUBECONFIG"])
        kube = Kube.from_kubeconfig(admin)
        pki = Path(options.state_dir) / "pki"
        work = Path(options.state_dir) / "bench-ops-work"
        work.mkdir(exist_ok=True)
        proxy = CountingProxy(kube.server, pki / "apiserver.crt", pki / "apiserver.key", pki / "ca.crt")
        # One proxy (one address) for the whole run: kubernetes.core keys its discovery cache by server.
        with proxy.running():
            proxied = proxied_kubeconfig(admin, proxy.url, work / "proxied.kubeconfig")
            bench = Bench(
                kube, admin, proxied, proxy, Playbooks(work, ansible_env(work)), options.runs, options.workers
            )
            for size in sizes:
                results["sizes"][size], found = measure_size(bench, size)
                problems += found
        results["cold_counts"] = bench.cold
        results["machine_after"] = machine()
        results["code_after"] = code_version()
        report(results, problems)
        if options.json:
            options.json.write_text(json.dumps(raw(results), indent=2))
    finally:
        if not options.keep:
            cluster_down(options.state_dir)
            print(f"instance {options.state_dir} stopped")
    return 1 if problems else 0


def raw(results: dict[str, Any]) -> dict[str, Any]:
    """The results as plain JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, Run):
            return {"wall_s": value.wall, "tasks": value.tasks}
        if isinstance(value, Counts):
            return copy.deepcopy(value.__dict__)
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return {"tool": "bench/ops_vs_kubernetes_core.py", **plain(results)}


if __name__ == "__main__":
    sys.exit(main())
