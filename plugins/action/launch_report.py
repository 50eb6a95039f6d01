# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``darklaunch.traefik.launch_report`` (documented in plugins/modules/launch_report.py).

Runs on the controller: the report is written where the operator (or the AWX job's artifacts) can
open it, and nothing is sent to a managed host.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.plugins.action import ActionBase

from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_data import report_data
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_files import slug, write_page
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_html import render


def argument_spec() -> dict[str, Any]:
    return {
        "route_name": {"type": "str", "required": True},
        "namespace": {"type": "str", "default": "default"},
        "dest_dir": {"type": "path", "default": "."},
        "outcome": {"type": "str", "required": True},
        "summary": {"type": "str", "default": ""},
        "steps": {"type": "list", "elements": "dict", "default": []},
        "checks": {"type": "list", "elements": "dict", "default": []},
        "changes": {"type": "list", "elements": "dict", "default": []},
        "final_state": {"type": "dict", "default": {}},
        "series": {"type": "dict", "default": {}},
    }


def module_kwargs() -> dict[str, Any]:
    """What an AnsibleModule of this action would be given (tests compare it with the documentation)."""
    return {"argument_spec": argument_spec(), "supports_check_mode": True}


class ActionModule(ActionBase):  # type: ignore[misc]  # ansible-core ships no type information
    TRANSFERS_FILES = False
    _requires_connection = False  # the report is written on the controller

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = super().run(tmp, task_vars)
        _validation, params = self.validate_argument_spec(argument_spec=argument_spec())
        data = report_data(params)
        page = render(data)
        name = "shadow-launch-{}-{}-{}.html".format(
            slug(params["namespace"]), slug(params["route_name"]), data["file_time"]
        )
        path = os.path.abspath(os.path.join(os.path.expanduser(params["dest_dir"]), name))
        result.update(path=path, size_bytes=len(page.encode()), summary=data["stats"], changed=False)
        if self._task.check_mode:
            result["msg"] = f"check mode: the report would be written to {path}"
            return result
        return write_page(result, path, page, "launch report")
