# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``darklaunch.traefik.launch_watchdog`` (documented in plugins/modules/launch_watchdog.py).

It runs on the controller, in the worker process ansible-playbook forks for the task, so the worker's
parent is the ansible-playbook process the watchdog must outlive. Nothing is sent to the managed host.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.utils.display import Display

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import route_spec, with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import (
    HAS_KUBERNETES,
    build_configuration,
    kubernetes_missing_error,
    resolve_auth_options,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import TRAEFIK_GROUPS
from ansible_collections.darklaunch.traefik.plugins.module_utils._redact import auth_secrets, scrub
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_control import (
    absolute_paths,
    arm_for_route,
    disarm_route,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._watchdog_files import (
    RouteFiles,
    route_files,
    state_dir,
)

display = Display()


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            "state": {"type": "str", "choices": ["armed", "disarmed"], "default": "armed"},
            **route_spec(),
            "route_kind": {"type": "str", "choices": ["IngressRoute", "HTTPRoute"], "default": "IngressRoute"},
            "mirror_name": {"type": "str"},
            "wrr_name": {"type": "str"},
            "restore_ingress_to_wrr": {"type": "bool", "default": True},
            "poll_seconds": {"type": "float", "default": 1.0},
            "grace_seconds": {"type": "float", "default": 60.0},
            "launch_id": {"type": "str"},
            "api_group": {"type": "str", "choices": list(TRAEFIK_GROUPS)},
        }
    )


class ActionModule(ControllerAction):
    spec = staticmethod(argument_spec)

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result, params = self.start(tmp, task_vars)
        secrets = auth_secrets(params)
        try:
            result.update(self._run(params))
        except DarklaunchError as error:
            # An action plugin's result is not masked like a module's: scrub the message ourselves.
            result.update(failed=True, msg=scrub(error.msg, secrets))
            if error.field is not None:
                result["field"] = error.field
        return result

    def _run(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_numbers(params)
        if not HAS_KUBERNETES:
            raise kubernetes_missing_error()
        auth = absolute_paths(resolve_auth_options(params))
        api_server = str(build_configuration(auth).host)
        files = route_files(state_dir(), params["namespace"], params["route_name"], api_server)
        if params["state"] == "disarmed":
            return self._disarm(files)
        return self._arm(files, params, auth)

    def _arm(self, files: RouteFiles, params: dict[str, Any], auth: dict[str, Any]) -> dict[str, Any]:
        if self._task.check_mode:
            return {"changed": True, "armed": False, "pid": None, "log_path": str(files.log)}
        watchdog = arm_for_route(files, params, auth, __file__)
        return {
            "changed": True,
            "armed": True,
            "pid": watchdog.pid,
            "controller_pid": os.getppid(),
            "log_path": str(files.log),
        }

    def _disarm(self, files: RouteFiles) -> dict[str, Any]:
        if self._task.check_mode:
            running = files.pid.exists()
            return {"changed": running, "armed": False, "stopped": running, "pid": None, "log_path": str(files.log)}
        stopped = disarm_route(files)
        result: dict[str, Any] = {
            "changed": stopped.was_running,
            "armed": False,
            "stopped": stopped.was_running,
            "pid": stopped.pid,
            "log_path": str(files.log),
            "rolled_back": bool(stopped.outcome and stopped.outcome.get("outcome") == "rolled_back"),
        }
        if stopped.outcome:
            result["outcome"] = stopped.outcome
            display.warning(
                f"The launch watchdog had already acted before it was disarmed: {stopped.outcome.get('outcome')} "
                f"({stopped.outcome.get('reason')}) at {stopped.outcome.get('at')}. See {files.log}."
            )
        return result


def _check_numbers(params: dict[str, Any]) -> None:
    if params["poll_seconds"] <= 0:
        raise DarklaunchError("poll_seconds must be more than 0 (for example 1).", field="poll_seconds")
    if params["grace_seconds"] < 0:
        raise DarklaunchError("grace_seconds must be 0 or more (for example 60).", field="grace_seconds")
