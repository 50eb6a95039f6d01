# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of ``darklaunch.traefik.launch_report`` (documented in plugins/modules/launch_report.py).

Runs on the controller: the report is written where the operator (or the AWX job's artifacts) can
open it, and nothing is sent to a managed host.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import route_spec
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s_auth import (
    HAS_KUBERNETES,
    build_configuration,
    resolve_auth_options,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._kubeconfig_context import (
    default_kubeconfig,
    kubeconfig_context,
)
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_data import report_data
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_files import slug, write_page
from ansible_collections.darklaunch.traefik.plugins.plugin_utils._report_html import render


def argument_spec() -> dict[str, Any]:
    return {
        **route_spec(),
        "dest_dir": {"type": "path", "default": "."},
        "outcome": {"type": "str", "required": True},
        "summary": {"type": "str", "default": ""},
        "steps": {"type": "list", "elements": "dict", "default": []},
        "checks": {"type": "list", "elements": "dict", "default": []},
        "changes": {"type": "list", "elements": "dict", "default": []},
        "final_state": {"type": "dict", "default": {}},
        "series": {"type": "dict", "default": {}},
        "compare_samples": {"type": "dict", "default": {}},
        "cluster": {"type": "dict", "default": {}},
        "k8s_auth": {"type": "dict", "default": {}, "no_log": True},
        "owner": {"type": "str"},
        "launch_id": {"type": "str"},
        "gate": {"type": "dict", "default": {}},
    }


class ActionModule(ControllerAction):
    spec = staticmethod(argument_spec)

    def run(self, tmp: str | None = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result, params = self.start(tmp, task_vars)
        params["cluster"] = cluster_of(params["cluster"], params["k8s_auth"])
        data = report_data(params)
        page = render(data)
        stem = "shadow-launch-{}-{}-{}-{}".format(
            slug(params["cluster"]["name"]), slug(params["namespace"]), slug(params["route_name"]), data["file_time"]
        )
        directory = os.path.abspath(os.path.expanduser(params["dest_dir"]))
        result.update(size_bytes=len(page.encode()), summary=data["stats"], cluster=params["cluster"], changed=False)
        if self._task.check_mode:
            result["path"] = os.path.join(directory, stem + ".html")
            result["msg"] = f"check mode: the report would be written to {result['path']}"
            return result
        try:
            result["path"] = reserve_path(directory, stem)
        except OSError as error:
            result.update(failed=True, msg=f"cannot write the launch report in {directory}: {error.strerror}")
            result["field"] = "dest_dir"
            return result
        return write_page(result, result["path"], page, "launch report")


def cluster_of(given: dict[str, Any], auth: dict[str, Any]) -> dict[str, Any]:
    """The cluster the report names: ``name`` (given, e.g. the fleet host; else the kubeconfig context; else the
    API server's host), ``server`` and ``context``, resolved from ``auth`` as the modules do when not given."""
    cluster = {key: given.get(key) for key in ("name", "server", "context")}
    if not cluster["server"]:
        try:
            if HAS_KUBERNETES:
                resolved = resolve_auth_options(auth)
                cluster["server"] = str(build_configuration(resolved).host)
                if not cluster["context"]:
                    cluster["context"] = kubeconfig_context(resolved, default_kubeconfig())[0]
        except Exception:  # the report is written even when the cluster cannot be named
            pass
    if not cluster["name"]:
        server = str(cluster["server"] or "")
        cluster["name"] = cluster["context"] or urlparse(server).hostname or "unknown-cluster"
    return cluster


def reserve_path(directory: str, stem: str) -> str:
    """A new file ``<stem>.html`` in ``directory``, or ``<stem>-2.html``, ``-3``, ... when it exists: created
    exclusively, so two launches (a fleet's clusters in one wave) never write over each other's report."""
    os.makedirs(directory, exist_ok=True)
    for attempt in range(1, 1000):
        path = os.path.join(directory, f"{stem}.html" if attempt == 1 else f"{stem}-{attempt}.html")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(17, "too many reports of the same second", stem)
