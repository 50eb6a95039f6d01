#!/usr/bin/env python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the shadow_launch role's check-to-check overhead, before and after the launch engine.

Before (``--before-ref``, default 81e0cb2) the role ran every check of the anomaly gate as about twelve
Ansible tasks (roles/shadow_launch/tasks/gate_check.yml); after (this checkout, as it is on disk) the
``darklaunch.traefik.shadow_launch`` action runs the whole launch in one task. Both print one line per
check ("50% step, 12/20 s, check 3/20: ok | shadow ... | main ..."). Both run side by side, alternately,
as ``ansible-playbook <collection>/playbooks/shadow_launch.yml`` against a full local cluster (apiserver,
Traefik, Prometheus, test backends) with steady user traffic through Traefik; each check line is stamped
with ``time.monotonic()`` as ansible-playbook prints it. With a 1 s interval a check that takes longer than
the interval is overdue when the previous one ends, so the gap between two consecutive check lines is the
check's whole cost; the overhead beyond the interval is gap - interval. A check that takes less than the
interval waits for its due time, so its gap is the interval: the "check" columns time each check from
when it could start (its due time after the step's start, or the previous check's line if later) to its
line. Prints one markdown table; with --keep the playbooks' output stays in <state dir>/bench-overhead-logs.

    python bench/check_overhead.py                      # 2 runs per side, 20 s bake, 40 user req/s
    python bench/check_overhead.py --repeat 4 --json /tmp/overhead.json
    python bench/check_overhead.py --keep               # leave the instance running for a rerun
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from ansible import release as ansible_release

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
CLUSTER_DIR = REPO_ROOT / "tests" / "cluster"

sys.path[:0] = [str(CLUSTER_DIR), str(BENCH_DIR), str(REPO_ROOT / "tests" / "integration")]
from _bench_cluster import COLLECTIONS, cluster_down, cluster_up, link_collection  # noqa: E402
from dlcluster import traefik as traefik_api  # noqa: E402
from dlcluster.backends import BackendsClient  # noqa: E402
from dlcluster.kube import Kube  # noqa: E402
from dlcluster.traffic import send  # noqa: E402
from dlcluster.world import SeedWorld, create_world, remove_world_backends  # noqa: E402
from steady import SteadyTraffic  # noqa: E402

API = "traefik.io/v1alpha1"
APP = "overhead"
SIDES = ("before", "after")
# "50% step, 12/20 s, check 3/20: ok | ..."; the old role prints it inside a debug task's "msg": "...".
CHECK_LINE = re.compile(r"(\d+)% step, (\d+)/(\d+) s, check (\d+)/(\d+): (\w+)")
# The line about users once the mirror is attached, just before the step's clock starts (both versions).
STEP_MARK = re.compile(r"\bBefore: ")
TAIL_LINES = 40


# --- the two collections -------------------------------------------------------------------------------


@dataclass
class Side:
    name: str  # before / after
    root: Path  # the collection's files (a worktree of --before-ref, or this checkout)
    collections: Path  # the ANSIBLE_COLLECTIONS_PATH holding ansible_collections/darklaunch/traefik -> root
    code: str


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO_ROOT, check=False)


def add_worktree(path: Path, ref: str) -> str:
    """A detached worktree of ``ref`` at ``path`` (one an interrupted run left there is replaced)."""
    remove_worktree(path)
    done = git("worktree", "add", "--detach", str(path), ref)
    if done.returncode != 0:
        sys.exit(f"git worktree add --detach {path} {ref} failed:\n{done.stderr}")
    return git("-C", str(path), "rev-parse", "--short", "HEAD").stdout.strip()


def remove_worktree(path: Path) -> None:
    if path.exists():
        git("worktree", "remove", "--force", str(path))
    git("worktree", "prune")


def collections_dir(path: Path, root: Path) -> Path:
    """``path``/ansible_collections/darklaunch/traefik, a symlink to ``root``."""
    link = path / "ansible_collections" / "darklaunch" / "traefik"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(root, target_is_directory=True)
    return path


