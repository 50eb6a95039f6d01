# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Arm and disarm launch watchdogs from the controller (the side the action plugin runs on).

Arming writes the watchdog's config (0600, in the 0700 directory of ``_watchdog_files``), starts the
watchdog detached from the controller's session and waits until it says it is watching (its PID file) or
why it cannot (its outcome file). Disarming stops it with SIGTERM and removes its files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import format_time
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_files import (
    ProcessId,
    RouteFiles,
    process_alive,
    read_json,
    remove,
    write_private_json,
)

WATCHDOG_MODULE: Final = "ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_process"
READY_TIMEOUT_SECONDS: Final = 30.0
# Auth options naming files: made absolute, since the watchdog must find them whatever its working directory.
_PATH_OPTIONS: Final = ("ca_cert", "client_cert", "client_key", "kubeconfig")
# A watchdog obeys SIGTERM within a poll, but finishes a rollback under way first (retries included).
STOP_TIMEOUT_SECONDS: Final = 90.0


@dataclass(frozen=True)
class Stopped:
    was_running: bool
    pid: int | None
    outcome: dict[str, Any] | None  # what the watchdog did before it stopped (None: nothing but watch)


def collections_root(plugin_file: str) -> str:
    """The directory that contains ``ansible_collections`` for the plugin at ``plugin_file``.

    Symlinks are kept as they are: a collection linked into a collections path is importable through the
    link, not through its real location.
    """
    path = Path(os.path.abspath(plugin_file))
    for parent in path.parents:
        if parent.name == "ansible_collections":
            return str(parent.parent)
    raise DarklaunchError(f"cannot tell which collections path {plugin_file} was loaded from")


def arm_for_route(files: RouteFiles, params: Mapping[str, Any], auth: Mapping[str, Any], plugin_file: str) -> ProcessId:
    """Arm the watchdog of one launch for the ansible-playbook process that runs this worker (its parent).

    ``params`` are launch_watchdog's options (route_name, namespace, mirror_name, wrr_name,
    restore_ingress_to_wrr, api_group, launch_id, and optionally route_kind, poll_seconds and grace_seconds).
    """
    route = params["route_name"]
    config = {
        "route_name": route,
        "namespace": params["namespace"],
        "mirror_name": params.get("mirror_name") or default_names.mirror_name(route),
        "wrr_name": params.get("wrr_name") or default_names.wrr_name(route),
        "restore_ingress_to_wrr": params["restore_ingress_to_wrr"],
        "route_kind": params.get("route_kind") or "IngressRoute",
        "api_group": params.get("api_group"),
        "poll_seconds": params.get("poll_seconds") or 1.0,
        "grace_seconds": params["grace_seconds"] if params.get("grace_seconds") is not None else 60.0,
        "launch_id": params.get("launch_id") or None,
        "controller": ProcessId.of(os.getppid()).to_dict(),
        "auth": absolute_paths(auth),
        "armed_at": format_time(datetime.now(timezone.utc)),
    }
    return arm(files, config, plugin_file)


def absolute_paths(auth: Mapping[str, Any]) -> dict[str, Any]:
    fixed = dict(auth)
    for option in _PATH_OPTIONS:
        value = fixed.get(option)
        if isinstance(value, str):
            # KUBECONFIG-style lists (a:b) keep their separator; each part is made absolute.
            fixed[option] = os.pathsep.join(
                os.path.abspath(os.path.expanduser(part)) for part in value.split(os.pathsep)
            )
    return fixed


def disarm_route(files: RouteFiles) -> Stopped:
    """Stop the watchdog of one launch; its outcome says whether it had already rolled the launch back."""
    return stop(files)


def arm(files: RouteFiles, config: Mapping[str, Any], plugin_file: str) -> ProcessId:
    """Replace any watchdog of ``files`` by a new one for ``config``; returns it once it is watching."""
    stop(files)
    remove(files.outcome)
    write_private_json(files.config, {**config, "files": {key: str(value) for key, value in vars(files).items()}})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [collections_root(plugin_file), env.get("PYTHONPATH")]))
    fd = os.open(files.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        process = subprocess.Popen(  # our own interpreter and module, no shell
            [sys.executable, "-m", WATCHDOG_MODULE, str(files.config)],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            env=env,
            # Its own session: Ctrl-C (SIGINT to the terminal's process group) and ansible-runner's
            # process-group signals reach ansible-playbook, never the watchdog meant to outlive it.
            start_new_session=True,
            close_fds=True,
        )
    except OSError as error:
        remove(files.config)
        raise DarklaunchError(f"cannot start the watchdog ({sys.executable}): {error}") from error
    finally:
        os.close(fd)
    return _wait_until_watching(files, process)


def _wait_until_watching(files: RouteFiles, process: subprocess.Popen[bytes]) -> ProcessId:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        record = read_json(files.pid)
        if record and record.get("watchdog", {}).get("pid") == process.pid:
            return ProcessId.from_dict(record["watchdog"])
        if process.poll() is not None:
            remove(files.config)
            outcome = read_json(files.outcome) or {}
            why = outcome.get("reason") or f"it exited with status {process.returncode}"
            raise DarklaunchError(f"the watchdog did not start: {why}. Its log: {files.log}")
        time.sleep(0.05)
    process.kill()
    process.wait()
    remove(files.config)
    raise DarklaunchError(
        f"the watchdog did not report ready within {READY_TIMEOUT_SECONDS:.0f}s and was stopped. Its log: {files.log}"
    )


def stop(files: RouteFiles) -> Stopped:
    """Stop the watchdog of ``files`` if one runs, and remove its files (the log stays)."""
    record = read_json(files.pid)
    process = ProcessId.from_dict(record["watchdog"]) if record and "watchdog" in record else None
    running = process is not None and process_alive(process)
    # Removing the PID file is itself the disarm signal; SIGTERM makes it act without waiting for a look.
    remove(files.pid)
    if running and process is not None:
        _terminate(process)
    # Read after it stopped: a rollback it had already begun is finished and recorded by then.
    outcome = read_json(files.outcome)
    remove(files.config)
    remove(files.outcome)
    acted = outcome is not None and outcome.get("outcome") != "left"
    return Stopped(was_running=running, pid=process.pid if process else None, outcome=outcome if acted else None)


def _terminate(process: ProcessId) -> None:
    try:
        os.kill(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while process_alive(process):
        if time.monotonic() > deadline:
            # Stuck even past a rollback's time: the disarm must not hang the play.
            os.kill(process.pid, signal.SIGKILL)
            return
        time.sleep(0.05)
