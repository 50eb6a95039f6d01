"""Verdict quality of the shadow-launch gate under live traffic (issue 18): false rollbacks of healthy launches
when the users' traffic changes, and how fast and how surely each fault on the shadow is caught.

Every run is a real launch through ``playbooks/shadow_launch.yml`` (the role, the engine, the lookup, the
watchdog) on its own route of a local cluster instance with its own users, at the role's defaults except a
short bake, interval and window (the same settings for every scenario, printed with the table):

- healthy launches (the shadow is the same build as the main) under steady traffic, a x3 surge and a /3
  drop during the first step's bake, and a slow ramp (10 -> 40 req/s over the launch): false rollbacks;
- faults set on the shadow from the start of the launch (it gets no traffic before the mirror is
  attached): 5% 5xx, 2% 5xx, 20% 404, +100 ms on every request, +500 ms on 5% of the requests, a hung
  shadow (requests accepted, never answered): detection rate, detection time in intervals (from the first
  step's start, when the copies and the fault begin, to the check that stopped the launch) and the cause.

Runs go in parallel (``--parallel``), each on its own route, backends and user traffic. The bench starts
(or reuses) the instance ``tests/cluster/up --state-dir /tmp/dl-bench --port-offset 500`` and stops that
instance at the end (``--keep`` leaves it). ``--ref`` measures a commit instead of the working tree.

    python bench/verdict_quality.py                          # 5 runs per traffic pattern, 3 per fault
    python bench/verdict_quality.py --ref HEAD --json /tmp/verdicts.json
    python bench/verdict_quality.py --only surge,hung --runs 2 --parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_cluster import CLUSTER_DIR, COLLECTIONS, REPO_ROOT, cluster_down, cluster_up, link_collection

sys.path.insert(0, str(CLUSTER_DIR))
from dlcluster.backends import BackendsClient
from dlcluster.kube import Kube
from dlcluster.traffic import ScheduledTraffic, send
from dlcluster.world import SeedWorld, create_world, remove_world_backends

BENCH_DIR = Path(__file__).resolve().parent

# The gate's settings, the same for every scenario: the role's defaults (steps 20,50, sigma 2, 6 history
# windows, failure limit 1, inconclusive limit 3, fail on insufficient data...) except a short bake, interval
# and window, and a minimum sample the traffic below fills at 20% (30 req/s x 20% x 15 s = 90 copies; 30 at
# the drop's and the ramp's lowest rate, 10 req/s).
GATE: dict[str, Any] = {"bake_seconds": 30, "interval": 5, "window": "15s", "min_requests": 20}
ROLE_DEFAULTS_KEPT = "steps 20,50; sigma 2; history_windows 6; failure_limit 1; inconclusive_limit 3; error_limit 3"

BASE_RATE = 30.0  # users' requests per second, steady
SURGE_FACTOR = 3.0
SURGE_SECONDS = 25.0  # the surge (or drop) starts at the first step's 2nd check: it spans the step change
RAMP_FROM, RAMP_TO, RAMP_SECONDS = 10.0, 40.0, 90.0  # from the playbook's start: the whole launch
TRIGGER_CHECK = 2

CHECK_LINE = re.compile(r"(\d+)% step, (\d+)/(\d+) s, check (\d+)/(\d+): (\w+)")


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "healthy" or "fault"
    title: str
    pattern: str = "steady"  # users' traffic: steady, surge, drop, ramp
    knobs: dict[str, Any] = field(default_factory=dict)  # set on the shadow's backend before the launch


def _scenarios() -> tuple[Scenario, ...]:
    return (
        Scenario("steady", "healthy", f"steady {BASE_RATE:g} req/s"),
        Scenario("surge", "healthy", f"x{SURGE_FACTOR:g} surge for {SURGE_SECONDS:g} s", pattern="surge"),
        Scenario("drop", "healthy", f"/{SURGE_FACTOR:g} drop for {SURGE_SECONDS:g} s", pattern="drop"),
        Scenario("ramp", "healthy", f"ramp {RAMP_FROM:g} -> {RAMP_TO:g} req/s over {RAMP_SECONDS:g} s", pattern="ramp"),
        Scenario("5xx-5", "fault", "5% 5xx", knobs={"error_rate": 0.05, "error_status": 500}),
        Scenario("5xx-2", "fault", "2% 5xx", knobs={"error_rate": 0.02, "error_status": 500}),
        Scenario("404-20", "fault", "20% 404", knobs={"error_rate": 0.20, "error_status": 404}),
        Scenario("lat-100", "fault", "+100 ms on all requests", knobs={"latency_ms": 100}),
        Scenario("tail-500", "fault", "+500 ms on 5% of requests", knobs={"slow_rate": 0.05, "slow_ms": 500}),
        Scenario("hung", "fault", "hung shadow (never answers)", knobs={"hang": True}),
    )


# The role's defaults have the interval equal to the window (60 s, 1m): each check judges the traffic since the
# last one. "--shape defaults" keeps that shape at a quarter of the scale, with users' traffic enough for the
# smallest fault (2% 5xx) to show in one window at 20%: 50 req/s x 20% x 15 s = 150 copies, 3 errors.
SHAPES: dict[str, dict[str, Any]] = {
    "fast": {"gate": dict(GATE), "rate": BASE_RATE, "ramp": (RAMP_FROM, RAMP_TO)},
    "defaults": {
        "gate": {"bake_seconds": 30, "interval": 15, "window": "15s", "min_requests": 40},
        "rate": 50.0,
        "ramp": (20.0, 70.0),
    },
}


def use_shape(name: str, rate: float | None = None) -> None:
    global BASE_RATE, RAMP_FROM, RAMP_TO, SCENARIOS, BY_NAME
    shape = SHAPES[name]
    GATE.clear()
    GATE.update(shape["gate"])
    BASE_RATE = rate or shape["rate"]
    RAMP_FROM, RAMP_TO = shape["ramp"]
    SCENARIOS = _scenarios()
    BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


SCENARIOS = _scenarios()
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- users' traffic -------------------------------------------------------------------------------


class LiveTraffic(ScheduledTraffic):
    """Users' requests (see ScheduledTraffic) at a rate that can change or ramp while it runs."""

    WORKERS = 6

    def __init__(self, base_url: str, host: str, rate: float, limit: float = 1800.0) -> None:
        super().__init__(base_url, host, limit)
        self._plan = (0.0, rate, 0.0, rate)  # the rate goes linearly from plan[1] at plan[0] to plan[3] at plan[2]
        self._next_due = 0.0

    def start(self) -> LiveTraffic:
        super().start()
        return self

    def _rate_at(self, t: float) -> float:
        t0, r0, t1, r1 = self._plan
        if t >= t1:
            return r1
        if t <= t0:
            return r0
        return r0 + (r1 - r0) * (t - t0) / (t1 - t0)

    def set_rate(self, rate: float) -> None:
        with self._lock:
            now = self._elapsed()
            self._plan = (now, rate, now, rate)
            self._next_due = max(self._next_due, now - 0.5)  # no burst to catch up an older, lower rate

    def ramp_to(self, rate: float, seconds: float) -> None:
        with self._lock:
            now = self._elapsed()
            self._plan = (now, self._rate_at(now), now + seconds, rate)

    def rate(self) -> float:
        with self._lock:
            return self._rate_at(self._elapsed())

    def _slot(self) -> float:
        with self._lock:
            due = self._next_due
            self._next_due += 1.0 / max(self._rate_at(due), 0.1)
            return due