def code_version() -> str:
    """The commit measured and a fingerprint of plugins/ and roles/ as they are on disk."""
    head = git("rev-parse", "--short", "HEAD").stdout.strip() or "?"
    dirty = len(git("status", "--porcelain", "plugins", "roles", "playbooks").stdout.splitlines())
    digest = hashlib.sha256()
    for top in ("plugins", "roles", "playbooks"):
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    local = f" + {dirty} uncommitted changes in plugins/, roles/, playbooks/" if dirty else ""
    return f"{head}{local} (sha256 {digest.hexdigest()[:12]})"


# --- the world and its traffic ---------------------------------------------------------------------------


def wait_routable(env: dict[str, str], world: SeedWorld, timeout: float = 60.0) -> None:
    """Until Traefik has a router for the world's IngressRoute and a probe through it answers 200 (what
    tests/integration/conftest.py's seed_world waits for)."""
    prefix = f"{world.namespace}-{world.route}-"
    traefik_api.wait_for_api_object(
        env["TRAEFIK_API_URL"],
        "routers",
        lambda r: (
            r.get("provider") == "kubernetescrd" and r["name"].startswith(prefix) and r.get("status") == "enabled"
        ),
        f"an enabled router for IngressRoute {world.namespace}/{world.route}",
        timeout,
    )
    deadline = time.monotonic() + timeout
    while send(env["TRAEFIK_URL"], world.host, 1, path="/__darklaunch_probe").statuses != [200]:
        if time.monotonic() > deadline:
            raise SystemExit(f"route {world.host} does not answer 200 after {timeout:.0f}s")
        time.sleep(0.1)


def check_restored(kube: Kube, world: SeedWorld) -> str | None:
    """What is wrong with the world after a run with teardown: the route back on the split, no mirror."""
    route = kube.get(API, "IngressRoute", world.route, world.namespace) or {}
    targets = [s["name"] for r in (route.get("spec") or {}).get("routes") or [] for s in r.get("services") or []]
    if targets != [world.wrr]:
        return f"the IngressRoute targets {targets}, not [{world.wrr}]"
    if kube.get(API, "TraefikService", f"{world.route}-mirror", world.namespace) is not None:
        return f"the mirror {world.route}-mirror is still there"
    return None


# --- one run -------------------------------------------------------------------------------------------------


@dataclass
class Check:
    at: float  # time.monotonic() when ansible-playbook printed the line
    percent: int
    elapsed: int
    number: int
    of: int
    verdict: str


@dataclass
class Run:
    side: str
    round: int
    returncode: int
    wall: float
    checks: list[Check] = field(default_factory=list)
    step_mark: float | None = None  # when the line about users was printed: the step starts right after
    log: str = ""

    def gaps(self) -> list[float]:
        """Seconds between consecutive check lines of the same step."""
        return [b.at - a.at for a, b in pairwise(self.checks) if a.percent == b.percent]

    def check_times(self, interval: int, bake: int) -> list[float]:
        """Each check's own time (from the second check of a step on): from when it could start to its line.
        It starts when it is due (``min(n * interval, bake)`` after the step's start, taken as the line
        about users, which comes one write before the step's clock starts: an upper bound by that write)
        or when the previous check's line was printed, whichever is later. For a check that is overdue
        this is the gap; for one that waited for its due time it is what the gap at the interval hides."""
        times = []
        for a, b in pairwise(self.checks):
            if a.percent != b.percent:
                continue
            due = self.step_mark + min(b.number * interval, bake) if self.step_mark is not None else a.at
            times.append(b.at - max(a.at, due))
        return times


