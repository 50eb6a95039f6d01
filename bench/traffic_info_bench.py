#!/usr/bin/env python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: traefik_traffic_info and the traffic lookup against ``kubectl get ... -A -o json``.

Starts (or reuses) a control-plane-only instance of the local cluster, fills it with TraefikServices and
IngressRoutes across many namespaces (created in parallel), then times each reader as a separate process,
interleaved, several times: median wall time and peak RSS (``wait4`` rusage of the process and whatever
it waited for). See bench/README.md.

    python bench/traffic_info_bench.py                   # 5,000 TraefikServices + 2,500 IngressRoutes, 100 ns
    python bench/traffic_info_bench.py --keep --repeat 9 # leave the instance running afterwards
    python bench/traffic_info_bench.py --profile         # also cProfile one module run
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"
COLLECTIONS = REPO_ROOT / ".state" / "collections"
MODULE = REPO_ROOT / "plugins" / "modules" / "traefik_traffic_info.py"
API = "traefik.io/v1alpha1"
BUDGET = 1.5  # the module may take at most 1.5x kubectl's wall time

sys.path[:0] = [str(CLUSTER_DIR), str(Path(__file__).resolve().parent)]
from _bench_cluster import cluster_down, cluster_up, link_collection  # noqa: E402
from dlcluster.kube import Kube, KubeError  # noqa: E402

LOOKUP_SCRIPT = r"""
import json, sys
from ansible.plugins.loader import init_plugin_loader, lookup_loader
init_plugin_loader([sys.argv[1]])
(routes,) = lookup_loader.get("darklaunch.traefik.traffic").run(["routes"], variables={})
print(json.dumps({"mirrors": len(routes["mirrors"]), "weighted": len(routes["weighted"])}))
"""


# --- the instance and its objects ------------------------------------------------------------------


def objects(namespace: str, apps: int) -> list[dict[str, Any]]:
    """Per app: a 90/10 WRR, a mirror over its stable Service, and an IngressRoute to one of the two."""
    docs: list[dict[str, Any]] = []
    for index in range(apps):
        app = f"app-{index:03d}"
        meta = {"namespace": namespace, "labels": {"app": app, "bench": "traffic-info"}}
        docs.append(
            {
                "apiVersion": API,
                "kind": "TraefikService",
                "metadata": {"name": f"{app}-wrr", **meta},
                "spec": {
                    "weighted": {
                        "services": [
                            {"name": f"{app}-stable", "port": 80, "weight": 90},
                            {"name": f"{app}-canary", "port": 80, "weight": 10},
                        ]
                    }
                },
            }
        )
        docs.append(
            {
                "apiVersion": API,
                "kind": "TraefikService",
                "metadata": {"name": f"{app}-mirror", **meta},
                "spec": {
                    "mirroring": {
                        "name": f"{app}-stable",
                        "port": 80,
                        "mirrors": [{"name": f"{app}-staging", "port": 80, "percent": 5 + index % 20 * 5}],
                    }
                },
            }
        )
        target = f"{app}-mirror" if index % 2 == 0 else f"{app}-wrr"
        docs.append(
            {
                "apiVersion": API,
                "kind": "IngressRoute",
                "metadata": {"name": f"{app}-route", **meta},
                "spec": {
                    "entryPoints": ["web"],
                    "routes": [
                        {
                            "match": f"Host(`{app}.{namespace}.example.com`)",
                            "kind": "Rule",
                            "middlewares": [{"name": f"{app}-headers"}],
                            "services": [{"name": target, "kind": "TraefikService"}],
                        },
                        {
                            "match": f"Host(`{app}.{namespace}.example.com`) && PathPrefix(`/healthz`)",
                            "kind": "Rule",
                            "priority": 100,
                            "services": [{"name": f"{app}-stable", "port": 80}],
                        },
                    ],
                },
            }
        )
    return docs


def count(kube: Kube, plural: str) -> int:
    page = kube.request("GET", f"/apis/{API}/{plural}", query={"limit": "1"})
    return len(page.get("items") or []) + int((page.get("metadata") or {}).get("remainingItemCount") or 0)