# --- the code under test ----------------------------------------------------------------------------


@dataclass
class Code:
    """Where ansible-playbook finds darklaunch.traefik: the working tree (linked, as the tests do) or a
    snapshot of a commit extracted under the state directory."""

    collections_path: Path
    root: Path  # the collection's root: playbooks/ is here
    description: str


def code_under_test(ref: str | None, state_dir: Path) -> Code:
    if ref is None:
        link_collection()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "plugins", "roles", "playbooks"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        ).stdout.strip()
        head = _git("rev-parse", "--short", "HEAD")
        note = f" + uncommitted changes in {len(dirty.splitlines())} files" if dirty else ""
        return Code(COLLECTIONS, REPO_ROOT, f"working tree {REPO_ROOT} (HEAD {head}{note})")
    commit = _git("rev-parse", f"{ref}^{{commit}}")
    base = state_dir / f"code-{commit[:12]}"
    root = base / "ansible_collections" / "darklaunch" / "traefik"
    if not (root / "galaxy.yml").is_file():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as archive:
            subprocess.run(["git", "archive", "--format=tar", commit], stdout=archive, cwd=REPO_ROOT, check=True)
            archive.seek(0)
            with tarfile.open(fileobj=archive) as tar:
                tar.extractall(root, filter="data")
    return Code(base, root, f"commit {commit[:12]} ({ref}), extracted to {root}")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout.strip()


