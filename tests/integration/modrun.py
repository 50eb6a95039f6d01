"""Run the collection's modules the way Ansible does, as a separate Python process.

Ansible ships a module with its arguments to the target and runs it there; here the "target" is this
machine, so the module file is executed with an arguments file, exactly as a module would be executed
by ``ansible-playbook`` with ``connection: local`` (check and diff mode are the same internal flags).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO_ROOT / ".state" / "collections"


def run_module(
    name: str,
    args: dict[str, Any],
    *,
    check: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
    raw: bool = False,
) -> dict[str, Any]:
    """Run ``darklaunch.traefik.<name>`` with ``args``; returns the module's JSON result (with ``raw``,
    exactly as the module printed it, ``invocation`` and all)."""
    module_args = dict(args)
    module_args["_ansible_check_mode"] = check
    module_args["_ansible_diff"] = diff
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": module_args}, handle)
        args_path = handle.name
    process_env = dict(os.environ)
    process_env.update(env or {})
    process_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(COLLECTIONS), process_env.get("PYTHONPATH")]))
    try:
        completed = subprocess.run(
            [sys.executable, str(REPO_ROOT / "plugins" / "modules" / f"{name}.py"), args_path],
            capture_output=True,
            text=True,
            env=process_env,
            timeout=120,
            check=False,
        )
    finally:
        os.unlink(args_path)
    result = _last_json(completed.stdout)
    if result is None:
        raise AssertionError(
            f"{name} printed no JSON (rc={completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    if raw:
        return result
    result.pop("invocation", None)
    if "warnings" in result:
        # ansible-core >= 2.19 ships warnings as structured events; the controller hands the registered
        # variable their text, which is what playbooks see.
        result["warnings"] = [_warning_text(w) for w in result["warnings"]]
    else:
        result["warnings"] = []
    return result


def _warning_text(warning: Any) -> str:
    if isinstance(warning, dict):
        event = warning.get("event") or {}
        return str(event.get("msg", warning))
    return str(warning)


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed: dict[str, Any] = json.loads(line)
                return parsed
            except json.JSONDecodeError:
                continue
    return None


def store_report(route: str, namespace: str, launch_id: str, page: str, started: str, **extra: Any) -> dict[str, Any]:
    """launch_report_store keeping the HTML file ``page`` as the report of launch ``launch_id`` of a route."""
    args = {"route_name": route, "namespace": namespace, "launch_id": launch_id, "report_path": page}
    return run_module("launch_report_store", {**args, "started": started, **extra})
