# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``darklaunch.traefik.fleet_report`` (documented in plugins/modules/fleet_report.py).

Runs on the controller, like launch_report: the page links to the clusters' launch reports there.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import route_spec
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._fleet_report_html import fleet_summary, render_fleet
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_files import slug, write_page


def argument_spec() -> dict[str, Any]:
    return {
        **route_spec(),
        "dest_dir": {"type": "path", "default": "."},
        "clusters": {"type": "list", "elements": "dict", "required": True},
    }


class ActionModule(ControllerAction):
    spec = staticmethod(argument_spec)

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result, params = self.start(tmp, task_vars)
        generated = time.time()
        stamp = datetime.fromtimestamp(generated, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        name = f"shadow-launch-fleet-{slug(params['namespace'])}-{slug(params['route_name'])}-{stamp}.html"
        directory = os.path.abspath(os.path.expanduser(params["dest_dir"]))
        path = os.path.join(directory, name)
        page = render_fleet(params["route_name"], params["namespace"], params["clusters"], directory, generated)
        result.update(
            path=path, size_bytes=len(page.encode()), summary=fleet_summary(params["clusters"]), changed=False
        )
        if self._task.check_mode:
            result["msg"] = f"check mode: the fleet report would be written to {path}"
            return result
        return write_page(result, path, page, "fleet report")