# --- one run ------------------------------------------------------------------------------------------


@dataclass
class Bench:
    env: dict[str, str]
    kube: Kube
    backends: BackendsClient
    namespace: str
    code: Code
    work: Path
    warmup: float
    timeout: float
    slots: threading.Semaphore  # launches at a time
    stagger: float  # seconds between two playbook starts
    stopping: threading.Event = field(default_factory=threading.Event)
    last_start: float = 0.0
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def traefik_url(self) -> str:
        return self.env["TRAEFIK_URL"]


def make_world(bench: Bench, app: str) -> SeedWorld:
    """The seed's world with every user on the main (``<app>-stable``); the canary is the shadow and gets
    no traffic but the copies. Ready once a probe through Traefik reaches the main."""
    world = create_world(bench.kube, bench.backends, bench.namespace, app=app, weights={"stable": 100})
    deadline = time.monotonic() + 60
    while send(bench.traefik_url, world.host, 1, path="/__verdict_probe").statuses != [200]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"Traefik never routed {world.host}")
        time.sleep(0.2)
    world.reset_backends()
    return world


def namespace_var(code: Code) -> str:
    """The playbook's extra var for the route's namespace: ``namespace``, or ``route_namespace`` in versions
    whose playbooks read their extra vars from playbooks/vars/ (``namespace`` is refused there)."""
    shared = code.root / "playbooks" / "vars" / "shadow_launch.yml"
    return "route_namespace" if shared.is_file() and "route_namespace" in shared.read_text() else "namespace"


def launch_vars(bench: Bench, world: SeedWorld) -> dict[str, Any]:
    return {
        "route_name": world.route,
        namespace_var(bench.code): world.namespace,
        "main_service": world.service("stable"),
        "mirror_service": world.service("canary"),
        "attach_to_ingress": True,
        "confirm_end_weighted_split": True,
        "prometheus_url": bench.env["PROMETHEUS_URL"],
        "teardown": True,
        "report_dir": str(bench.work / "reports"),
        **GATE,
    }


