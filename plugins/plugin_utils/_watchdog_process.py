# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch watchdog: a detached process on the controller that rolls a shadow launch back when the
``ansible-playbook`` run that armed it disappears (Ctrl-C, SIGTERM, killed) or stops renewing the launch
record on the mirror.

Started by the ``darklaunch.traefik.launch_watchdog`` action plugin as
``python -m ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_process CONFIG``. It reads
CONFIG and deletes it at once (it may hold credentials), checks that it can read the mirror, writes its
PID file (which tells the action plugin it is ready), then looks every ``poll_seconds`` and lets
``_watchdog_decision.decide`` choose. Rolling back is ``traefik_mirror state=absent`` run in-process
(``_mirror_runner.run_mirror``), retried on errors. Its output is the log file; nothing secret is written.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any, Final

from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_deploy import remove as remove_comparator
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_plan import KIND_HTTP_ROUTE
from ansible_collections.darklaunch.traefik.plugins.module_utils._httproute_runner import run_httproute_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_record import parse_time, read_launch_record
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_runner import run_mirror
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import auth_secrets, scrub
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_decision import (
    MirrorSeen,
    Observation,
    Policy,
    Verdict,
    decide,
    format_utc_second,
    is_own_record,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_files import (
    ProcessId,
    RouteFiles,
    process_alive,
    read_json,
    remove,
    write_private_json,
)

ROLLBACK_ATTEMPTS: Final = 6
ROLLBACK_MAX_DELAY_SECONDS: Final = 15.0
# A failing read is logged again only after this long, so an apiserver outage does not flood the log.
REPEAT_ERROR_AFTER_SECONDS: Final = 60.0

EXIT_OK: Final = 0
EXIT_ROLLBACK_FAILED: Final = 1
EXIT_NOT_STARTED: Final = 2


@dataclass(frozen=True)
class WatchdogConfig:
    route_name: str
    namespace: str
    mirror_name: str
    wrr_name: str
    restore_ingress_to_wrr: bool
    api_group: str | None
    poll_seconds: float
    policy: Policy
    controller: ProcessId
    auth: dict[str, Any]
    files: RouteFiles
    route_kind: str = "IngressRoute"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WatchdogConfig:
        files = data["files"]
        return cls(
            route_name=str(data["route_name"]),
            namespace=str(data["namespace"]),
            mirror_name=str(data["mirror_name"]),
            wrr_name=str(data["wrr_name"]),
            restore_ingress_to_wrr=bool(data["restore_ingress_to_wrr"]),
            api_group=data.get("api_group"),
            poll_seconds=float(data["poll_seconds"]),
            policy=Policy(
                grace_seconds=float(data["grace_seconds"]),
                armed_at=parse_time(data.get("armed_at")) or datetime.now(timezone.utc),
                launch_id=data.get("launch_id"),
            ),
            controller=ProcessId.from_dict(data["controller"]),
            auth=dict(data.get("auth") or {}),
            files=RouteFiles(**{key: Path(value) for key, value in files.items()}),
            route_kind=str(data.get("route_kind") or "IngressRoute"),
        )

    def client_params(self) -> dict[str, Any]:
        return {**self.auth, "api_group": self.api_group}

    def rollback_options(self) -> dict[str, Any]:
        """The params of ``traefik_mirror state=absent`` for this route. An HTTPRoute's mirror and split have
        their default names (it takes no mirror_name or wrr_name): its saved backendRefs are what is restored."""
        options = {
            **self.client_params(),
            "route_name": self.route_name,
            "namespace": self.namespace,
            "state": "absent",
            "restore_ingress_to_wrr": self.restore_ingress_to_wrr,
        }
        if self.route_kind == KIND_HTTP_ROUTE:
            return {**options, "route_kind": KIND_HTTP_ROUTE}
        return {**options, "mirror_name": self.mirror_name, "wrr_name": self.wrr_name}


class Log:
    """Time-stamped lines on stdout (the log file), with every credential masked."""

    def __init__(self, secrets: set[str]) -> None:
        self._secrets = secrets

    def __call__(self, message: str) -> None:
        stamp = format_utc_second(datetime.now(timezone.utc))
        sys.stdout.write(f"{stamp} [{os.getpid()}] {scrub(message, self._secrets)}\n")
        sys.stdout.flush()


class Watchdog:
    def __init__(self, config: WatchdogConfig, log: Callable[[str], None], make_client: Callable[[], Any]) -> None:
        self.config = config
        self.log = log
        self._make_client = make_client
        self._client: Any = None
        self._stop_signal: str | None = None
        self._mirror_seen = False
        self._own_record_seen = False
        self._last_error: tuple[str, float] | None = None
        # The comparator this launch's record names (the role deployed it): removed with the mirror at a rollback.
        self._comparator: str | None = None

    # -- signals and the PID file ------------------------------------------------------------------

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        # Only a flag (no I/O in a signal handler): the loop notices it at the next look, and a rollback
        # under way is finished first.
        self._stop_signal = signal.Signals(signum).name

    def owns_pid_file(self) -> bool:
        record = read_json(self.config.files.pid)
        return bool(record) and (record or {}).get("watchdog", {}).get("pid") == os.getpid()

    # -- the run ---------------------------------------------------------------------------------------

    def start(self) -> bool:
        """Connect and read the mirror once, so that a watchdog that could never roll back fails at arm time."""
        try:
            self._client = self._make_client()
            mirror = self._client.get("TraefikService", self.config.namespace, self.config.mirror_name)
        except DarklaunchError as error:
            self.finish("failed_to_start", f"cannot read the mirror: {error.msg}")
            return False
        self._mirror_seen = mirror is not None
        write_private_json(
            self.config.files.pid,
            {
                "watchdog": ProcessId.of(os.getpid()).to_dict(),
                "controller": self.config.controller.to_dict(),
                "armed_at": format_utc_second(datetime.now(timezone.utc)),
            },
        )
        self.log(
            f"armed for {self.config.route_kind} {self.config.namespace}/{self.config.route_name} "
            f"(mirror {self.config.mirror_name}, {'present' if self._mirror_seen else 'not created yet'}); "
            f"watching ansible-playbook PID {self.config.controller.pid} every {self.config.poll_seconds:g}s"
        )
        return True

    def run(self) -> int:
        while True:
            observation = self.observe()
            decision = decide(observation, self.config.policy)
            if decision.verdict is Verdict.WATCH:
                time.sleep(self.config.poll_seconds)
                continue
            if decision.verdict is Verdict.LEAVE:
                self.log(f"stopping without a rollback: {decision.reason}")
                self.finish("left", decision.reason)
                return EXIT_OK
            self.log(f"rolling back: {decision.reason}")
            return self.roll_back(decision.reason)

    def observe(self) -> Observation:
        controller_alive = process_alive(self.config.controller)
        if self._stop_signal is not None:
            self.log(f"received {self._stop_signal}: disarming")
        disarmed = self._stop_signal is not None or not self.owns_pid_file()
        mirror_seen, record_id, deadline = MirrorSeen.UNKNOWN, None, None
        # The cluster is only asked while the controller lives: once it is gone, the rollback reads it anyway.
        if controller_alive and not disarmed:
            mirror_seen, record_id, deadline = self._read_mirror()
        observation = Observation(
            now=datetime.now(timezone.utc),
            controller_alive=controller_alive,
            disarmed=disarmed,
            mirror=mirror_seen,
            mirror_seen_before=self._mirror_seen,
            record_id=record_id,
            deadline=deadline,
            own_record_seen_before=self._own_record_seen,
        )
        if mirror_seen is MirrorSeen.PRESENT and not self._mirror_seen:
            self.log(f"the mirror {self.config.mirror_name} now exists")
            self._mirror_seen = True
        if (
            mirror_seen is MirrorSeen.PRESENT
            and not self._own_record_seen
            and is_own_record(observation, self.config.policy)
        ):
            self.log(
                f"the launch record is this run's (deadline {format_utc_second(deadline) if deadline else 'none'})"
            )
            self._own_record_seen = True
        return observation

    def _read_mirror(self) -> tuple[MirrorSeen, str | None, datetime | None]:
        try:
            mirror = self._client.get("TraefikService", self.config.namespace, self.config.mirror_name)
        except DarklaunchError as error:
            self._log_read_error(error.msg)
            return MirrorSeen.UNKNOWN, None, None
        if mirror is None:
            return MirrorSeen.ABSENT, None, None
        record = read_launch_record((mirror.get("metadata") or {}).get("annotations"))
        if record is None:
            return MirrorSeen.PRESENT, None, None
        if self.config.policy.launch_id in (None, record.id):
            self._comparator = record.comparator
        return MirrorSeen.PRESENT, record.id, record.deadline

    def _log_read_error(self, message: str) -> None:
        now = time.monotonic()
        if (
            self._last_error is None
            or self._last_error[0] != message
            or now - self._last_error[1] > REPEAT_ERROR_AFTER_SECONDS
        ):
            self.log(f"cannot read the mirror (will keep trying): {message}")
            self._last_error = (message, now)

    def roll_back(self, reason: str) -> int:
        options = self.config.rollback_options()
        delay = 1.0
        for attempt in range(1, ROLLBACK_ATTEMPTS + 1):
            try:
                # A fresh client each time: the failure may have been the connection itself.
                client = self._make_client() if attempt > 1 else self._client
                summaries = _roll_back(client, options)
            except DarklaunchError as error:
                self.log(f"rollback attempt {attempt}/{ROLLBACK_ATTEMPTS} failed: {error.msg}")
                if attempt == ROLLBACK_ATTEMPTS:
                    self.finish("rollback_failed", reason, error=error.msg)
                    return EXIT_ROLLBACK_FAILED
                time.sleep(delay)
                delay = min(delay * 2, ROLLBACK_MAX_DELAY_SECONDS)
                continue
            summaries += self.remove_comparator(client)
            for summary in summaries:
                self.log(f"done: {summary}")
            if not summaries:
                self.log("nothing to roll back: the route was not routed through the mirror and no mirror exists")
            self.finish("rolled_back", reason, actions=summaries)
            return EXIT_OK
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns

    def remove_comparator(self, client: Any) -> list[str]:
        """Remove the comparator the launch record names, as the role would at a rollback: only objects labelled
        as this route's comparator (never a user's own of that name). A failure is logged; the route's rollback
        stands."""
        name, namespace = self._comparator, self.config.namespace
        if not name:
            return []
        try:
            actions, warnings = remove_comparator(client, namespace, name, self.config.route_name, False)
        except DarklaunchError as error:
            self.log(
                f"the comparator {namespace}/{name} could not be removed: {error.msg}; remove it with the "
                "shadow_launch role's rollback entry point"
            )
            return []
        for warning in warnings:
            self.log(warning)
        return [
            f"deleted {action['kind']} {namespace}/{action['name']} (the launch's comparator)" for action in actions
        ]

    def finish(self, outcome: str, reason: str, **extra: Any) -> None:
        """Record what happened for the action plugin's next disarm (or arm), and give up the PID file."""
        write_private_json(
            self.config.files.outcome,
            {
                "outcome": outcome,
                "reason": reason,
                "at": format_utc_second(datetime.now(timezone.utc)),
                "pid": os.getpid(),
                **extra,
            },
        )
        if self.owns_pid_file():
            remove(self.config.files.pid)
        if outcome == "failed_to_start" or outcome == "rollback_failed":
            self.log(f"{outcome.replace('_', ' ')}: {extra.get('error', reason)}")


def _roll_back(client: Any, options: dict[str, Any]) -> list[str]:
    """traefik_mirror state=absent on the route's kind; what it did, in words."""
    if options.get("route_kind") == KIND_HTTP_ROUTE:
        return [str(action["summary"]) for action in run_httproute_mirror(client, options, check_mode=False)["actions"]]
    return [action.summary for action in run_mirror(client, options, check_mode=False).plan.actions]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m ...plugins.plugin_utils._watchdog_process CONFIG_FILE\n")
        return EXIT_NOT_STARTED
    config_path = Path(args[0])
    data = read_json(config_path)
    remove(config_path)  # the credentials in it are not left on disk
    if data is None:
        sys.stdout.write(f"cannot read the watchdog config {config_path}\n")
        return EXIT_NOT_STARTED
    config = WatchdogConfig.from_dict(data)
    log = Log(auth_secrets(config.auth))
    watchdog = Watchdog(config, log, lambda: _client(config))
    # SIGTERM is the action plugin's disarm; SIGINT and SIGHUP can only come from someone who means it,
    # since the watchdog runs in its own session without a terminal.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, watchdog.request_stop)
    try:
        if not watchdog.start():
            return EXIT_NOT_STARTED
        return watchdog.run()
    except Exception as error:  # the last word in the log must say why the watchdog is gone
        log(f"unexpected error, the watchdog stops: {error}\n{traceback.format_exc()}")
        watchdog.finish("crashed", str(error))
        return EXIT_ROLLBACK_FAILED


def _client(config: WatchdogConfig) -> KubeClient:
    client = KubeClient.from_params(config.client_params())
    client.traefik_group(config.api_group)
    return client


if __name__ == "__main__":
    sys.exit(main())
