"""Helpers shared by the integration tests: waiting for Traefik to route through a mirror, and running
the collection's playbooks the way an operator does."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_ROOT = REPO_ROOT / ".state" / "collections"


def wait_mirror_live(
    traefik_api_get: Callable[[str], Any], world: Any, percent: int | None = None, timeout: float = 30.0
) -> None:
    """Until Traefik's router for ``world.route`` goes through its mirror (copying ``percent``, if given)."""
    mirror = f"{world.namespace}-{world.route}-mirror@kubernetescrd"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            service = traefik_api_get(f"/api/http/services/{mirror}")
            routers = traefik_api_get("/api/http/routers?per_page=1000")
        except Exception:  # not built yet: Traefik answers 404 until the configuration is loaded
            time.sleep(0.1)
            continue
        mirrors = (service.get("mirroring") or {}).get("mirrors") or []
        routed = any(
            router.get("service") in (mirror, mirror.split("@", maxsplit=1)[0])
            and router.get("name", "").startswith(f"{world.namespace}-{world.route}-")
            and router.get("status") == "enabled"
            for router in routers
        )
        percent_ok = percent is None or (bool(mirrors) and mirrors[0].get("percent") == percent)
        if routed and percent_ok and service.get("status") == "enabled":
            return
        time.sleep(0.1)
    raise TimeoutError(f"Traefik never routed {world.route} through its mirror at {percent}%")


# Launch reports of test runs go to /tmp, not into the checkout (the playbooks run from the repository root).
REPORT_DIR = Path(tempfile.gettempdir()) / "darklaunch-test-reports"


def playbook_command(name: str, extra_vars: dict[str, Any]) -> list[str]:
    if name in ("shadow_launch", "shadow_launch_fleet"):
        extra_vars = {"report_dir": str(REPORT_DIR), **extra_vars}
    return ["ansible-playbook", str(REPO_ROOT / "playbooks" / f"{name}.yml"), "-e", json.dumps(extra_vars)]


def playbook_env() -> dict[str, str]:
    """The environment an operator has: this checkout as darklaunch.traefik, no colours."""
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_ROOT), "ANSIBLE_NOCOLOR": "1"}


def run_playbook(
    name: str, extra_vars: dict[str, Any], timeout: float = 180.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook playbooks/<name>.yml -e <json>`` with this checkout as darklaunch.traefik (and ``env``
    added to the operator's environment)."""
    return subprocess.run(
        playbook_command(name, extra_vars),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**playbook_env(), **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )


def run_anomaly_check(world: Any, window: str, **extra: Any) -> subprocess.CompletedProcess[str]:
    """``playbooks/anomaly_check.yml`` on the world's route, over ``window``, against the cluster's Prometheus."""
    return run_playbook(
        "anomaly_check",
        {
            "route_name": world.route,
            "route_namespace": world.namespace,
            "window": window,
            "prometheus_url": os.environ["PROMETHEUS_URL"],
            **extra,
        },
    )


def start_playbook(name: str, extra_vars: dict[str, Any], output: Path) -> subprocess.Popen[bytes]:
    """The same, in the background, stdout and stderr into ``output`` (read it while it runs)."""
    with output.open("wb") as sink:
        return subprocess.Popen(
            playbook_command(name, extra_vars),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=playbook_env(),
            cwd=REPO_ROOT,
        )


def finish_playbook(process: subprocess.Popen[bytes], output: Path, timeout: float) -> str:
    """Wait for a playbook of ``start_playbook`` (killed if it outlives ``timeout``); what it printed."""
    try:
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return output.read_text(errors="replace")
