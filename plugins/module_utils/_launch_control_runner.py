# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run launch_control: read the mirror, plan the operator's command (``_launch_control``), write it.

The write is one JSON Patch that tests the resourceVersion that was read, so a launch renewing its record
(or anyone else) between the read and the write is never overwritten: the mirror is read again and the
command planned again, up to three times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import ConflictError, DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import CommandConnection
from ansible_collections.darklaunch.traefik.plugins.module_utils._launch_control import (
    ControlPlan,
    check_by,
    check_command,
    plan_control,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._mirror_params import MirrorParams
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import KIND_TRAEFIK_SERVICE, check_name

MAX_ATTEMPTS = 3


class KubeControl(Protocol):
    # What a printed rollback command names to reach this cluster (KubeClient.connection).
    connection: CommandConnection

    def traefik_group(self, requested: str | None = None) -> str: ...

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...

    def json_patch(self, kind: str, namespace: str | None, name: str, ops: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ControlTarget:
    """Where the command goes: the route, its namespace and its mirror's name (default ``{route}-mirror``)."""

    route_name: str
    namespace: str
    mirror_name: str

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ControlTarget:
        route = check_name(options.get("route_name"), "route_name", "subdomain")
        given = options.get("namespace")
        namespace = check_name("default" if given is None else given, "namespace", "label")
        # traefik_mirror's own naming rule, so both modules find the same mirror.
        names = MirrorParams(route_name=route, mirror_name=options.get("mirror_name") or "").with_defaults()
        return cls(route, namespace, check_name(names.mirror_name, "mirror_name", "subdomain"))


@dataclass
class ControlRun:
    plan: ControlPlan
    target: ControlTarget
    api_group: str
    attempts: int
    mirror_after: dict[str, Any] | None = None  # the object the API returned after the write


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def run_control(
    client: KubeControl,
    options: Mapping[str, Any],
    *,
    check_mode: bool,
    clock: Callable[[], datetime] = _utc_now,
) -> ControlRun:
    """Give ``options["command"]`` to the launch on the route. Raises DarklaunchError with nothing written."""
    target = ControlTarget.from_options(options)
    command = check_command(options.get("command"))
    by = check_by(options.get("by"))
    if options.get("api_group"):
        client.traefik_group(options["api_group"])  # a known group: no detection
    for attempt in range(1, MAX_ATTEMPTS + 1):
        mirror = client.get(KIND_TRAEFIK_SERVICE, target.namespace, target.mirror_name)
        plan = plan_control(
            mirror,
            command,
            by,
            clock(),
            route_name=target.route_name,
            namespace=target.namespace,
            mirror_name=target.mirror_name,
            check_mode=check_mode,
            connection=client.connection,
        )
        run = ControlRun(plan=plan, target=target, api_group=client.traefik_group(), attempts=attempt)
        if check_mode or not plan.changed:
            return run
        try:
            run.mirror_after = client.json_patch(KIND_TRAEFIK_SERVICE, target.namespace, target.mirror_name, plan.ops)
        except ConflictError as conflict:
            if attempt < MAX_ATTEMPTS:
                continue
            raise DarklaunchError(
                f"{conflict.msg.rstrip('.')}. The mirror kept changing during {MAX_ATTEMPTS} attempts, so the "
                f"{command} command was not written. A launch renews its record at every check, "
                "but not this often: find who else edits the mirror (a GitOps controller?) and retry.",
                field="mirror_name",
                details=conflict.details,
            ) from conflict
        except DarklaunchError as error:
            # Deleted since it was read (the launch ended or was rolled back): read again and say so.
            if error.details.get("api_status") == 404 and attempt < MAX_ATTEMPTS:
                continue
            raise
        return run
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