def ansible_playbook() -> str:
    """The ansible-playbook next to this Python (a virtualenv that is not activated), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.is_file() else (shutil.which("ansible-playbook") or "ansible-playbook")


def playbook_env(cluster: dict[str, str], side: Side) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_CONTEXT", "ANSIBLE_CONFIG", "ANSIBLE_FORCE_COLOR"):
        env.pop(name, None)
    env.update(cluster)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": str(side.collections),
            "ANSIBLE_HOME": str(REPO_ROOT / ".state" / "ansible-home"),  # never ~/.ansible
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_playbook(side: Side, round_number: int, extra_vars: dict[str, Any], env: dict[str, str], timeout: float) -> Run:
    """ansible-playbook, its output read line by line as it is printed; each check line stamped."""
    argv = [ansible_playbook(), str(side.root / "playbooks" / "shadow_launch.yml"), "-e", json.dumps(extra_vars)]
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        env=env,
        cwd=side.root,
    )
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    run = Run(side.name, round_number, 0, 0.0)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, ""):
            now = time.monotonic()
            lines.append(line)
            if run.step_mark is None and STEP_MARK.search(line):
                run.step_mark = now
            found = CHECK_LINE.search(line)
            if found:
                percent, elapsed, _bake, number, of = (int(found.group(n)) for n in range(1, 6))
                run.checks.append(Check(now, percent, elapsed, number, of, found.group(6)))
        run.returncode = process.wait()
    finally:
        killer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    run.wall = time.monotonic() - started
    run.log = "".join(lines)
    return run


def launch_vars(world: SeedWorld, options: argparse.Namespace, prometheus_url: str) -> dict[str, Any]:
    return {
        "route_name": world.route,
        "route_namespace": world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "steps": [50],
        "bake_seconds": options.bake,
        "interval": options.interval,
        "window": f"{options.window}s",
        "history_windows": options.history_windows,
        "min_requests": 20,
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        "prometheus_url": prometheus_url,
        "teardown": True,
        "watchdog": False,
        "report": False,
        # No check may end a run early: a quiet or inconclusive check (fail_on_insufficient_data, the
        # engine's inconclusive_limit, 3 by default; the old role had none) or a false alarm at sigma 2.
        "fail_on_insufficient_data": False,
        "inconclusive_limit": 0,
        "failure_limit": 1000,
    }


# --- the table -------------------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(runs: Sequence[Run], interval: int, bake: int) -> dict[str, Any]:
    gaps = [gap for run in runs for gap in run.gaps()]
    overheads = [gap - interval for gap in gaps]
    check_times = [t for run in runs for t in run.check_times(interval, bake)]
    return {
        "runs": len(runs),
        "failed_runs": sum(run.returncode != 0 for run in runs),
        "checks_per_run": [len(run.checks) for run in runs],
        "gaps": len(gaps),
        "median_gap_s": median(gaps),
        "p90_gap_s": quantile(gaps, 0.9),
        "max_gap_s": max(gaps, default=float("nan")),
        "median_overhead_s": median(overheads),
        "p90_overhead_s": quantile(overheads, 0.9),
        "median_check_s": median(check_times),
        "p90_check_s": quantile(check_times, 0.9),
        "step_mark_seen": all(run.step_mark is not None for run in runs),
        # A gap within 0.1 s of the interval: the check fitted in the interval and waited for its due time,
        # so the gap is the interval, an upper bound of the check's cost rather than the cost itself.
        "gaps_at_interval": sum(gap < interval + 0.1 for gap in gaps),
        "median_wall_s": median([run.wall for run in runs]),
        "verdicts": dict(Counter(check.verdict for run in runs for check in run.checks)),
    }


def ratio(old: float, new: float) -> str:
    if math.isnan(old) or math.isnan(new) or new <= 0.005:
        return "n/a"
    return f"{old / new:.1f}"


def table(sides: dict[str, Side], summaries: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| side | code | runs | checks per run | gaps | median gap s | p90 gap s | max gap s "
        "| median overhead s | gaps at the interval | median check s | p90 check s | whole run s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SIDES:
        s = summaries[name]
        checks = ", ".join(str(n) for n in s["checks_per_run"])
        lines.append(
            f"| {name} | {sides[name].code} | {s['runs']} | {checks} | {s['gaps']} | {s['median_gap_s']:.2f} "
            f"| {s['p90_gap_s']:.2f} | {s['max_gap_s']:.2f} | {s['median_overhead_s']:+.2f} "
            f"| {s['gaps_at_interval']}/{s['gaps']} | {s['median_check_s']:.2f} | {s['p90_check_s']:.2f} "
            f"| {s['median_wall_s']:.1f} |"
        )
    old, new = summaries["before"], summaries["after"]
    lines.append(
        f"| before / after | | | | | {ratio(old['median_gap_s'], new['median_gap_s'])} "
        f"| {ratio(old['p90_gap_s'], new['p90_gap_s'])} | {ratio(old['max_gap_s'], new['max_gap_s'])} "
        f"| {ratio(old['median_overhead_s'], new['median_overhead_s'])} | "
        f"| {ratio(old['median_check_s'], new['median_check_s'])} | {ratio(old['p90_check_s'], new['p90_check_s'])} "
        f"| {ratio(old['median_wall_s'], new['median_wall_s'])} |"
    )
    return "\n".join(lines)


def machine() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load}; Python {platform.python_version()}, "
        f"ansible-core {ansible_release.__version__}"
    )


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "".join(text.splitlines(keepends=True)[-lines:])


# --- main ----------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default="/tmp/bench-overhead-cluster")
    parser.add_argument("--port-offset", type=int, default=500)
    parser.add_argument("--before-ref", default="81e0cb2", help="the commit of the role with Jinja checks")
    parser.add_argument("--worktree", type=Path, default=Path("/tmp/bench-overhead-old"), help="its worktree")
    parser.add_argument("--repeat", type=int, default=2, help="runs per side, alternating")
    parser.add_argument("--bake", type=int, default=20, help="bake_seconds of the one 50%% step")
    parser.add_argument("--interval", type=int, default=1, help="seconds between checks (at least 1)")
    parser.add_argument("--window", type=int, default=10, help="the gate's window, seconds")
    parser.add_argument("--history-windows", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0, help="user requests per second through Traefik")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a run is killed")
    parser.add_argument("--keep", action="store_true", help="leave the instance running")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    options = parser.parse_args(argv)
    if options.interval < 1 or options.repeat < 1:
        parser.error("--interval and --repeat must be at least 1")

    link_collection()
    old_collections = Path(f"{options.worktree}-collections")
    started = time.monotonic()
    cluster = cluster_up(options.state_dir, options.port_offset, traefik=True)
    print(f"instance {options.state_dir} up in {time.monotonic() - started:.1f}s", flush=True)
    load: SteadyTraffic | None = None
    backends: BackendsClient | None = None
    world: SeedWorld | None = None
    problems: list[str] = []
    try:
        before_code = add_worktree(options.worktree, options.before_ref)
        sides = {
            "before": Side("before", options.worktree, collections_dir(old_collections, options.worktree), before_code),
            "after": Side("after", REPO_ROOT, COLLECTIONS, code_version()),
        }
        kube = Kube.from_kubeconfig(Path(cluster["K8S_AUTH_KUBECONFIG"]))
        backends = BackendsClient(cluster["DARKLAUNCH_BACKENDS_URL"])
        namespace = f"bench-overhead-{secrets.token_hex(3)}"
        world = create_world(kube, backends, namespace, APP)
        wait_routable(cluster, world)
        world.reset_backends()
        load = SteadyTraffic(cluster["TRAEFIK_URL"], world.host, options.rate, limit=24 * 3600).start()
        warmup = options.window * options.history_windows
        print(f"world {namespace}/{world.route}, {options.rate:g} user req/s; {warmup}s of history first", flush=True)
        time.sleep(warmup)

        extra_vars = launch_vars(world, options, cluster["PROMETHEUS_URL"])
        logs = Path(options.state_dir) / "bench-overhead-logs"  # kept with the instance (--keep)
        logs.mkdir(exist_ok=True)
        machine_before = machine()
        runs: list[Run] = []
        for round_number in range(1, options.repeat + 1):
            order = SIDES if round_number % 2 else tuple(reversed(SIDES))
            for name in order:
                side = sides[name]
                wait_routable(cluster, world)
                env = playbook_env(cluster, side)
                run = run_playbook(side, round_number, extra_vars, env, options.timeout)
                (logs / f"round{round_number}-{name}.log").write_text(run.log)
                runs.append(run)
                gaps = run.gaps()
                print(
                    f"  round {round_number}, {name}: {len(run.checks)} checks, median gap {median(gaps):.2f}s, "
                    f"whole run {run.wall:.1f}s, rc {run.returncode}",
                    flush=True,
                )
                if run.returncode != 0 or not run.checks:
                    problems.append(f"round {round_number}, {name}: rc {run.returncode}, {len(run.checks)} checks")
                    print(f"--- the playbook's last {TAIL_LINES} lines ---\n{tail(run.log)}---", flush=True)
                wrong = check_restored(kube, world)
                if wrong:
                    problems.append(f"after round {round_number}, {name}: {wrong}")
                    print(f"  {wrong}; the playbook's tail:\n{tail(run.log)}", flush=True)
                    raise SystemExit(1)
        load.stop()
        summaries = {
            name: summary([r for r in runs if r.side == name], options.interval, options.bake) for name in SIDES
        }
        code_after = code_version()

        print()
        print(table(sides, summaries))
        print()
        print(
            f"{options.repeat} runs per side, alternating; one 50% step, bake {options.bake}s, interval "
            f"{options.interval}s, window {options.window}s, history_windows {options.history_windows}, "
            f"{options.rate:g} user req/s through Traefik"
        )
        print(
            "gap: between consecutive check lines; overhead: gap - interval; check: from when a check could start "
            "(its due time, or the previous check's line if later) to its line"
        )
        for name in SIDES:
            mark = "" if summaries[name]["step_mark_seen"] else " (no step-start line seen: check = gap)"
            print(f"{name}: {sides[name].code}; verdicts {summaries[name]['verdicts']}{mark}")
        if code_after != sides["after"].code:
            print(f"WARNING: the checkout changed during the run ({code_after}): 'after' mixes versions")
        statuses = dict(sorted(load.statuses.items()))
        print(f"user traffic: {load.sent} requests, statuses {statuses}, {load.failures} connection failures")
        print(f"machine before: {machine_before}")
        print(f"machine after:  {machine()}")
        for problem in problems:
            print("PROBLEM: " + problem)
        if options.json:
            options.json.write_text(
                json.dumps(
                    {
                        "tool": "bench/check_overhead.py",
                        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
                        "code": {name: side.code for name, side in sides.items()},
                        "code_after": code_after,
                        "machine": machine_before,
                        "machine_after": machine(),
                        "summary": summaries,
                        "runs": [
                            {
                                "side": run.side,
                                "round": run.round,
                                "returncode": run.returncode,
                                "wall_s": run.wall,
                                "gaps_s": run.gaps(),
                                "check_times_s": run.check_times(options.interval, options.bake),
                                "step_mark": run.step_mark,
                                "checks": [asdict(check) for check in run.checks],
                            }
                            for run in runs
                        ],
                        "problems": problems,
                    },
                    indent=2,
                )
            )
    finally:
        if load is not None:
            load.stop()
        if backends is not None and world is not None:
            remove_world_backends(backends, world)
        remove_worktree(options.worktree)
        shutil.rmtree(old_collections, ignore_errors=True)
        if not options.keep:
            cluster_down(options.state_dir)
            print(f"instance {options.state_dir} stopped")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