def run_one(bench: Bench, scenario: Scenario, number: int) -> dict[str, Any]:
    app = f"vq-{scenario.name}-{number}"
    record: dict[str, Any] = {"scenario": scenario.name, "run": number, "app": app}
    started = time.monotonic()
    world = make_world(bench, app)
    shadow = world.backends["canary"]
    initial = RAMP_FROM if scenario.pattern == "ramp" else BASE_RATE
    traffic = LiveTraffic(bench.traefik_url, world.host, initial).start()
    process: subprocess.Popen[bytes] | None = None
    slot = False
    record["warm_seconds"] = 0.0
    try:
        if scenario.knobs:
            shadow.set_knobs(**scenario.knobs)
        # History for the baseline at the usual rate (the role's history_windows x window); a world may
        # wait longer for a launch slot, its users going on at the same rate.
        if bench.stopping.wait(bench.warmup):
            raise RuntimeError("stopped")
        while not bench.slots.acquire(timeout=1):
            if bench.stopping.is_set():
                raise RuntimeError("stopped")
        slot = True
        # Playbook starts are spread out: a burst of ansible-playbook start-ups on a small machine slows every
        # backend for a few seconds, which the main's latency history would see.
        with bench.lock:
            start_at = max(time.monotonic(), bench.last_start + bench.stagger)
            bench.last_start = start_at
        if bench.stopping.wait(max(0.0, start_at - time.monotonic())):
            raise RuntimeError("stopped")
        output = bench.work / f"{app}.out"
        result_file = bench.work / f"{app}.json"
        env = {
            **os.environ,
            **bench.env,
            "ANSIBLE_COLLECTIONS_PATH": str(bench.code.collections_path),
            "ANSIBLE_HOME": str(REPO_ROOT / ".state" / "ansible-home"),
            "ANSIBLE_CALLBACK_PLUGINS": str(BENCH_DIR / "ansible_callbacks"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_launch_result",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "BENCH_LAUNCH_OUT": str(result_file),
        }
        argv = [
            "ansible-playbook",
            str(bench.code.root / "playbooks" / "shadow_launch.yml"),
            "-e",
            json.dumps(launch_vars(bench, world)),
        ]
        with output.open("wb") as sink:
            process = subprocess.Popen(
                argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT
            )
        with bench.lock:
            bench.processes[process.pid] = process
        launched = time.monotonic()
        record["warm_seconds"] = round(launched - started, 1)
        if scenario.pattern == "ramp":
            traffic.ramp_to(RAMP_TO, RAMP_SECONDS)
        events = watch(bench, process, output, traffic, scenario)
        text = output.read_text(errors="replace")
        record.update(outcome_of(result_file, text, process.returncode))
        record["events"] = events
        record["launch_seconds"] = round(time.monotonic() - launched, 1)
    finally:
        if process is not None:
            if process.poll() is None:
                process.kill()
                process.wait()
            with bench.lock:
                bench.processes.pop(process.pid, None)
        if slot:
            bench.slots.release()
        traffic.stop()
        try:
            record["shadow_counters"] = {
                key: value for key, value in shadow.counters().items() if key not in ("by_method_path", "port", "name")
            }
            shadow.set_knobs(error_rate=0, latency_ms=0, slow_rate=0, slow_ms=0, hang=False)  # releases held requests
        finally:
            remove_world_backends(bench.backends, world)
    record["user_requests"] = traffic.sent
    record["user_errors"] = traffic.errors()
    record["seconds"] = round(time.monotonic() - started, 1)
    return record


def watch(
    bench: Bench, process: subprocess.Popen[bytes], output: Path, traffic: LiveTraffic, scenario: Scenario
) -> list[dict[str, Any]]:
    """Follow the playbook's check lines until it ends; change the users' traffic when the pattern says so.
    Returns what happened when (seconds since the playbook started)."""
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    seen = 0
    first_percent: str | None = None
    back_at: float | None = None
    while True:
        done = process.poll() is not None
        text = output.read_text(errors="replace")
        lines = [m.groups() for m in CHECK_LINE.finditer(text)]
        for percent, _elapsed, _bake, number, _of, verdict in lines[seen:]:
            now = round(time.monotonic() - started, 1)
            events.append({"t": now, "check": f"{percent}% {number}", "verdict": verdict})
            first_percent = first_percent or percent
            if scenario.pattern in ("surge", "drop") and percent == first_percent and int(number) == TRIGGER_CHECK:
                rate = BASE_RATE * SURGE_FACTOR if scenario.pattern == "surge" else BASE_RATE / SURGE_FACTOR
                traffic.set_rate(rate)
                back_at = time.monotonic() + SURGE_SECONDS
                events.append({"t": now, "traffic": rate})
        seen = len(lines)
        if back_at is not None and time.monotonic() >= back_at:
            traffic.set_rate(BASE_RATE)
            back_at = None
            events.append({"t": round(time.monotonic() - started, 1), "traffic": BASE_RATE})
        if done:
            return events
        if time.monotonic() - started > bench.timeout or bench.stopping.is_set():
            process.kill()
            process.wait()
            events.append({"t": round(time.monotonic() - started, 1), "killed": True})
            return events
        time.sleep(0.2)


def outcome_of(result_file: Path, text: str, returncode: int | None) -> dict[str, Any]:
    """The engine's result (from the bench_launch_result callback), reduced to what the tables need."""
    lines = [m.group(0) for m in CHECK_LINE.finditer(text)]
    if not result_file.is_file():
        return {"outcome": "error", "cause": _tail(text), "cause_kind": None, "lines": lines, "rc": returncode}
    data = json.loads(result_file.read_text())
    steps = data.get("steps") or []
    checks = data.get("checks") or []
    fault_start = min((s["start"] for s in steps if isinstance(s.get("start"), (int, float))), default=None)
    failed = data.get("failed_check") or None
    detection: dict[str, Any] | None = None
    if failed and fault_start is not None and isinstance(failed.get("started"), (int, float)):
        ordinal = next((n for n, c in enumerate(checks, 1) if c.get("started") == failed["started"]), len(checks))
        seconds = failed["started"] - fault_start
        detection = {
            "check": ordinal,  # checks since the first step began (each one interval apart)
            "seconds": round(seconds, 1),
            "intervals": round(seconds / GATE["interval"], 2),
            "at": f"{failed.get('percent')}% check {failed.get('check')}/{failed.get('of')}",
        }
    return {
        "outcome": data.get("outcome"),
        "cause_kind": data.get("cause_kind"),
        "cause": data.get("cause") or (data.get("msg") if data.get("outcome") != "passed" else None),
        "flagged": flagged(failed) if failed else [],
        "detection": detection,
        "verdicts": [c.get("verdict") if c.get("outcome") != "error" else "error" for c in checks],
        "lines": lines,
        "rc": returncode,
    }


def flagged(check: dict[str, Any]) -> list[str]:
    """What the stopping check found: ``role metric (check)`` per anomaly, or why it could not judge."""
    found = [
        f"{a.get('role')} {a.get('metric')} ({'vs main' if a.get('check') == 'shadow_vs_main' else a.get('check')})"
        for a in check.get("anomalies") or []
    ]
    found += [f"custom {m.get('name')}" for m in check.get("metrics") or [] if m.get("verdict") == "anomalous"]
    if not found and check.get("verdict") != "anomalous":
        found = [f"{check.get('verdict') or check.get('outcome')}"]
    return sorted(set(found))


def _tail(text: str, size: int = 600) -> str:
    return " ".join(text[-size:].split())


# --- tables -----------------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _column in head) + "|"]
    out += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(out)


def _kinds(runs: Sequence[dict[str, Any]]) -> str:
    stopped = [r for r in runs if r.get("outcome") != "passed"]
    kinds = Counter(
        f"{r.get('cause_kind') or r.get('outcome')}: {', '.join(r.get('flagged') or []) or '-'}" for r in stopped
    )
    return "; ".join(f"{n}x {kind}" for kind, n in kinds.most_common()) or "-"


def report(results: dict[str, list[dict[str, Any]]], header: Sequence[str]) -> str:
    out = list(header)
    healthy_rows, fault_rows = [], []
    for scenario in SCENARIOS:
        runs = sorted(results.get(scenario.name) or [], key=lambda r: r["run"])
        if not runs:
            continue
        done = [r for r in runs if r.get("outcome") in ("passed", "rolled_back", "rollback_failed")]
        broken = len(runs) - len(done)
        verdicts = Counter(v for r in done for v in r.get("verdicts") or [])
        checks = sum(verdicts.values())
        user_errors = sum(r.get("user_errors") or 0 for r in runs)
        other = f" ({broken} did not run: see below)" if broken else ""
        if scenario.kind == "healthy":
            rolled = [r for r in done if r["outcome"] != "passed"]
            healthy_rows.append(
                (
                    scenario.title,
                    f"{len(done)}{other}",
                    f"**{len(rolled)}/{len(done)}**",
                    f"{verdicts.get('anomalous', 0)} / {verdicts.get('insufficient_data', 0)} of {checks}",
                    user_errors,
                    _kinds(done),
                )
            )
        else:
            caught = [r for r in done if r["outcome"] != "passed"]
            anomalous = [r for r in caught if r.get("cause_kind") == "anomalous"]
            by_shadow = [r for r in caught if any(f.startswith("shadow ") for f in r.get("flagged") or [])]
            detect = [r["detection"] for r in caught if r.get("detection")]
            within = sum(1 for d in detect if d["check"] <= 2)
            per_run = ", ".join(str(d["check"]) for d in detect) or "-"
            intervals = [d["intervals"] for d in detect]
            fault_rows.append(
                (
                    scenario.title,
                    f"{len(done)}{other}",
                    f"**{len(caught)}/{len(done)}**",
                    f"{len(anomalous)}/{len(done)}",
                    f"{len(by_shadow)}/{len(done)}",
                    per_run,
                    f"{statistics.median(intervals):.1f} / {max(intervals):.1f}" if intervals else "-",
                    f"{within}/{len(done)}",
                    user_errors,
                    _kinds(done),
                )
            )
    if healthy_rows:
        out += [
            "",
            "Healthy launches (shadow = the main's build): a rollback is a false alarm",
            "",
            _table(
                (
                    "users' traffic",
                    "runs",
                    "false rollbacks",
                    "anomalous / inconclusive checks",
                    "user errors",
                    "causes",
                ),
                healthy_rows,
            ),
        ]
        total = [r for s in SCENARIOS if s.kind == "healthy" for r in results.get(s.name) or []]
        total_done = [r for r in total if r.get("outcome") in ("passed", "rolled_back", "rollback_failed")]
        false = sum(1 for r in total_done if r["outcome"] != "passed")
        out.append(f"\nAll patterns: {false}/{len(total_done)} healthy launches rolled back.")
    if fault_rows:
        out += [
            "",
            "Faults on the shadow from the start of the launch: detection",
            "",
            _table(
                (
                    "fault",
                    "runs",
                    "rolled back",
                    "by an anomalous check",
                    "with a finding on the shadow",
                    "stopping check per run (intervals after the fault began)",
                    "detection intervals median / max",
                    "within 2 intervals",
                    "user errors",
                    "causes (kind: what the stopping check flagged)",
                ),
                fault_rows,
            ),
        ]
    out += ["", "Per run (stopping check's summary, or the last check's verdicts):", ""]
    for scenario in SCENARIOS:
        for r in sorted(results.get(scenario.name) or [], key=lambda r: r["run"]):
            marks = "".join(_VERDICT_CHAR.get(v, "?") for v in r.get("verdicts") or [])
            cause = " ".join(str(r.get("cause") or "").split())
            summary = cause[:400] + ("..." if len(cause) > 400 else "")
            out.append(
                f"- {scenario.name} #{r['run']}: {r.get('outcome')} [{marks}] {r.get('launch_seconds', '-')} s"
                + (f" | {summary}" if summary else "")
            )
    out.append("\nVerdict marks: . ok, A anomalous, i insufficient_data, E error (one per check, in order).")
    return "\n".join(out)


_VERDICT_CHAR = {"ok": ".", "anomalous": "A", "insufficient_data": "i", "error": "E"}


# --- main ---------------------------------------------------------------------------------------------------


def plan(names: Sequence[str], runs: int | None) -> list[tuple[Scenario, int]]:
    """Every run, interleaved (run 1 of each scenario, then run 2...) so each wave mixes healthy and faulty."""
    chosen = [BY_NAME[name] for name in names]
    counts = {s.name: runs if runs is not None else (5 if s.kind == "healthy" else 3) for s in chosen}
    order: list[tuple[Scenario, int]] = []
    for number in range(1, max(counts.values(), default=0) + 1):
        order += [(s, number) for s in chosen if number <= counts[s.name]]
    return order


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    # Started in the background, a process ignores SIGINT: both signals stop the launches and the instance.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, help="runs per scenario (default: 5 per traffic pattern, 3 per fault)")
    parser.add_argument("--parallel", type=int, default=4, help="launches at a time, each on its own route")
    parser.add_argument(
        "--ahead", type=int, help="worlds warming up beside the running launches (default: half of --parallel)"
    )
    parser.add_argument("--stagger", type=float, default=10.0, help="seconds at least between two playbook starts")
    parser.add_argument("--only", help=f"comma-separated scenarios: {','.join(BY_NAME)}")
    parser.add_argument("--json", type=Path, help="also write every run's results here")
    parser.add_argument("--ref", help="measure this commit (extracted with git archive) instead of the working tree")
    parser.add_argument("--warmup", type=float, default=90.0, help="seconds of users' traffic before each launch")
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds a launch may take before it is killed")
    parser.add_argument("--state-dir", default="/tmp/dl-bench")
    parser.add_argument("--port-offset", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="leave the cluster instance running")
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="fast",
        help="fast: interval 5 s, window 15s, 30 req/s; defaults: interval = window = 15 s (the role's shape), "
        "50 req/s",
    )
    parser.add_argument("--rate", type=float, help="users' requests per second, steady (default: the shape's)")
    args = parser.parse_args(argv)
    use_shape(args.shape, args.rate)

    names = [n.strip() for n in (args.only or ",".join(BY_NAME)).split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    order = plan(names, args.runs)
    state_dir = Path(args.state_dir)
    code = code_under_test(args.ref, state_dir)
    work = state_dir / f"verdict-work-{time.strftime('%Y%m%d-%H%M%S')}"
    (work / "reports").mkdir(parents=True, exist_ok=True)

    log(f"cluster instance {state_dir} (port offset {args.port_offset})")
    env = cluster_up(str(state_dir), args.port_offset, traefik=True)
    kube = Kube.from_kubeconfig(env["K8S_AUTH_KUBECONFIG"])
    namespace = f"vq-{secrets.token_hex(3)}"
    kube.ensure_namespace(namespace, labels={"darklaunch.test/owner": "verdict-quality"})
    bench = Bench(
        env=env,
        kube=kube,
        backends=BackendsClient(env["DARKLAUNCH_BACKENDS_URL"]),
        namespace=namespace,
        code=code,
        work=work,
        warmup=args.warmup,
        timeout=args.timeout,
        slots=threading.Semaphore(args.parallel),
        stagger=args.stagger,
    )
    ahead = args.ahead if args.ahead is not None else args.parallel // 2
    header = [
        "Verdict quality of the shadow-launch gate (bench/verdict_quality.py)",
        f"code: {code.description}",
        f"gate: {', '.join(f'{k} {v}' for k, v in GATE.items())}; role defaults otherwise ({ROLE_DEFAULTS_KEPT})",
        f"every launch: playbooks/shadow_launch.yml, main <app>-stable serving all users, shadow <app>-canary; "
        f"at least {args.warmup:g} s of users' traffic before the launch; {args.parallel} launches at a time "
        f"(playbook starts {args.stagger:g} s apart at least), {ahead} more worlds warming up",
        f"users: {BASE_RATE:g} req/s; surge x{SURGE_FACTOR:g} / drop /{SURGE_FACTOR:g} from the first step's check "
        f"{TRIGGER_CHECK} for {SURGE_SECONDS:g} s; ramp {RAMP_FROM:g} -> {RAMP_TO:g} req/s over {RAMP_SECONDS:g} s "
        "from the playbook's start",
    ]
    log(f"{len(order)} launches, {args.parallel} at a time; work files in {work}")
    started = time.monotonic()
    results: dict[str, list[dict[str, Any]]] = {}
    failures: list[str] = []
    load_before = os.getloadavg()
    pool = ThreadPoolExecutor(max_workers=args.parallel + ahead)
    try:
        futures = {pool.submit(run_one, bench, scenario, number): (scenario, number) for scenario, number in order}
        for done_count, future in enumerate(as_completed(futures), 1):
            scenario, number = futures[future]
            try:
                record = future.result()
            except Exception as error:
                record = {"scenario": scenario.name, "run": number, "outcome": "error", "cause": repr(error)}
                failures.append(f"{scenario.name} #{number}: {traceback.format_exc()}")
            results.setdefault(scenario.name, []).append(record)
            verdicts = "".join(_VERDICT_CHAR.get(v, "?") for v in record.get("verdicts") or [])
            log(
                f"[{done_count}/{len(order)}] {scenario.name} #{number}: {record.get('outcome')} [{verdicts}] "
                f"{record.get('cause_kind') or ''} {', '.join(record.get('flagged') or [])}"
            )
    except KeyboardInterrupt:
        log("interrupted: stopping the launches (their watchdogs restore the routes)")
        bench.stopping.set()
        with bench.lock:
            for process in bench.processes.values():
                process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if not args.keep:
            log(f"stopping the instance {state_dir}")
            cluster_down(str(state_dir))
    minutes = (time.monotonic() - started) / 60
    load_after = os.getloadavg()
    loads = [" ".join(f"{x:.1f}" for x in load) for load in (load_before, load_after)]
    header.append(
        f"{len(order)} launches in {minutes:.1f} min on {os.cpu_count()} cores; load average (1, 5, 15 min) "
        f"{loads[0]} at the start, {loads[1]} at the end"
    )
    text = report(results, header)
    print(text)
    for failure in failures:
        print(f"\nharness error: {failure}", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "header": header,
                    "gate": GATE,
                    "code": code.description,
                    "minutes": round(minutes, 1),
                    "scenarios": {
                        s.name: {"kind": s.kind, "title": s.title, "pattern": s.pattern, "knobs": s.knobs}
                        for s in SCENARIOS
                        if s.name in names
                    },
                    "results": results,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
