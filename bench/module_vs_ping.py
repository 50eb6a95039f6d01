#!/usr/bin/env python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: each module operation against Ansible's own floor, an ``ansible.builtin.ping`` task.

On the local cluster (``eval "$(tests/cluster/up)"`` first) one playbook runs ``--rounds`` rounds of:
ping, an idempotent ``traefik_mirror`` rerun, ping, a ``traefik_mirror`` ramp (20% <-> 50%, one write),
ping, ``traefik_traffic_info`` of the route. Ping and the operations alternate inside one play, so a busy
machine slows both alike. Task times are measured as ``ansible.posix.profile_tasks`` measures them (from a
task's start to the next one's, by bench/ansible_callbacks/bench_timing.py). Prints one markdown table of
medians and their ratio to the median ping.

    python bench/module_vs_ping.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(REPO_ROOT / "tests" / "cluster"),
    str(REPO_ROOT / "tests" / "integration"),
    str(REPO_ROOT / ".state" / "collections"),
]

from dlcluster.kube import Kube  # noqa: E402
from test_traefik_mirror_safety import build_static_world  # noqa: E402

OPERATIONS = ("traefik_mirror rerun", "traefik_mirror ramp", "traefik_traffic_info")


def playbook(world: Any, kubeconfig: str, rounds: int) -> list[dict[str, Any]]:
    mirror = {
        "route_name": world.route,
        "namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
    }
    tasks: list[dict[str, Any]] = [
        {"name": "setup: attach at 20%", "darklaunch.traefik.traefik_mirror": {**mirror, "mirror_percent": 20}}
    ]
    for number in range(rounds):
        ramp = 50 if number % 2 == 0 else 20
        tasks += [
            {"name": f"ping {number}a", "ansible.builtin.ping": {}},
            {
                "name": f"traefik_mirror rerun {number}",
                "darklaunch.traefik.traefik_mirror": {**mirror, "mirror_percent": 20 if ramp == 50 else 50},
            },
            {"name": f"ping {number}b", "ansible.builtin.ping": {}},
            {
                "name": f"traefik_mirror ramp {number}",
                "darklaunch.traefik.traefik_mirror": {**mirror, "mirror_percent": ramp},
            },
            {"name": f"ping {number}c", "ansible.builtin.ping": {}},
            {
                "name": f"traefik_traffic_info {number}",
                "darklaunch.traefik.traefik_traffic_info": {"namespace": world.namespace, "route_name": world.route},
            },
        ]
    tasks.append({"name": "teardown", "darklaunch.traefik.traefik_mirror": {**mirror, "state": "absent"}})
    return [
        {
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "module_defaults": {"group/darklaunch.traefik.traefik": {"kubeconfig": kubeconfig}},
            "tasks": tasks,
        }
    ]


def run(world: Any, kubeconfig: str, rounds: int, collections: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "bench.yml"
        book.write_text(yaml.safe_dump(playbook(world, kubeconfig, rounds), sort_keys=False))
        out = Path(tmp) / "timing.json"
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_CALLBACK_PLUGINS": str(REPO_ROOT / "bench" / "ansible_callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_timing",
            "BENCH_TIMING_OUT": str(out),
        }
        done = subprocess.run(["ansible-playbook", str(book)], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the playbook failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
        tasks: list[dict[str, Any]] = json.loads(out.read_text())["tasks"]
        return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--collections", type=Path, default=REPO_ROOT / ".state" / "collections", help="another version's root"
    )
    args = parser.parse_args()
    kubeconfig = os.environ.get("K8S_AUTH_KUBECONFIG")
    if not kubeconfig:
        raise SystemExit('start the local cluster first: eval "$(tests/cluster/up)"')
    world = build_static_world(Kube.from_kubeconfig(kubeconfig), f"bench-floor-{secrets.token_hex(3)}", "floor")
    tasks = run(world, kubeconfig, args.rounds, args.collections)
    times: dict[str, list[float]] = {"ping": []}
    for task in tasks:
        name = task["name"].rsplit(" ", 1)[0]
        if name in times or name in OPERATIONS:
            times.setdefault(name, []).append(task["end"] - task["start"])
    ping = statistics.median(times["ping"])
    print(f"| task ({args.rounds} rounds, medians) | seconds | / ping |")
    print("|---|---|---|")
    print(f"| ansible.builtin.ping | {ping:.3f} | 1.00 |")
    for name in OPERATIONS:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.3f} | {median / ping:.2f} |")


if __name__ == "__main__":
    main()
