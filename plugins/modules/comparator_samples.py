#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: comparator_samples
short_description: Read one redacted sample per differing path from a route's response comparator
version_added: 0.1.0
description:
  - Reads the redacted samples of differing answers a comparator (docs/comparator.md) keeps, through the
    Kubernetes API server's service proxy (C(GET /api/v1/namespaces/NS/services/NAME:PORT/proxy/__darklaunch/samples)),
    so the controller needs no network path to the comparator, and returns the newest sample of each differing
    path. The C(shadow_launch) role calls it at the end of a launch, before the comparator it deployed is removed,
    and shows the samples in the launch report.
  - Only the request line, the primary's and the candidate's status, the path and both values are returned; query
    values and values under secret-looking keys are redacted again; request headers are never returned.
  - Samples that cannot be read (no right to C(services/proxy), no ready endpoint, a comparator that answers
    something else) are not a failure. RV(available) is V(false) and RV(message) says why.
  - Read-only.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.info_module
  - darklaunch.traefik.attributes.actiongroup_traefik
options:
  route_name:
    description: Name of the route whose comparator is read.
    type: str
    required: true
  namespace:
    description: Namespace of the route and of the comparator's Service.
    type: str
    default: default
  name:
    description: The comparator's Service. Empty means C({route_name}-compare).
    type: str
    default: ""
  port:
    description: The Service's port (number or name).
    type: str
    default: "8099"
  max_paths:
    description: At most this many paths are returned.
    type: int
    default: 50
requirements:
  - kubernetes >= 24.2.0
seealso:
  - module: darklaunch.traefik.comparator
notes:
  - Needs C(services/proxy) C(get) in the namespace (docs/rbac/README.md).
"""

EXAMPLES = r"""
- name: One sample per differing path of the shop route's comparator
  darklaunch.traefik.comparator_samples:
    route_name: shop
    namespace: production
  register: samples

- name: Show them
  ansible.builtin.debug:
    msg: "{{ samples.by_path if samples.available else samples.message }}"
"""

RETURN = r"""
available:
  description: Whether the samples could be read.
  returned: always
  type: bool
message:
  description: What was read, or why nothing could be.
  returned: always
  type: str
  sample: the API server answered 503 to GET /__darklaunch/samples on Service shop/shop-compare:8099 (no endpoints
    available for service "shop-compare:8099")
samples_read:
  description: How many samples the comparator kept.
  returned: always
  type: int
by_path:
  description:
    - The newest sample of each differing path, by the path as C(darklaunch_compare_differences_total) counts it
      (array indexes as C(*)).
    - Each has C(time), C(request) (the request line), C(status) (C(primary), C(candidate)), C(path) (the JSON
      pointer, header or C(body) that differed) and C(primary), C(candidate) (the values, JSON text).
  returned: always
  type: dict
  sample:
    /price:
      time: "2026-12-04T20:41:07Z"
      request: GET /cart?id=42 HTTP/1.1
      status: {primary: 200, candidate: 200}
      path: /price
      primary: "10"
      candidate: "11"
"""

from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils import _default_names as default_names
from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._comparator_samples import (
    SAMPLES_PATH,
    one_per_path,
    parse,
)
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module import kube_module


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            "route_name": {"type": "str", "required": True},
            "namespace": {"type": "str", "default": "default"},
            "name": {"type": "str", "default": ""},
            "port": {"type": "str", "default": "8099"},
            "max_paths": {"type": "int", "default": 50},
        }
    )


def read(client: Any, namespace: str, name: str, port: str, max_paths: int) -> dict[str, Any]:
    """The samples by path, or why there are none: a sample that cannot be read never fails the caller."""
    where = f"Service {namespace}/{name}:{port}"
    try:
        samples = parse(client.service_proxy_get(namespace, name, port, SAMPLES_PATH))
    except DarklaunchError as error:  # its message names the Service and what the API server answered
        return {"available": False, "samples_read": 0, "by_path": {}, "message": str(error)}
    except ValueError as error:
        message = f"{where} answered no samples list ({error})"
        return {"available": False, "samples_read": 0, "by_path": {}, "message": message}
    by_path = one_per_path(samples, max_paths)
    message = f"{where}: {len(samples)} sample(s), {len(by_path)} differing path(s)"
    return {"available": True, "samples_read": len(samples), "by_path": by_path, "message": message}


def main() -> None:
    module = kube_module(argument_spec())
    params = module.params
    name = params["name"] or default_names.compare_service_name(params["route_name"])
    if params["max_paths"] < 1:
        module.fail_json(msg="max_paths must be at least 1.", field="max_paths")
    try:
        client = KubeClient.from_params(params)
    except DarklaunchError as error:
        module.fail_json(**error.fail_kwargs())
    module.exit_json(changed=False, **read(client, params["namespace"], name, params["port"], params["max_paths"]))


if __name__ == "__main__":
    main()
