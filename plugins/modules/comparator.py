#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: comparator
short_description: Deploy or remove a route's response comparator (ConfigMap, Deployment, Service)
version_added: 0.1.0
description:
  - Deploys the comparator of docs/comparator.md between a route's mirror and its shadow, as the
    C(shadow_launch) role does with C(shadow_launch_compare=true). A ConfigMap holds the program, a
    Deployment runs it on a stock Python image, a Service (named O(name), port O(port)) receives the mirrored
    copies. Point the mirror at that Service; the comparator forwards each copy to the candidate and replays
    safe methods to the primary and the secondary.
  - The comparator exports its metrics with C(darklaunch_route="NAMESPACE/ROUTE"); the pods carry the
    C(prometheus.io/scrape), C(prometheus.io/port) and C(prometheus.io/path) annotations.
  - Every object is labelled C(app.kubernetes.io/managed-by=darklaunch.traefik),
    C(app.kubernetes.io/component=comparator) and C(darklaunch.traefik/route=ROUTE). Only objects with these
    labels are replaced or deleted; an object of the same name without them makes O(state=present) fail
    before any write and is left as it is by O(state=absent).
  - An unchanged comparator is left as it is; a changed one is replaced whole.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.converges
  - darklaunch.traefik.attributes.actiongroup_traefik