def populate(kube: Kube, namespaces: int, apps: int, workers: int) -> float:
    """Create every namespace and object (an existing one is left as it is); returns the seconds taken."""
    started = time.perf_counter()
    if count(kube, "traefikservices") == 2 * namespaces * apps and count(kube, "ingressroutes") == namespaces * apps:
        return 0.0  # a kept instance from an earlier run
    names = [f"bench-{index:03d}" for index in range(namespaces)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(kube.ensure_namespace, names))
        docs = [doc for namespace in names for doc in objects(namespace, apps)]

        def create(doc: dict[str, Any]) -> None:
            try:
                kube.create(doc)
            except KubeError as err:
                if err.status != 409:
                    raise

        list(pool.map(create, docs))
    return time.perf_counter() - started


# --- measuring ---------------------------------------------------------------------------------------


@dataclass
class Reader:
    name: str
    how: str
    argv: list[str]
    env: dict[str, str]
    check: Callable[[str], str]  # stdout -> one-line proof of what was read (raises when wrong)
    wall: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    proof: str = ""


def run_once(reader: Reader, out_path: Path) -> tuple[float, int]:
    with out_path.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(reader.argv, stdout=out, stderr=subprocess.PIPE, env=reader.env)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.returncode != 0:
        raise RuntimeError(f"{reader.name} failed ({process.returncode}): {stderr[-2000:]}")
    return wall, int(usage.ru_maxrss)


def readers(kubeconfig: str, work: Path, expected: tuple[int, int], with_cli: bool) -> list[Reader]:
    env = dict(os.environ)
    env.update(
        {
            "K8S_AUTH_KUBECONFIG": kubeconfig,
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_HOME": env.get("ANSIBLE_HOME", str(REPO_ROOT / ".state" / "ansible-home")),  # not ~/.ansible
            "PYTHONPATH": os.pathsep.join(filter(None, [str(COLLECTIONS), env.get("PYTHONPATH")])),
        }
    )
    traefik_services = expected[0]
    args = work / "module-args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_check_mode": False, "_ansible_diff": False}}))

    def check_kubectl(stdout: str) -> str:
        items = json.loads(stdout)["items"]
        kinds = [item["kind"] for item in items]
        got = (kinds.count("TraefikService"), kinds.count("IngressRoute"))
        assert got == expected, f"kubectl returned {got}, expected {expected}"
        return f"{got[0]} TraefikServices + {got[1]} IngressRoutes"

    def check_module(stdout: str) -> str:
        result = json.loads(stdout.strip().splitlines()[-1])
        got = (len(result["mirrors"]) + len(result["weighted"]), len(result["ingress_routes"]))
        assert got == expected, f"the module returned {got}, expected {expected}"
        return f"{len(result['mirrors'])} mirrors + {len(result['weighted'])} weighted + {got[1]} ingress_routes"

    def check_lookup(stdout: str) -> str:
        counts = json.loads(stdout.strip().splitlines()[-1])
        assert counts["mirrors"] + counts["weighted"] == traefik_services, counts
        return f"{counts['mirrors']} mirrors + {counts['weighted']} weighted"

    def check_cli(stdout: str) -> str:
        assert f'"msg": {traefik_services}' in stdout, stdout[-500:]
        return f"{traefik_services} TraefikServices"

    cache = work / "kubectl-cache"
    found = [
        Reader(
            "kubectl",
            "kubectl get traefikservices,ingressroutes -A -o json",
            [
                "kubectl",
                "--kubeconfig",
                kubeconfig,
                "--cache-dir",
                str(cache),
                "get",
                "traefikservices,ingressroutes",
                "-A",
                "-o",
                "json",
            ],
            env,
            check_kubectl,
        ),
        Reader(
            "traefik_traffic_info",
            "module file run with an args JSON (as Ansible runs it), all namespaces",
            [sys.executable, str(MODULE), str(args)],
            env,
            check_module,
        ),
        Reader(
            "lookup (lookup_loader)",
            "python: lookup_loader.get('darklaunch.traefik.traffic').run(['routes']), all namespaces",
            [sys.executable, "-c", LOOKUP_SCRIPT, str(COLLECTIONS)],
            env,
            check_lookup,
        ),
    ]
    if with_cli:
        found.append(
            Reader(
                "lookup (ansible CLI)",
                "ansible localhost -m debug -a msg={{ lookup(..., 'routes', query='[mirrors, weighted][]') | length }} "
                "(includes Ansible's own startup)",
                [
                    "ansible",
                    "localhost",
                    "-m",
                    "ansible.builtin.debug",
                    "-a",
                    "msg={{ lookup('darklaunch.traefik.traffic', 'routes', query='[mirrors, weighted][]') | length }}",
                ],
                {
                    **env,
                    "ANSIBLE_LOCALHOST_WARNING": "0",
                    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
                    "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
                },
                check_cli,
            )
        )
    return found


