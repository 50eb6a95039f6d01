#!/usr/bin/python
# Copyright: darklaunch.traefik contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the action plugin plugins/action/playbook_inputs.py does the work, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: playbook_inputs
short_description: Check a playbook's extra vars and say which cluster and namespace it acts on
version_added: 0.1.0
description:
  - The first task of every playbook of the collection (C(playbooks/*.yml)). Use it in a playbook of your own
    only to get the same checks.
  - Refuses, before anything is read from the cluster, the extra vars the playbook does not take and that look
    like the collection's, each with the name to use instead. The old extra var C(namespace) names
    C(route_namespace), an extra var of another playbook is named as such, and a misspelling (a close match,
    or the first words of a name, as C(bake) for C(bake_seconds)) names the closest known one. Extra vars of
    other tools (C(awx_*), C(tower_*), C(ansible_*), a credential's injectors) are left alone.
  - Gathers the kubernetes.core connection options given as extra vars (C(kubeconfig), C(context), C(host),
    C(api_key), C(validate_certs), ...; aliases such as C(verify_ssl) too), typed as the modules type them,
    over O(k8s_auth). Only extra vars count, never inventory or play variables of the same names.
  - Resolves the namespace as kubectl does, when no C(route_namespace) is given, from the kubeconfig
    context (the one C(context) names, else the current one), inside a pod from its service account, else
    V(default).
  - Prints one line naming the API server, the context and the namespace (and where the namespace came from).
    It reads the kubeconfig but sends no request to the cluster.
author:
  - darklaunch.traefik contributors (@darklaunch)
extends_documentation_fragment:
  - darklaunch.traefik.attributes
  - darklaunch.traefik.attributes.info_module
options:
  playbook:
    description:
      - The playbook whose extra vars are checked, by its file name without C(.yml).
    type: str
    required: true
    choices: [anomaly_check, mirror_disable, mirror_enable, mirror_ramp, shadow_abort, shadow_launch,
              shadow_launch_fleet, shadow_pause, shadow_reap, shadow_report, shadow_resume, shadow_status]
  k8s_auth:
    description:
      - Connection options to start from (a fleet host's C(k8s_auth)); the connection extra vars override them
        key by key.
    type: dict
    default: {}
  cluster_wide:
    description:
      - The playbook reads every namespace when neither C(route_name) nor C(route_namespace) is given
        (C(shadow_status), C(anomaly_check)); RV(namespace) is then empty.
    type: bool
    default: false
  say:
    description:
      - Print the line naming the cluster and the namespace.
    type: bool
    default: true
notes:
  - Runs on the controller (an action plugin); nothing is sent to a managed host.
  - Its result is hidden (no_log) when the connection options hold a credential or a kubeconfig dictionary.
seealso:
  - module: darklaunch.traefik.traefik_mirror
"""

EXAMPLES = r"""
- name: Check the extra vars and say where the run acts
  darklaunch.traefik.playbook_inputs:
    playbook: mirror_enable
  register: mirror_enable_inputs

# In the play: module_defaults with group/darklaunch.traefik.traefik set to
# "{{ mirror_enable_inputs.k8s_auth | default({}) }}", so every later task uses the connection extra vars.
- name: Read the namespace the run acts on
  darklaunch.traefik.traefik_traffic_info:
    namespace: "{{ mirror_enable_inputs.namespace }}"
"""

RETURN = r"""
k8s_auth:
  description: The connection options for C(module_defaults) of C(group/darklaunch.traefik.traefik).
  returned: success
  type: dict
  sample: {context: prod-eu}
prometheus_auth:
  description:
    - The Prometheus connection options given as extra vars (C(prometheus_token), C(prometheus_headers), ...), with
      the traffic lookup's names, for the launch's gate or a lookup; unset and empty ones are left out, so the
      lookup's environment variables still apply.
  returned: success
  type: dict
  sample: {prometheus_timeout: 20}
k8s_auth_secret:
  description:
    - Whether RV(k8s_auth) or RV(prometheus_auth) holds a credential or a kubeconfig dictionary (the result is then
      hidden), so that a task passing it to a lookup can set C(no_log).
  returned: success
  type: bool
answers:
  description:
    - The extra vars a survey's text box gives as text, parsed (C(metrics), C(compare_resources) and
      C(compare_labels) as YAML or JSON; C(compare_ignore_json_pointers) and C(compare_ignore_headers) as a list,
      comma-separated or YAML); only those given as text, so a playbook uses C(answers.metrics | default(metrics)).
      Text that is not valid YAML or JSON fails the task, naming the extra var.
  returned: success
  type: dict
  sample: {metrics: [{name: p99, query: "...", max: 0.5}]}
namespace:
  description: The namespace the run acts on; empty for every namespace (O(cluster_wide)).
  returned: success
  type: str
  sample: production
namespace_source:
  description: Where the namespace came from, in words.
  returned: success
  type: str
  sample: the namespace of context prod-eu
namespace_given:
  description: Whether C(route_namespace) was given.
  returned: success
  type: bool
server:
  description: The API server the run talks to.
  returned: success
  type: str
  sample: https://k8s.example.com:6443
context:
  description: The kubeconfig context in use; null when no kubeconfig is read.
  returned: success
  type: str
  sample: prod-eu
msg:
  description: The line printed, naming the cluster and the namespace.
  returned: always
  type: str
"""
