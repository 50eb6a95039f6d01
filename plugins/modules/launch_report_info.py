#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: launch_report_info
short_description: List the launch reports kept in the cluster, or read one
version_added: 0.1.0
description:
  - Lists the launch reports M(darklaunch.traefik.launch_report_store) keeps as ConfigMaps, newest first, of
    one route or of every route, in one namespace or in all.
  - With O(fetch), also returns one report's HTML page as RV(page) (O(name), else the route's newest).
  - Read-only.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.info_module
  - darklaunch.traefik.attributes.actiongroup_traefik
options:
  namespace:
    description: Namespace to read; omit to list every namespace (not with O(fetch)).
    type: str
  route_name:
    description: Only this IngressRoute's reports; required with O(fetch) unless O(name) is given.
    type: str
  name:
    description: The ConfigMap of the report to fetch (as listed); default the newest of O(route_name).
    type: str
  fetch:
    description: Return the page of one report as RV(page).
    type: bool
    default: false
requirements:
  - kubernetes >= 24.2.0
seealso:
  - module: darklaunch.traefik.launch_report_store
"""

EXAMPLES = r"""
- name: The newest report of a route
  darklaunch.traefik.launch_report_info:
    namespace: production
    route_name: api-service-route
    fetch: true
  register: kept

- name: Save it
  ansible.builtin.copy:
    content: "{{ kept.page }}"
    dest: /tmp/report.html
    mode: "0644"
"""

RETURN = r"""
reports:
  description: The kept reports, newest first.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The ConfigMap's name.
      type: str
    namespace:
      description: Its namespace.
      type: str
    route:
      description: The IngressRoute of the launch.
      type: str
    launch_id:
      description: The launch's id.
      type: str
    outcome:
      description: How the launch ended.
      type: str
    started:
      description: When the launch started.
      type: str
    ended:
      description: When it ended.
      type: str
    owner:
      description: Who ran it.
      type: str
    cluster:
      description: The cluster as the report names it.
      type: str
    encoding:
      description: V(plain), V(gzip) or V(omitted).
      type: str
    html_bytes:
      description: The page's size.
      type: int
    created:
      description: When the ConfigMap was created.
      type: str
    summary:
      description: The launch's summary, as the role's C(set_stats) carries it.
      type: dict
report:
  description: The fetched report's entry (as in RV(reports)).
  returned: with O(fetch)
  type: dict
page:
  description: The fetched report's HTML page.
  returned: with O(fetch)
  type: str
"""

from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module import kube_module
from ansible_collections.darklaunch.traefik.plugins.module_utils._report_store import list_reports, read_report


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            "namespace": {"type": "str"},
            "route_name": {"type": "str"},
            "name": {"type": "str"},
            "fetch": {"type": "bool", "default": False},
        }
    )


def main() -> None:
    module = kube_module(argument_spec())
    params = module.params
    if params["fetch"] and not params["namespace"]:
        module.fail_json(msg="fetch needs namespace", field="namespace")
    if params["fetch"] and not (params["name"] or params["route_name"]):
        module.fail_json(msg="fetch needs route_name (its newest report) or name", field="route_name")
    result: dict[str, Any] = {"changed": False}
    try:
        client = KubeClient.from_params(params)
        result["reports"] = list_reports(client, params["namespace"], params["route_name"])
        if params["fetch"]:
            result["report"], result["page"] = read_report(
                client, params["namespace"], params["route_name"] or "", params["name"]
            )
    except DarklaunchError as error:
        module.fail_json(**error.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
