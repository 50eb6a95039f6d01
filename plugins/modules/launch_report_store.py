#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: launch_report_store
short_description: Keep a shadow launch's report in the cluster, beside the route
version_added: 0.1.0
description:
  - Keeps the HTML report of one launch (written by M(darklaunch.traefik.launch_report)) and its summary in a
    ConfigMap in the route's namespace, so the report outlives the machine or the AWX execution environment
    that ran the launch. Read it back with M(darklaunch.traefik.launch_report_info) or C(playbooks/shadow_report.yml).
  - The ConfigMap is named C(shadow-report-<route>-<launch id>) and labelled
    C(app.kubernetes.io/managed-by=darklaunch.traefik), C(app.kubernetes.io/component=launch-report) and
    C(darklaunch.traefik/route=<route>); its annotations C(darklaunch.traefik/report-outcome),
    C(darklaunch.traefik/report-started), C(darklaunch.traefik/report-ended), C(darklaunch.traefik/report-owner)
    and C(darklaunch.traefik/report-cluster) tell the launch.
  - It holds C(summary.json) and the page, as C(report.html) up to 256 KiB, else gzip-compressed as
    C(report.html.gz) in C(binaryData) (a report is typically 15 to 150 KiB, 5 to 10 times smaller
    compressed). A page still above 512 KiB compressed is not kept (the summary is), far under the 1 MiB
    limit of a ConfigMap.
  - Keeps the newest O(keep) reports of the route (by the launch's start) and deletes the older ones.
  - Running it again for the same launch replaces the ConfigMap only if its content changed.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.converges
  - darklaunch.traefik.attributes.actiongroup_traefik
options:
  route_name:
    description: Name of the IngressRoute of the launch.
    type: str
    required: true
  namespace:
    description: Namespace of the IngressRoute, where the ConfigMap is kept.
    type: str
    default: default
  launch_id:
    description: The launch's id (the role's launch record id); with O(route_name) it names the ConfigMap.
    type: str
    required: true
  report_path:
    description: The HTML report on the host the module runs on (the controller, for the role).
    type: path
    required: true
  summary:
    description: The launch in a few fields (what M(darklaunch.traefik.launch_report) returns as C(summary)).
    type: dict
    default: {}
  outcome:
    description: How the launch ended.
    type: str
  started:
    description: When the launch started (RFC 3339 UTC); orders the kept reports.
    type: str
  ended:
    description: When the launch ended (RFC 3339 UTC).
    type: str
  owner:
    description: Who ran the launch.
    type: str
  cluster:
    description: The cluster's name as the report states it (kubeconfig context or fleet host name).
    type: str
  keep:
    description: How many reports of the route are kept; older ones are deleted.
    type: int
    default: 5
requirements:
  - kubernetes >= 24.2.0
seealso:
  - module: darklaunch.traefik.launch_report
  - module: darklaunch.traefik.launch_report_info
notes:
  - Needs C(configmaps) C(list), C(create) and C(delete) in the namespace
    (docs/rbac/shadow-operator-role.yaml).
"""

EXAMPLES = r"""
- name: Keep the report in the cluster, the newest 5 of the route
  darklaunch.traefik.launch_report_store:
    route_name: api-service-route
    namespace: production
    launch_id: 20261127T151200Z-3f9c2a
    report_path: "{{ report.path }}"
    summary: "{{ report.summary }}"
    outcome: passed
    keep: 5
"""

RETURN = r"""
name:
  description: The ConfigMap's name.
  returned: success
  type: str
  sample: shadow-report-api-service-route-20261127t151200z-3f9c2a
namespace:
  description: Its namespace.
  returned: success
  type: str
  sample: production
action:
  description: V(created), V(replaced) or V(unchanged).
  returned: success
  type: str
encoding:
  description: How the page is kept, V(plain), V(gzip) or V(omitted) (too large; the summary is kept).
  returned: success
  type: str
html_bytes:
  description: The page's size.
  returned: success
  type: int
stored_bytes:
  description: The size of what the ConfigMap holds (page and summary, as stored).
  returned: success
  type: int
pruned:
  description: The older reports of the route deleted (or that would be, in check mode).
  returned: success
  type: list
  elements: str
"""

from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import route_spec, with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module import kube_module
from ansible_collections.darklaunch.traefik.plugins.module_utils._report_store import (
    report_body,
    report_name,
    store_report,
)


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            **route_spec(),
            "launch_id": {"type": "str", "required": True},
            "report_path": {"type": "path", "required": True},
            "summary": {"type": "dict", "default": {}},
            "outcome": {"type": "str"},
            "started": {"type": "str"},
            "ended": {"type": "str"},
            "owner": {"type": "str"},
            "cluster": {"type": "str"},
            "keep": {"type": "int", "default": 5},
        }
    )


def main() -> None:
    module = kube_module(argument_spec())
    params = module.params
    try:
        with open(params["report_path"], encoding="utf-8") as handle:
            page = handle.read()
    except OSError as error:
        module.fail_json(msg=f"cannot read the report {params['report_path']}: {error.strerror}", field="report_path")
    name = report_name(params["route_name"], params["launch_id"])
    body = report_body(
        name=name,
        route=params["route_name"],
        page=page,
        summary=params["summary"],
        annotations={
            "launch-id": params["launch_id"],
            "outcome": params["outcome"],
            "started": params["started"],
            "ended": params["ended"],
            "owner": params["owner"],
            "cluster": params["cluster"],
        },
    )
    try:
        client = KubeClient.from_params(params)
        stored = store_report(client, params["namespace"], body, params["keep"], check_mode=module.check_mode)
    except DarklaunchError as error:
        module.fail_json(**error.fail_kwargs())
    notes = body["metadata"]["annotations"]
    module.exit_json(
        name=name,
        namespace=params["namespace"],
        encoding=notes["darklaunch.traefik/report-encoding"],
        html_bytes=len(page.encode("utf-8")),
        stored_bytes=sum(len(str(v)) for part in ("data", "binaryData") for v in (body.get(part) or {}).values()),
        **stored,
    )


if __name__ == "__main__":
    main()
