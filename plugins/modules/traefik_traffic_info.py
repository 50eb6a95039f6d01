#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: traefik_traffic_info
short_description: Show how Traefik splits and mirrors traffic, in plain language
version_added: 0.1.0
description:
  - Lists every mirroring TraefikService (main service, ports, percent copied to each shadow, whether an
    IngressRoute routes through it), every weighted TraefikService (weights and the resulting share of
    real users) and every IngressRoute with the live targets of each route.
  - With O(route_name), also resolves that IngressRoute to its traffic split - direct, weighted or
    mirror (possibly wrapping a weighted split) - with the main sink, each backend's share of user
    responses, the shadow copies and a one-sentence explanation.
  - Broken references (a route pointing at a missing TraefikService or Service, which makes Traefik
    answer 404 on it) and reference cycles are reported, not followed.
  - Reports launches in progress recorded on the mirrors (M(darklaunch.traefik.traefik_mirror)'s
    O(darklaunch.traefik.traefik_mirror#module:launch)); one whose deadline has passed is listed in
    RV(abandoned_launches) with the command that rolls it back.
  - With O(route_name), only what that route needs is read, by name - the IngressRoute, the TraefikServices
    it reaches, the Services they reference, and the route's default mirror C(<route_name>-mirror) - so the
    cost does not grow with the namespace. RV(mirrors), RV(weighted), RV(ingress_routes) and
    RV(abandoned_launches) then hold that route's entries only, and C(referenced_by) / C(active) count that
    route only; omit O(route_name) for the whole namespace.
  - Read-only. Lists are read in pages, so very large clusters do not need one giant response.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.k8s_auth
  - darklaunch.traefik.k8s_auth.api_group
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.info_module
  - darklaunch.traefik.attributes.actiongroup_traefik
options:
  namespace:
    description:
      - Namespace to read. Omit to read all namespaces (needs cluster-wide list permission).
    type: str
  route_name:
    description:
      - Name of an IngressRoute (or a Gateway API HTTPRoute, see O(route_kind)) in O(namespace) whose detailed
        distribution is returned as RV(distribution).
      - The other results then describe that route only (the TraefikServices it reaches and its default mirror
        C(<route_name>-mirror)), read by name instead of listing the namespace.
      - Requires O(namespace).
    type: str
  route_kind:
    description:
      - What O(route_name) names. Unset, the IngressRoute of that name, else the HTTPRoute when only an HTTPRoute
        has that name.
      - An HTTPRoute is described like an IngressRoute, rule by rule (RV(distribution.routes) are its rules),
        with its backendRefs and their weights, and a mirror that M(darklaunch.traefik.traefik_mirror) put in
        front of a rule (the rule's backendRefs on the C(<route_name>-mirror) TraefikService).
    type: str
    choices: [IngressRoute, HTTPRoute]
requirements:
  - kubernetes >= 24.2.0
seealso:
  - module: darklaunch.traefik.traefik_mirror
  - plugin: darklaunch.traefik.traffic
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Everything that mirrors, splits or routes in production
  darklaunch.traefik.traefik_traffic_info:
    namespace: production
  register: traffic

- name: Mirroring services with their main service, ports and shadow percent
  ansible.builtin.debug:
    msg: >-
      {{ item.name }}: main {{ item.main.name }}:{{ item.main.port }},
      {{ item.mirrors | map(attribute='percent') | list }}% copied,
      {{ 'active' if item.active else 'inactive' }}
  loop: "{{ traffic.mirrors }}"
  loop_control:
    label: "{{ item.name }}"

- name: Detailed view of one route
  darklaunch.traefik.traefik_traffic_info:
    namespace: production
    route_name: api-service-route
  register: route

- name: Weighted canary or mirror, and which service is the main sink
  ansible.builtin.debug:
    msg: "{{ route.distribution.traffic_split.type }}: {{ route.distribution.explanation }}"

- name: A Gateway API HTTPRoute, rule by rule (who answers users, what is copied, at what percent)
  darklaunch.traefik.traefik_traffic_info:
    namespace: shop
    route_name: web-route
    route_kind: HTTPRoute
  register: web

- name: Its sentence
  ansible.builtin.debug:
    msg: "{{ web.distribution.explanation }}"

- name: Which TraefikService does the IngressRoute point at right now
  ansible.builtin.debug:
    msg: "{{ route.distribution.target.kind }} {{ route.distribution.target.name }}"

- name: Report launches that were interrupted or killed and left the route on the mirror
  ansible.builtin.debug:
    msg: "ABANDONED: {{ item.message }}"
  loop: "{{ traffic.abandoned_launches }}"
  loop_control:
    label: "{{ item.namespace }}/{{ item.mirror }}"

- name: Every namespace the credentials can list
  darklaunch.traefik.traefik_traffic_info:
  register: everything
"""

RETURN = r"""
api_group:
  description: The Traefik API group that was read.
  returned: always
  type: str
  sample: traefik.io
namespace:
  description: The namespace that was read, or null when every namespace was read.
  returned: always
  type: str
  sample: production
mirrors:
  description:
    - Every mirroring TraefikService (with O(route_name) - those the route reaches and its default mirror).
    - Each C(referenced_by) entry names the route (C(ingress_route), the HTTPRoute's name for C(route_kind)
      V(HTTPRoute), whose C(route_index) is then the rule's), C(route_index), C(direct) and C(route_kind).
  returned: always
  type: list
  elements: dict
  sample:
    - name: api-service-route-mirror
      namespace: production
      main: {name: api-service-stable, kind: Service, namespace: production, port: 80}
      mirrors: [{name: api-service-canary, kind: Service, namespace: production, port: 80, percent: 20}]
      percent: 20
      mirror_body: null
      max_body_size: null
      active: true
      referenced_by: [{ingress_route: api-service-route, namespace: production, route_index: 0, direct: true,
                       route_kind: IngressRoute}]
      launch: null
  contains:
    launch:
      description:
        - The launch recorded on the mirror by M(darklaunch.traefik.traefik_mirror)'s
          O(darklaunch.traefik.traefik_mirror#module:launch) option, or null.
        - The record fields (C(id), C(owner), C(route), C(started), C(step), C(deadline), C(renewed), C(progress),
          C(comparator)) plus C(abandoned), C(seconds_past_deadline), C(rollback_command), C(control) and
          C(message), as in RV(abandoned_launches).
      type: dict
      returned: always
abandoned_launches:
  description:
    - Every launch recorded on a mirror whose deadline has passed (or is unreadable) - its process was
      interrupted or killed and nobody renews it any more, so nobody owns the route. The route keeps
      sending copies to the shadow until it is rolled back with RV(abandoned_launches[].rollback_command).
    - Empty when no launch is abandoned.
  returned: always
  type: list
  elements: dict
  contains:
    mirror:
      description: Name of the mirror TraefikService that carries the record.
      type: str
    namespace:
      description: Its namespace.
      type: str
    id:
      description: The launch id.
      type: str
    owner:
      description: Who or what ran the launch (null when it did not say).
      type: str
    route:
      description: The IngressRoute the launch ran on.
      type: str
    started:
      description: When the launch started (RFC 3339 UTC).
      type: str
    step:
      description: The percent of the step it was at (null when it did not say).
      type: int
    deadline:
      description: The deadline it stopped renewing (RFC 3339 UTC).
      type: str
    renewed:
      description: When it last renewed it.
      type: str
    progress:
      description: The launch's checks so far in words, as it last wrote them (null when it did not say).
      type: str
    comparator:
      description: The comparator the C(shadow_launch) role deployed for the launch (null when none).
      type: str
    control:
      description:
        - The operator's standing command to the launch (M(darklaunch.traefik.launch_control)), or null.
        - C(state) (V(paused) or V(aborted)), C(by) (who gave it) and C(at) (when, RFC 3339 UTC).
      type: dict
    abandoned:
      description: Always V(true) here; in RV(mirrors[].launch) V(false) while the launch renews its deadline.
      type: bool
    seconds_past_deadline:
      description: Whole seconds since the deadline (0 while the launch is alive).
      type: int
    rollback_command:
      description:
        - The command that restores the IngressRoute exactly and deletes the mirror.
        - It names the kubeconfig context this module used (C(-e context=...)), and the kubeconfig when given
          as O(kubeconfig) (a path), so it acts on the same cluster whatever the current context is later.
      type: str
    message:
      description: The same facts in plain words, ending with the rollback command.
      type: str
  sample:
    - mirror: api-service-route-mirror
      namespace: production
      id: 3f9c2a71
      owner: alice@laptop pid 4242 via ansible-playbook
      route: api-service-route
      started: "2025-11-27T14:02:11.318Z"
      step: 20
      deadline: "2025-11-27T14:12:40.007Z"
      renewed: "2025-11-27T14:02:40.007Z"
      progress: "3 checks at 20%: 3 ok; last ok"
      comparator: null
      control: null
      abandoned: true
      seconds_past_deadline: 95
      rollback_command: >-
        ansible-playbook darklaunch.traefik.mirror_disable -e route_name=api-service-route
        -e route_namespace=production -e context=prod-eu -e restore_ingress_to_wrr=true
      message: >-
        Launch 3f9c2a71 started by alice@laptop pid 4242 via ansible-playbook at 2025-11-27T14:02:11.318Z
        stopped renewing its deadline 95 s ago at step 20%: it was abandoned (interrupted or killed). The
        route still sends copies to the shadow. Roll it back with: ansible-playbook
        darklaunch.traefik.mirror_disable -e route_name=api-service-route -e route_namespace=production
        -e context=prod-eu -e restore_ingress_to_wrr=true
weighted:
  description:
    - Every weighted (WRR) TraefikService with its weights and each backend's share of real users (with
      O(route_name) - those the route or its default mirror reaches).
  returned: always
  type: list
  elements: dict
ingress_routes:
  description:
    - Every IngressRoute with each route's match and live targets, and the target type (with O(route_name) -
      that IngressRoute only; empty when O(route_name) is an HTTPRoute).
  returned: always
  type: list
  elements: dict
http_routes:
  description:
    - Every Gateway API HTTPRoute (with O(route_name) - the HTTPRoute it names), with its C(gateways)
      (namespace/name), C(hostnames), C(attached_by_darklaunch) and each rule's C(index), C(match) (in Traefik's
      rule words), C(filters) (their types) and live C(targets) with their type.
    - Their rules that route through a mirror count in C(mirrors[].referenced_by) (C(route_kind) V(HTTPRoute)).
    - Empty where the Gateway API is not installed or HTTPRoutes may not be listed.
  returned: without O(route_name), and when O(route_name) is an HTTPRoute
  type: list
  elements: dict
  sample:
    - name: web-route
      namespace: shop
      gateways: [gateways/traefik-gateway]
      hostnames: [web.example.com]
      attached_by_darklaunch: true
      rules:
        - {index: 0, match: "PathPrefix(`/`)", filters: [], targets: [{name: web-route-mirror, kind: TraefikService,
           namespace: shop, port: null, weight: 1, target_type: mirror}]}
distribution:
  description: The resolved traffic split of O(route_name).
  returned: when O(route_name) is set
  type: dict
  contains:
    route:
      description: IngressRoute (or HTTPRoute) name.
      type: str
    namespace:
      description: Its namespace.
      type: str
    route_kind:
      description: V(IngressRoute) or V(HTTPRoute); an HTTPRoute's rules are its C(routes).
      type: str
    label_form:
      description:
        - For an HTTPRoute, how the C(service_label) of its backends was derived, in words. Backends reached
          through TraefikServices (a rule on its C(<route>-mirror)) carry the CRD provider's
          C(<ns>-<svc>-<port>@kubernetescrd); a rule's own backendRefs are named by Traefik's Gateway provider in a
          form that changed across releases, so they get no label (and are not in C(backends)).
        - Empty for an IngressRoute.
      type: str
    traffic_split:
      description: C(type) is V(direct), V(weighted) or V(mirror); a mirror over a weighted split says so.
      type: dict
    target:
      description:
        - What the IngressRoute targets right now (the first service of the route that carries a mirror,
          else of the first route).
      type: dict
    main_sink:
      description: Services whose responses users receive, with C(user_share_percent).
      type: list
      elements: dict
    shadow:
      description: Services that receive copies, with the percent of all requests copied.
      type: list
      elements: dict
    broken:
      description: References that cannot be resolved, with the reason.
      type: list
      elements: dict
    routes:
      description:
        - Every route of the IngressRoute, in order, each with its C(index), C(match), live C(targets),
          C(traffic_split), C(main_sink), C(shadow), C(broken), C(cycles) and C(explanation).
      type: list
      elements: dict
    cycles:
      description: TraefikService reference loops found while resolving (each a list of names); empty when none.
      type: list
      elements: list
    backends:
      description:
        - Every backend Service of every route once, with its C(role) (V(main), V(shadow)), C(name),
          C(namespace), C(port) and C(service_label) (the C(service) label of Traefik's metrics for it).
      type: list
      elements: dict
    explanation:
      description: One sentence in plain language.
      type: str
  sample:
    route: api-service-route
    namespace: production
    traffic_split: {type: mirror}
    target: {name: api-service-route-mirror, kind: TraefikService}
    main_sink: [{name: api-service-stable, kind: Service, port: 80, user_share_percent: 100}]
    shadow: [{name: api-service-canary, port: 80, percent: 20}]
    explanation: >-
      All user responses come from api-service-stable; 20% of requests are copied to api-service-canary
      and its responses are discarded.
"""

from typing import Any

from ansible_collections.darklaunch.traefik.plugins.module_utils._argspec import with_auth
from ansible_collections.darklaunch.traefik.plugins.module_utils._errors import DarklaunchError
from ansible_collections.darklaunch.traefik.plugins.module_utils._k8s import KubeClient
from ansible_collections.darklaunch.traefik.plugins.module_utils._kube_module import kube_module
from ansible_collections.darklaunch.traefik.plugins.module_utils._model import TRAEFIK_GROUPS
from ansible_collections.darklaunch.traefik.plugins.module_utils._traffic_view import read_traffic, validate_scope


def argument_spec() -> dict[str, Any]:
    return with_auth(
        {
            "namespace": {"type": "str"},
            "route_name": {"type": "str"},
            "route_kind": {"type": "str", "choices": ["IngressRoute", "HTTPRoute"]},
            "api_group": {"type": "str", "choices": list(TRAEFIK_GROUPS)},
        }
    )


def main() -> None:
    module = kube_module(argument_spec())
    try:
        validate_scope(module.params["namespace"], module.params["route_name"])
        client = KubeClient.from_params(module.params)
        result = read_traffic(
            client,
            namespace=module.params["namespace"],
            route_name=module.params["route_name"],
            api_group=module.params["api_group"],
            route_kind=module.params["route_kind"],
        )
    except DarklaunchError as error:
        module.fail_json(**error.fail_kwargs())
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