def measure(found: Sequence[Reader], repeat: int, work: Path) -> None:
    for reader in found:  # warm-up (kubectl discovery cache, .pyc files) and proof of the answer
        out = work / "out.json"
        run_once(reader, out)
        reader.proof = reader.check(out.read_text())
    for _round in range(repeat):  # interleaved, so drifting machine load hits every reader alike
        for reader in found:
            wall, rss = run_once(reader, work / "out.json")
            reader.wall.append(wall)
            reader.rss_kib.append(rss)


def table(found: Sequence[Reader], repeat: int) -> str:
    base = found[0]
    base_wall = statistics.median(base.wall)
    base_rss = statistics.median(base.rss_kib)
    header = ("reader", "median s", "min s", "max s", "peak RSS MiB", "time x kubectl", "RSS x kubectl")
    rows = [header]
    for reader in found:
        wall = statistics.median(reader.wall)
        rss = statistics.median(reader.rss_kib)
        rows.append(
            (
                reader.name,
                f"{wall:.2f}",
                f"{min(reader.wall):.2f}",
                f"{max(reader.wall):.2f}",
                f"{max(reader.rss_kib) / 1024:.0f}",
                f"{wall / base_wall:.2f}",
                f"{rss / base_rss:.2f}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("")
    lines.append(f"{repeat} interleaved runs each after one warm-up; peak RSS is the largest of the runs.")
    for reader in found:
        lines.append(f"- {reader.name}: {reader.how}; read {reader.proof}")
    return "\n".join(lines)


def profile_module(env: dict[str, str], work: Path, top: int) -> str:
    stats_path = work / "module.prof"
    args = work / "module-args.json"
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(stats_path), str(MODULE), str(args)],
        env=env,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    report = work / "module.prof.txt"
    with report.open("w") as handle:
        stats = pstats.Stats(str(stats_path), stream=handle)
        stats.sort_stats("tottime").print_stats(top)
    return report.read_text()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default="/tmp/bench-cluster")
    parser.add_argument("--port-offset", type=int, default=600)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--apps", type=int, default=25, help="per namespace: 2 TraefikServices + 1 IngressRoute each")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8, help="parallel creates")
    parser.add_argument("--keep", action="store_true", help="leave the instance running (and its objects)")
    parser.add_argument("--no-ansible-cli", action="store_true", help="skip the `ansible localhost` lookup row")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one module run")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    options = parser.parse_args(argv)

    link_collection()
    started = time.perf_counter()
    env = cluster_up(options.state_dir, options.port_offset)
    print(f"instance {options.state_dir} up in {time.perf_counter() - started:.1f}s", flush=True)
    try:
        kubeconfig = env["K8S_AUTH_KUBECONFIG"]
        kube = Kube.from_kubeconfig(kubeconfig)
        expected = (2 * options.namespaces * options.apps, options.namespaces * options.apps)
        seconds = populate(kube, options.namespaces, options.apps, options.workers)
        print(
            f"{expected[0]} TraefikServices + {expected[1]} IngressRoutes in {options.namespaces} namespaces "
            f"ready in {seconds:.1f}s",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="traffic-info-bench-") as tmp:
            work = Path(tmp)
            found = readers(kubeconfig, work, expected, with_cli=not options.no_ansible_cli)
            measure(found, options.repeat, work)
            print()
            print(table(found, options.repeat))
            module_wall = statistics.median(found[1].wall)
            kubectl_wall = statistics.median(found[0].wall)
            verdict = "within" if module_wall <= BUDGET * kubectl_wall else "OVER"
            print(f"\ntraefik_traffic_info: {module_wall / kubectl_wall:.2f}x kubectl, {verdict} the {BUDGET}x budget")
            if options.json:
                options.json.write_text(
                    json.dumps(
                        {r.name: {"how": r.how, "wall_s": r.wall, "peak_rss_kib": r.rss_kib} for r in found}, indent=2
                    )
                )
            if options.profile:
                print("\n" + profile_module(found[1].env, work, 30))
    finally:
        if not options.keep:
            cluster_down(options.state_dir)
            print(f"instance {options.state_dir} stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