options:
  route_name:
    description: Name of the IngressRoute whose copies the comparator judges.
    type: str
    required: true
  namespace:
    description: Namespace of the route, of the comparator and of the Services it calls.
    type: str
    default: default
  state:
    description: V(present) deploys (or updates) the comparator; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Name of the ConfigMap, Deployment and Service. Empty means C({route_name}-compare).
    type: str
    default: ""
  port:
    description: Port of the comparator's Service (the mirror's target port).
    type: int
    default: 8099
  candidate_service:
    description: The shadow's Service (the new version). Required with O(state=present).
    type: str
  candidate_port:
    description: Its port; empty means the Service's only port.
    type: int
  primary_service:
    description: The main (stable) Service. Required with O(state=present).
    type: str
  primary_port:
    description: Its port; empty means the Service's only port.
    type: int
  secondary_service:
    description: A second stable Service; empty means O(primary_service) again (two calls to it reveal noise).
    type: str
  secondary_port:
    description: Its port; empty means the Service's only port.
    type: int
  program:
    description:
      - The text of C(darklaunch_compare.py) (the role passes C(roles/shadow_launch/files/darklaunch_compare.py)).
        Required with O(state=present).
    type: str
  image:
    description: A stock Python 3.10 or later image.
    type: str
    default: python:3.12-slim
  resources:
    description: The container's C(resources) (requests and limits), as in a Pod spec.
    type: dict
    default: {requests: {cpu: 50m, memory: 48Mi}, limits: {cpu: 500m, memory: 128Mi}}
  labels:
    description: Extra labels on every object (the collection's own labels win).
    type: dict
    default: {}
  ignore_json_pointers:
    description: JSON pointers never compared (C(--ignore-json-pointer)), for example C(/timestamp) or C(/items/*/id).
    type: list
    elements: str
    default: []
  ignore_headers:
    description: Response headers never compared (C(--ignore-header)).
    type: list
    elements: str
    default: []
  safe_methods:
    description: Methods replayed to primary and secondary and compared; empty means the program's default.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds per upstream call.
    type: float
    default: 5
  wait_seconds:
    description:
      - With O(state=present), how long to wait for the Deployment's first available pod; past it the module
        fails (the objects stay; remove them with O(state=absent)). Traefik refuses a mirror whose Service
        has no ready endpoint, and with it the route (users get 404), so nothing may point at the comparator
        before it is ready. V(0) does not wait.
    type: float
    default: 120
requirements:
  - kubernetes >= 24.2.0
seealso:
  - module: darklaunch.traefik.traefik_mirror
notes:
  - Needs C(configmaps), C(services) (core) and C(deployments) (C(apps)) C(get), C(create) and C(delete) in the
    namespace, beyond docs/rbac/shadow-operator-role.yaml (docs/rbac/README.md).
  - The collection's local test cluster has no kubelet, so there these objects are created and checked, not run.
"""

EXAMPLES = r"""
- name: Put a comparator between the mirror and the shadow
  darklaunch.traefik.comparator:
    route_name: shop
    namespace: production
    candidate_service: shop-staging
    primary_service: shop-stable
    program: "{{ lookup('ansible.builtin.file', 'darklaunch_compare.py') }}"
    ignore_json_pointers: [/timestamp]

- name: Remove it
  darklaunch.traefik.comparator:
    route_name: shop
    namespace: production
    state: absent
"""

RETURN = r"""
name:
  description: The objects' name.
  returned: always
  type: str
  sample: shop-compare
actions:
  description: One C({kind, name, action}) per object, C(action) V(created), V(replaced), V(unchanged) or V(deleted).
  returned: always
  type: list
  elements: dict
left_as_is:
  description: Objects of the name left as they are because they are not this route's comparator (O(state=absent)).
  returned: always
  type: list
  elements: str
ready_after_seconds:
  description: How long the Deployment took to have an available pod (O(state=present); 0 without waiting).
  returned: when state is present
  type: float
args:
  description: The program's command line in the Deployment (O(state=present)).
  returned: when state is present
  type: list
  elements: str
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import route_spec, with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_deploy import (
    deploy,
    remove,
    service_port,
    wait_ready,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_manifests import (
    DEFAULT_IMAGE,
    DEFAULT_RESOURCES,
    ComparatorSpec,
    args,
    manifests,
    service_url,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module import kube_module


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            **route_spec(),
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "name": {"type": "str", "default": ""},
            "port": {"type": "int", "default": 8099},
            "candidate_service": {"type": "str"},
            "candidate_port": {"type": "int"},
            "primary_service": {"type": "str"},
            "primary_port": {"type": "int"},
            "secondary_service": {"type": "str"},
            "secondary_port": {"type": "int"},
            "program": {"type": "str"},
            "image": {"type": "str", "default": DEFAULT_IMAGE},
            "resources": {"type": "dict", "default": dict(DEFAULT_RESOURCES)},
            "labels": {"type": "dict", "default": {}},
            "ignore_json_pointers": {"type": "list", "elements": "str", "default": []},
            "ignore_headers": {"type": "list", "elements": "str", "default": []},
            "safe_methods": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "float", "default": 5.0},
            "wait_seconds": {"type": "float", "default": 120.0},
        }
    )


def run(module: AnsibleModule, client: Any) -> dict[str, Any]:
    params = module.params
    namespace, route = params["namespace"], params["route_name"]
    name = params["name"] or default_names.compare_service_name(route)
    if params["state"] == "absent":
        actions, warnings = remove(client, namespace, name, route, module.check_mode)
        return {"changed": bool(actions), "name": name, "actions": actions, "left_as_is": warnings}
    for option in ("candidate_service", "primary_service", "program"):
        if not params[option]:
            raise DarklaunchError(f"{option} is required with state=present.", field=option)
    secondary = params["secondary_service"] or params["primary_service"]
    secondary_port = params["secondary_port"] if params["secondary_service"] else params["primary_port"]
    urls = {
        side: service_url(service, namespace, service_port(client, namespace, service, port, f"{side}_service"))
        for side, service, port in (
            ("candidate", params["candidate_service"], params["candidate_port"]),
            ("primary", params["primary_service"], params["primary_port"]),
            ("secondary", secondary, secondary_port),
        )
    }
    spec = ComparatorSpec(
        name=name,
        namespace=namespace,
        route=route,
        port=params["port"],
        program=params["program"],
        candidate=urls["candidate"],
        primary=urls["primary"],
        secondary=urls["secondary"],
        image=params["image"],
        resources=params["resources"],
        ignore_json_pointers=tuple(params["ignore_json_pointers"]),
        ignore_headers=tuple(params["ignore_headers"]),
        safe_methods=tuple(method.upper() for method in params["safe_methods"]),
        timeout=params["timeout"],
        extra_labels=params["labels"],
    )
    actions = deploy(client, manifests(spec), route, module.check_mode)
    changed = any(action["action"] != "unchanged" for action in actions)
    waited = 0.0
    if not module.check_mode and params["wait_seconds"] > 0:
        waited = wait_ready(client, namespace, name, params["wait_seconds"])
    return {
        "changed": changed,
        "name": name,
        "actions": actions,
        "left_as_is": [],
        "args": args(spec),
        "ready_after_seconds": round(waited, 1),
    }


def main() -> None:
    module = kube_module(argument_spec())
    try:
        result = run(module, KubeClient.from_params(module.params))
    except DarklaunchError as error:
        module.fail_json(**error.fail_kwargs())
    for warning in result["left_as_is"]:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
