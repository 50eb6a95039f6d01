# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a launch watchdog keeps its files, and how one process recognises another.

One private directory per user under the system temp dir (``darklaunch-watchdog-<uid>``, mode 0700) holds,
per watched route, files named ``<namespace>.<route>.<cluster>`` (``<cluster>``: a short hash of the API
server URL, so the same route in two clusters of a fleet gets two watchdogs) with the suffixes ``.json``
(the config, deleted by the watchdog as soon as it has read it: it may hold credentials), ``.pid`` (who
is watching; removing it disarms), ``.outcome`` (what the watchdog did when it stopped) and ``.log``.
Shared by the action plugin and the watchdog process.

A PID alone does not name a process for long: PIDs are reused. Where ``/proc`` exists the process's start
time goes with it, and a zombie (killed, not yet reaped by its parent) counts as gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError

# Kubernetes object names (DNS-1123 subdomains): safe as file name parts, never a path separator.
_OBJECT_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class RouteFiles:
    config: Path
    pid: Path
    outcome: Path
    log: Path


@dataclass(frozen=True)
class ProcessId:
    """A PID plus, where the platform tells it, the process's start time (clock ticks after boot)."""

    pid: int
    start_ticks: int | None

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        return cls(pid, _stat_fields(pid)[1])

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessId:
        ticks = data.get("start_ticks")
        return cls(int(data["pid"]), int(ticks) if ticks is not None else None)


def state_dir(base: str | None = None) -> Path:
    """The user's private watchdog directory, created 0700; refused if someone else could have planted it."""
    directory = Path(base or tempfile.gettempdir()) / f"darklaunch-watchdog-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise DarklaunchError(
            f"{directory} must be a directory owned by this user (uid {os.getuid()}) with mode 0700; "
            "it is not, so the watchdog will not trust it. Remove it and run the task again."
        )
    return directory


def route_files(directory: Path, namespace: str, route_name: str, api_server: str) -> RouteFiles:
    for field, value in (("namespace", namespace), ("route_name", route_name)):
        if not _OBJECT_NAME.match(value):
            raise DarklaunchError(
                f"{field} {value!r} is not a valid Kubernetes name (lower-case letters, digits, '-' and '.').",
                field=field,
            )
    cluster = hashlib.sha256(api_server.rstrip("/").encode("utf-8")).hexdigest()[:10]
    stem = f"{namespace}.{route_name}.{cluster}"
    return RouteFiles(
        config=directory / f"{stem}.json",
        pid=directory / f"{stem}.pid",
        outcome=directory / f"{stem}.outcome",
        log=directory / f"{stem}.log",
    )


def write_private_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` readable by this user only, atomically (a reader never sees half a file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(partial, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` if it is missing or unreadable."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def process_alive(process: ProcessId) -> bool:
    """Whether ``process`` still runs: it exists, is not a zombie, and started when it did before."""
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user: only the start time can tell it is not ours
    state, ticks = _stat_fields(process.pid)
    if state == "Z":
        return False
    return not (process.start_ticks is not None and ticks is not None and ticks != process.start_ticks)


def _stat_fields(pid: int) -> tuple[str | None, int | None]:
    """(state letter, start time) from ``/proc/<pid>/stat``; ``(None, None)`` where there is no /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None, None
    # The command name (field 2) is in parentheses and may contain spaces or parentheses itself.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None, None
