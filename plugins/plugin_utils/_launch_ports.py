# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The launch engine's edges: the ports it is driven through, what it is asked to do, and how a launch ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._launch_rules import (
    GateRules,
)

# How a launch ends (the role's shadow_launch_result.outcome; AWX workflows branch on it).
PASSED = "passed"
PLANNED = "planned"  # check mode
REFUSED = "refused"  # stopped before any change
ROLLED_BACK = "rolled_back"
ROLLBACK_FAILED = "rollback_failed"
TAKEN_OVER = "taken_over"
CHECK_MODE_STEP = "not run (check mode)"


class JudgeUnavailable(Exception):
    """The gate could not ask Prometheus (timeout, refused connection, 5xx): counted against the error limit."""


class Cluster(Protocol):
    def plan(self, percent: int) -> dict[str, Any]:
        """traefik_mirror's dry run (check mode) of the first step with the attach; raises DarklaunchError."""

    def apply(self, percent: int, attach: bool, record: str, progress: str | None) -> dict[str, Any]:
        """traefik_mirror state=present with the launch record (``running`` or ``finished``) and the checks so
        far in words (None keeps the last)."""

    def restore(self) -> dict[str, Any]:
        """traefik_mirror state=absent: the IngressRoute back as it was, the mirror deleted."""

    def observe(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The mirror TraefikService and the IngressRoute as they are now (None when missing)."""

    def read_route(self) -> dict[str, Any] | None:
        """The route's distribution (traefik_traffic_info's), None when the IngressRoute does not exist."""

    def rollback_command(self) -> str:
        """The command that restores the route and deletes the mirror, on this launch's cluster."""

    def status_command(self) -> str:
        """The command that shows the route's state, on this launch's cluster."""


class Judge(Protocol):
    def check(self, since: float | None = None) -> dict[str, Any]:
        """The traffic lookup's ``anomalies`` answer for the route; raises JudgeUnavailable. ``since``: when the
        mirror's current percentage took effect (the step's start): the lookup's ``mirror_since``."""


class Watchdog(Protocol):
    def arm(self) -> str | None:
        """Start the watchdog; the path of its log on the controller, when it has one."""

    def disarm(self) -> dict[str, Any] | None:
        """Stop the watchdog; its outcome when it had already acted (rolled the launch back), else None."""


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class LaunchPlan:
    """What the launch is asked to do (the role's variables, already read)."""

    route_name: str
    namespace: str
    steps: tuple[int, ...]
    rules: GateRules
    attach: bool
    teardown: bool
    launch_id: str
    takeover: bool = False
    check_mode: bool = False
    restore_to_wrr: bool = True
    window_seconds: float = 60.0
    window: str = "1m"


@dataclass
class LaunchResult:
    outcome: str
    msg: str
    cause: str | None = None
    cause_kind: str | None = None
    failed_check: dict[str, Any] | None = None
    passed: list[int] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    resolved: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)
    # The command that shows the route now, on the launch's cluster (named in the failure block).
    status_command: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome not in (PASSED, PLANNED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "msg": self.msg,
            "cause": self.cause,
            "cause_kind": self.cause_kind,
            "failed_check": self.failed_check,
            "passed_steps": list(self.passed),
            "steps": list(self.steps),
            "checks": list(self.checks),
            "changes": list(self.changes),
            "resolved": dict(self.resolved),
            "before": self.before,
            "status_command": self.status_command,
        }
