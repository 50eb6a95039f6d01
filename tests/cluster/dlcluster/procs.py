"""Start harness processes in their own process groups, remember them, and stop exactly those."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def _start_time(pid: int) -> str | None:
    """Kernel start time of a pid; with the pid it identifies one process (pids are reused)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are space separated.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie is as good as gone
        return None
    return fields[19]


class ProcessTable:
    """Pid files under ``<state>/pids``: one JSON record per component."""

    def __init__(self, pid_dir: Path, log_dir: Path) -> None:
        self.pid_dir = pid_dir
        self.log_dir = log_dir

    def _record_path(self, name: str) -> Path:
        return self.pid_dir / f"{name}.json"

    def pid(self, name: str) -> int | None:
        """The component's pid if that very process is still alive."""
        path = self._record_path(name)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        pid = int(record["pid"])
        if _start_time(pid) != record.get("start_time"):
            return None
        return pid

    def names(self) -> list[str]:
        if not self.pid_dir.is_dir():
            return []
        return sorted(path.stem for path in self.pid_dir.glob("*.json"))

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,  # own process group: `down` kills the whole group
                close_fds=True,
            )
        finally:
            log.close()
        record = {"pid": proc.pid, "start_time": _start_time(proc.pid), "argv": list(argv)}
        self._record_path(name).write_text(json.dumps(record) + "\n")
        return proc.pid

    def stop(self, name: str, timeout: float = 3.0) -> None:
        """SIGTERM the component's process group, SIGKILL it after ``timeout``.

        The grace is short on purpose: `down` wipes the state anyway, and the apiserver with its
        embedded etcd takes ~9 s to stop politely (etcd and bbolt survive a kill).
        """
        pid = self.pid(name)
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid(name) is not None:
                time.sleep(0.1)
            if self.pid(name) is not None:
                _signal_group(pid, signal.SIGKILL)
                while self.pid(name) is not None:
                    time.sleep(0.05)
        self._record_path(name).unlink(missing_ok=True)

    def terminate(self, name: str) -> None:
        """SIGTERM without waiting, so several components stop in parallel."""
        pid = self.pid(name)
        if pid is not None:
            _signal_group(pid, signal.SIGTERM)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the leader's pid is the group id (start_new_session)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def require_alive(procs: ProcessTable, name: str) -> None:
    if procs.pid(name) is None:
        raise ProcessDied(f"{name} exited; last log lines:\n{procs.log_tail(name)}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class ProcessDied(RuntimeError):
    """A component exited while we waited for it: waiting longer cannot help."""


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    interval: float = 0.2,
    on_timeout: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except ProcessDied:
            raise
        except Exception:  # a failing probe just means "not yet"
            pass
        if time.monotonic() > deadline:
            details = on_timeout() if on_timeout else ""
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{details}".rstrip())
        time.sleep(interval)
